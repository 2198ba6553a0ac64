"""Render the docs site without Quarto: `nbdev_proc_nbs`, then the processed notebooks to HTML.

    python tools/render_docs.py [--out _site] [--no-proc]

Users with Quarto run `nbdev_docs`, which reads the same `_quarto.yml` and `nbs/sidebar.yml`.
Quarto cannot be installed on the project's machines, so this script stands in for its render
step only: nbdev still processes the notebooks (`nbdev_proc_nbs`: front matter, `show_doc`,
hidden cells, doc links) and nbconvert's HTML exporter turns each processed notebook into a page
named as Quarto would name it (`00_cache.ipynb` → `cache.html`), with the sidebar of
`nbs/sidebar.yml` and the doc links made relative so pages link to each other offline.

Every page works offline, as one file:

- math: `$…$` and `$$…$$` in markdown (cells, and docstrings rendered by `show_doc`) become
  MathML at render time with `latex2mathml` (a `dev` dependency), which browsers draw natively;
  the page loads no MathJax, nor require.js or mermaid, from a CDN;
- images referenced by markdown cells (`![…](images/x.png)`) are embedded as data URIs, as plots are;
- machine paths in saved outputs (a temporary directory's `/tmp/tmpab12/run`, the checkout's
  `/…/factored_timing/timing_train.py` in a warning, a virtual environment's `site-packages`)
  are shown relative (`…/run`, `factored_timing/timing_train.py`, `site-packages/…`): they say
  where a file was on the machine that ran the notebook, which a reader cannot use.
  Quarto (`nbdev_docs`) shows those outputs as saved.
"""
import argparse, json, re, shutil, subprocess, sys, tempfile, warnings
from html import escape
from pathlib import Path

import yaml
import nbformat
from jinja2 import DictLoader, pass_context
from latex2mathml.converter import convert as tex_to_mathml
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
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


# --- machine paths in saved outputs -------------------------------------------------------------
_TMP = sorted({'/tmp', '/var/tmp', '/var/folders', '/private/var/folders', tempfile.gettempdir()},
              key=len, reverse=True)
_PATH = re.compile(r"(?<![\w.~/:-])(/(?:work|home|root|tmp|var|private|Users|opt|mnt|srv)(?:/[^\s'\"<>,;:()\[\]{}`|]*)?"
                   r"|[A-Za-z]:\\\\?[^\s'\"<>,;:()\[\]{}`|]*)")


def tidy_path(p: str) -> str:
    "A machine path as a reader can use it: the package's files from `factored_timing/`, temporary dirs as `…`."
    q = p.replace('\\\\', '/').replace('\\', '/')
    for marker in ('/site-packages/', '/dist-packages/'):
        if marker in q: return marker[1:] + q.split(marker, 1)[1]
    root = ROOT.as_posix().rstrip('/') + '/'
    if q.startswith(root): return q[len(root):]
    if '/factored_timing/' in q: return q[q.rindex('/factored_timing/') + 1:]
    for t in _TMP:
        if q == t or q.startswith(t + '/'):
            rest = q[len(t) + 1:].split('/', 1)                  # the temporary directory itself goes
            return '…' + ('/' + rest[1] if len(rest) > 1 else '')
    m = re.match(r'^(?:/home/[^/]+|/root|/Users/[^/]+)(/.*)?$', q)
    if m: return '~' + (m[1] or '')
    parts = [x for x in q.split('/') if x]
    return '…/' + parts[-1] if parts else '…'


def tidy_paths(text: str) -> str:
    "Every machine path in `text` through `tidy_path`."
    return _PATH.sub(lambda m: tidy_path(m[0]), text)


def tidy_outputs(nb):
    "Machine paths out of every saved output (streams, text and HTML results, tracebacks)."
    for c in nb.cells:
        for o in c.get('outputs', []):
            if 'text' in o: o['text'] = tidy_paths(o['text'])
            if 'traceback' in o: o['traceback'] = [tidy_paths(t) for t in o['traceback']]
            for k, v in o.get('data', {}).items():
                if k.startswith('text/') and k != 'text/markdown' and isinstance(v, str): o['data'][k] = tidy_paths(v)
    return nb


# --- math as MathML ---------------------------------------------------------------------------
_ALPHABETS = {  # capital letters in Unicode's mathematical alphabets (MathML Core draws no `mathvariant`)
    'script': (0x1D49C, dict(B='ℬ', E='ℰ', F='ℱ', H='ℋ', I='ℐ', L='ℒ', M='ℳ', R='ℛ')),
    'double-struck': (0x1D538, dict(C='ℂ', H='ℍ', N='ℕ', P='ℙ', Q='ℚ', R='ℝ', Z='ℤ')),
    'fraktur': (0x1D504, dict(C='ℭ', H='ℌ', I='ℑ', R='ℜ', Z='ℨ')),
}


def _letter(m):
    start, holes = _ALPHABETS[m[1]]
    return f'<mi>{holes.get(m[2]) or chr(start + ord(m[2]) - ord("A"))}</mi>'


def mathml(tex: str, display: str) -> str:
    "TeX → MathML; what latex2mathml cannot read stays TeX in a <code> (and is reported), never `$`."
    try:
        out = tex_to_mathml(tex.strip(), display=display)
        out = out.replace('<mi>&#x0007E;</mi>', '<mo>&#x0223C;</mo>')        # \sim is a relation, not "~"
        return re.sub(r'<mi mathvariant="(script|double-struck|fraktur)">([A-Z])</mi>', _letter, out)
    except Exception as e:  # noqa: BLE001 — one bad formula must not stop the site
        warnings.warn(f'latex2mathml could not convert {tex!r}: {e}')
        return f'<code class="ft-tex">{escape(tex)}</code>'


class MathMLRenderer(IPythonRenderer):
    "nbconvert's markdown renderer with math as MathML instead of `$…$` left for MathJax."
    def block_math(self, body): return mathml(body, 'block')
    def multiline_math(self, text):
        m = re.fullmatch(r'\s*\$\$(.*)\$\$\s*', text, re.S)
        return mathml(m[1], 'block') if m else text
    def latex_environment(self, name, body):
        return mathml(f'\\begin{{{name}}}{body}\\end{{{name}}}', 'block')
    def inline_math(self, body): return mathml(body, 'inline')


OFFLINE = DictLoader({'ft_page.html.j2': (
    "{%- extends 'lab/index.html.j2' -%}"
    "{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}"
    "{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}"
    "{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}")})


class PageExporter(HTMLExporter):
    "The lab template without scripts from a CDN, math as MathML, markdown images embedded."
    @pass_context
    def markdown2html(self, context, source):
        cell = context.get('cell', {})
        path = context.get('resources', {}).get('metadata', {}).get('path', '')
        renderer = MathMLRenderer(escape=False, attachments=cell.get('attachments', {}), embed_images=self.embed_images,
                                  path=path, anchor_link_text=self.anchor_link_text,
                                  exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)
        return MarkdownWithMath(renderer=renderer).render(source)


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
.jp-RenderedMarkdown pre { margin: .6em 0; padding: .5em .7em; background: #f5f5f5; }
math[display="block"] { margin: .8em 0; font-size: 115%; }
.jp-RenderedMarkdown img { max-width: 100%; }
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
    exp = PageExporter(config=c, extra_loaders=[OFFLINE], template_file='ft_page.html.j2', embed_images=True,
                       exclude_input_prompt=True, exclude_output_prompt=True)
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
        html, _ = exp.from_notebook_node(tidy_outputs(prepare(nb)), resources={'metadata': {'path': str(ROOT / 'nbs' / p.parent.relative_to(proc))}})  # images from nbs/
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
