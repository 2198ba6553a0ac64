"""Render `README.md` from `nbs/index.ipynb`, as `nbdev_readme` would, without Quarto.

    python tools/render_readme.py            # write README.md
    python tools/render_readme.py --check    # exit 1, naming the first differing line, if stale

`nbdev_readme` renders `index.ipynb` through Quarto, which cannot be installed on the project's
machines, so README and notebook drifted apart. This script stands in for it: the notebook is the
source, the README its render, and `tests/test_readme.py` fails when they differ. It writes

- `# title` from the notebook's first heading, then its `> summary` line, then the other cells in
  order (in `index.ipynb`: the picture, the two commands, the results table: the first screen);
- markdown cells verbatim, except that links to doc pages (`cache.html`) point at the notebooks
  they are rendered from (`nbs/00_cache.ipynb`), and images beside the notebook
  (`images/x.png`) at their path in the repository (`nbs/images/x.png`), both of which resolve on
  GitHub;
- code cells as ```python blocks, `#| ...` directive lines stripped, each followed by its text
  output if it has one (stdout, plain-text results; stderr and images are left out);
- nothing of cells marked `#| hide`.
"""
import argparse, re, sys
from itertools import zip_longest
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NB, README = ROOT / 'nbs' / 'index.ipynb', ROOT / 'README.md'
NOTE = ('<!-- Generated from nbs/index.ipynb by tools/render_readme.py: '
        'edit the notebook, not this file. -->')


def split_directives(src: str) -> tuple[list[str], str]:
    "The leading `#| ...` lines of a code cell (without `#|`) and the code after them."
    lines = src.splitlines()
    n = next((i for i, l in enumerate(lines) if not l.startswith('#|')), len(lines))
    return [l[2:].strip() for l in lines[:n]], '\n'.join(lines[n:]).strip('\n')


def text_output(cell) -> str:
    "What a reader of the README sees of a code cell's outputs: stdout and plain-text results."
    out = []
    for o in cell.get('outputs', []):
        if o.output_type == 'stream' and o.name == 'stdout': out.append(o.text)
        elif o.output_type in ('execute_result', 'display_data'):
            d = o.get('data', {})
            if 'text/plain' in d and not any(k.startswith('image/') for k in d):
                out.append(d['text/plain'] + '\n')
    return re.sub(r'\x1b\[[0-9;]*m', '', ''.join(out)).strip('\n')


def doc_links(md: str) -> str:
    "`[x](cache.html#a)` → `[x](nbs/00_cache.ipynb)`: the docs' page names, as GitHub finds them."
    pages = {re.sub(r'^\d+[a-zA-Z0-9]*_', '', p.stem.lower()): p for p in NB.parent.glob('*.ipynb')}
    def repl(m):
        p = pages.get(m[1])
        return f']({p.relative_to(ROOT).as_posix()})' if p else m[0]
    return re.sub(r'\]\(([\w-]+)\.html(?:#[^)]*)?\)', repl, md)


def image_links(md: str) -> str:
    "`![x](images/a.png)` → `![x](nbs/images/a.png)`: images beside the notebook, from the README."
    def repl(m):
        src = m[2]
        if re.match(r'^(?:[a-z][\w+.-]*:|/|#)', src) or not (NB.parent / src).exists(): return m[0]
        return f'![{m[1]}]({(NB.parent / src).relative_to(ROOT).as_posix()}{m[3]})'
    return re.sub(r'!\[([^\]]*)\]\(([^)\s]+)((?:\s+"[^"]*")?)\)', repl, md)


def render_cell(cell) -> str:
    "One cell as README markdown ('' for a hidden or empty cell)."
    if cell.cell_type == 'markdown': return image_links(doc_links(cell.source.strip()))
    if cell.cell_type != 'code': return ''
    dirs, code = split_directives(cell.source)
    if 'hide' in dirs or not code: return ''
    out = text_output(cell)
    return f'```python\n{code}\n```' + (f'\n\n```\n{out}\n```' if out else '')


def render(nb_path=NB) -> str:
    "The README that `nb_path` renders to."
    cells = nbformat.read(nb_path, as_version=4).cells
    first = cells[0].source
    title = re.search(r'^#\s+(.+)$', first, re.M)[1].strip()
    summary = re.search(r'^>\s*(.+)$', first, re.M)
    rest = re.sub(r'^(#\s+.+|>.*)$', '', first, flags=re.M).strip()
    blocks = [f'# {title}', NOTE, f'> {summary[1].strip()}' if summary else '', rest]
    blocks += [render_cell(c) for c in cells[1:]]
    return '\n\n'.join(b for b in blocks if b) + '\n'


def _show(line):
    return 'the end of the file' if line is None else repr(line[:60] + '…' * (len(line) > 60))


def check(readme=README, nb_path=NB) -> str | None:
    "None if `readme` is what `nb_path` renders to, else one line naming the first difference."
    readme, nb_path = Path(readme), Path(nb_path)
    want = render(nb_path).splitlines()
    have = readme.read_text().splitlines() if readme.exists() else []
    for i, (w, h) in enumerate(zip_longest(want, have), 1):
        if w != h:
            return (f'{readme.name} is not the render of {nb_path.name}: line {i} is {_show(h)}, '
                    f'should be {_show(w)}; run `python tools/render_readme.py`')
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--check', action='store_true',
                    help='exit 1 if README.md is not the render of nbs/index.ipynb')
    a = ap.parse_args(argv)
    if a.check:
        msg = check()
        if msg: sys.exit(print(msg, file=sys.stderr) or 1)
        return
    README.write_text(render())


if __name__ == '__main__': main()
