"""Render the docs site without Quarto: `nbdev_proc_nbs`, then the processed notebooks to HTML.

    python tools/render_docs.py [--out _site] [--no-proc]

Users with Quarto run `nbdev_docs`, which reads the same `_quarto.yml` and `nbs/sidebar.yml`.
Quarto cannot be installed on the project's machines, so this script stands in for its render
step only: nbdev still processes the notebooks (`nbdev_proc_nbs`: front matter, `show_doc`,
hidden cells, doc links) and nbconvert's HTML exporter turns each processed notebook into a page
named as Quarto would name it (`00_cache.ipynb` → `cache.html`), with the sidebar of
`nbs/sidebar.yml` and the doc links made relative so pages link to each other offline.
"""
import argparse, json, re, shutil, subprocess, sys
from pathlib import Path

import yaml
import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]


def page_name(nb: Path) -> str:
    "Quarto's output name: numeric prefix dropped, lower case, .html."
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb.stem.lower()) + '.html'


def read_settings():
    import configparser
    cp = configparser.ConfigParser(); cp.read(ROOT / 'settings.ini')
    return cp['DEFAULT']


def front_matter(nb):
    "Title and description from the raw YAML cell nbdev puts first."
    for c in nb.cells:
        if c.cell_type == 'raw' and c.source.startswith('---'):
            meta = yaml.safe_load(c.source.strip().strip('-')) or {}
            c.source = ''
            return meta
    return {}


def prepare(nb):
    "Quarto cell options → nbconvert tags: `echo: false` hides the code, `include: false` the cell."
    for c in nb.cells:
        if c.cell_type != 'code': continue
        opts = dict(re.findall(r'^#\|\s*([\w-]+):\s*(.+)$', c.source, re.M))
        tags = set(c.metadata.get('tags', []))
        if opts.get('echo', '').strip() == 'false': tags.add('remove_input')
        if opts.get('include', '').strip() == 'false': tags.add('remove_cell')
        c.source = re.sub(r'^#\|.*\n?', '', c.source, flags=re.M)
        c.metadata['tags'] = sorted(tags)
    return nb


def sidebar(pages, current):
    items = ''.join(f'<li class="{"active" if p == current else ""}"><a href="{p}">{t}</a></li>' for p, t in pages)
    return f'<nav class="ft-sidebar"><a class="ft-home" href="index.html">factored_timing</a><ul>{items}</ul></nav>'


CSS = """
<style>
body { margin: 0; }
.ft-sidebar { position: fixed; top: 0; left: 0; width: 230px; height: 100%; overflow-y: auto; padding: 1rem; background: #f7f7f9; border-right: 1px solid #ddd; font-family: sans-serif; font-size: 14px; }
.ft-sidebar ul { list-style: none; padding-left: 0; } .ft-sidebar li { margin: .35rem 0; } .ft-sidebar li.active a { font-weight: bold; }
.ft-home { font-weight: bold; font-size: 16px; }
.ft-main { margin-left: 270px; max-width: 1000px; padding: 1rem 2rem; }
.ft-description { font-style: italic; font-size: 120%; opacity: .75; }
</style>
"""


def render(proc: Path, out: Path, settings) -> list[Path]:
    "Render every processed notebook in `proc` to `out`; returns the pages written."
    side = yaml.safe_load((proc / 'sidebar.yml').read_text())['website']['sidebar']['contents']
    nbs = [proc / s for s in side if str(s).endswith('.ipynb')]
    base = (settings.get('doc_host', '') + settings.get('doc_baseurl', '')).rstrip('/') + '/'
    c = Config()
    c.TagRemovePreprocessor.remove_input_tags = ('remove_input',)
    c.TagRemovePreprocessor.remove_all_outputs_tags = ('remove_output',)
    c.TagRemovePreprocessor.remove_cell_tags = ('remove_cell',)
    c.TagRemovePreprocessor.enabled = True
    exp = HTMLExporter(config=c, template_name='lab', exclude_input_prompt=True, exclude_output_prompt=True)
    exp.register_preprocessor(TagRemovePreprocessor(config=c), enabled=True)
    loaded = []
    for p in nbs:
        nb = nbformat.read(p, as_version=4)
        meta = front_matter(nb)
        loaded.append((p, nb, meta))
    pages = [(page_name(p), (m.get('title') or p.stem)) for p, _, m in loaded]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for (p, nb, meta), (name, title) in zip(loaded, pages):
        html, _ = exp.from_notebook_node(prepare(nb))
        html = html.replace(base, '')                        # doc links become relative
        html = re.sub(r'\{target=(&quot;|")_blank(&quot;|")[^}]*\}', '', html)   # Quarto link attributes
        # Quarto's heading anchors are lower case (doc links point at `cache.html#build_cache`): add them
        html = re.sub(r'<(h[1-6]) id="([^"]+)"([^>]*)>', lambda m: f'<{m.group(1)} id="{m.group(2)}"{m.group(3)}>'
                      + (f'<span id="{m.group(2).lower()}"></span>' if m.group(2).lower() != m.group(2) else ''), html)
        head = f'<h1>{title}</h1>' + (f'<p class="ft-description">{meta["description"]}</p>' if meta.get('description') else '')
        html = html.replace('<body', '<body data-ft-page="' + name + '"', 1)
        html = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + sidebar(pages, name) + '<div class="ft-main">' + head, html, count=1)
        html = html.replace('</body>', '</div></body>').replace('</head>', CSS + '</head>', 1)
        html = re.sub(r'<title>.*?</title>', f'<title>{title} – factored_timing</title>', html, count=1, flags=re.S)
        (out / name).write_text(html)
        written.append(out / name)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(ROOT / '_site'))
    ap.add_argument('--no-proc', action='store_true', help='reuse _proc/ instead of running nbdev_proc_nbs')
    a = ap.parse_args(argv)
    proc = ROOT / '_proc'
    if not a.no_proc:
        subprocess.run([shutil.which('nbdev_proc_nbs') or 'nbdev_proc_nbs'], cwd=ROOT, check=True)
    pages = render(proc, Path(a.out), read_settings())
    print(json.dumps({'pages': [p.name for p in pages], 'out': str(a.out)}))


if __name__ == '__main__':
    main()
