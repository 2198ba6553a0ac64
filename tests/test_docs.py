"""The docs site as a reader sees it: every notebook has a page, pages load in a browser, plots are there, links
resolve, and no page shows raw TeX, notebook front matter, a machine path or a helper without its docstring."""
import json, re, shutil, subprocess, sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync']
sys.path.insert(0, str(ROOT / 'tools'))
from render_docs import page_name  # noqa: E402


class Links(HTMLParser):
    def __init__(self):
        super().__init__(); self.hrefs, self.ids, self.imgs = [], set(), 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        if tag == 'a' and a.get('href'): self.hrefs.append(a['href'])
        if tag == 'img' and (a.get('src') or '').startswith('data:image/png'): self.imgs += 1


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('site')
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'render_docs.py'), '--out', str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def notebooks():
    side = yaml.safe_load((ROOT / 'nbs' / 'sidebar.yml').read_text())['website']['sidebar']['contents']
    return [s for s in side if s.endswith('.ipynb')]


def test_sidebar_covers_every_notebook():
    on_disk = sorted(p.name for p in (ROOT / 'nbs').glob('*.ipynb'))
    assert sorted(notebooks()) == on_disk


def test_every_notebook_has_a_page_with_resolving_links(site):
    parsed = {}
    for nb in notebooks():
        page = site / page_name(Path(nb))
        assert page.exists(), f'{nb} has no page'
        p = Links(); p.feed(page.read_text()); parsed[page.name] = p
    for name, p in parsed.items():
        for h in p.hrefs:
            if h.startswith(('http://', 'https://', 'mailto:')) or h.startswith('#'): continue
            target, _, anchor = h.partition('#')
            assert target in parsed, f'{name}: link to missing page {h}'
            if anchor: assert anchor in parsed[target].ids, f'{name}: link to missing anchor {h}'
        assert any(h == 'index.html' for h in p.hrefs), f'{name}: no link home'


def visible(html: str) -> str:
    "A page as a reader can meet it: without scripts, styles and embedded images (base64 may spell anything)."
    html = re.sub(r'<(script|style)\b.*?</\1>', '', html, flags=re.S | re.I)
    return re.sub(r'data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+', 'data:…', html)


# what no page may show: (name, pattern, why)
DEFECTS = [
    ('raw math', r'\$\$|\$[^$\s<>][^$<>\n]*?\\[a-zA-Z]+[^$<>\n]*?\$',
     'TeX left for a MathJax the page does not load: tools/render_docs.py turns $…$ and $$…$$ into MathML'),
    ('front matter', r'jupytext|kernelspec:|\bformats:\s*[\w.,]+:\w+',
     "a notebook's jupytext front matter rendered as text: delete that cell (nbdev writes the front matter)"),
    ('machine path', r'(?<![\w.~-])(?:/work|/home|/tmp|/root)/|C:\\',
     'an absolute path of the machine that ran the notebook (tools/render_docs.py shows saved outputs relative)'),
    ('no docstring', r'Call self as a function',
     "an exported helper without a docstring: show_doc falls back to 'Call self as a function.'"),
]
# defects another notebook's owner has yet to fix: strict, so the test fails once they are fixed, to drop the entry
PENDING = {}  # (notebook, defect): why it is known and not yet fixed (xfail, strict)


@pytest.mark.parametrize('nb', notebooks())
@pytest.mark.parametrize('name,pattern,why', DEFECTS, ids=[d[0] for d in DEFECTS])
def test_page_shows_no_raw_math_front_matter_machine_path_or_missing_docstring(site, nb, name, pattern, why, request):
    if (nb, name) in PENDING: request.applymarker(pytest.mark.xfail(strict=True, reason=PENDING[nb, name]))
    text = visible((site / page_name(Path(nb))).read_text())
    hits = [text[max(0, m.start() - 60):m.end() + 60].replace('\n', ' ') for m in re.finditer(pattern, text)]
    assert not hits, f'{page_name(Path(nb))} shows {name} ({why}), {len(hits)}x, e.g. …{hits[0]}…'


def test_pages_work_offline(site):
    "No page loads a script, style or image from the network (MathJax, require.js and mermaid come from a CDN)."
    for nb in notebooks():
        html = (site / page_name(Path(nb))).read_text()
        remote = re.findall(r'<(?:script|img|link)\b[^>]*\b(?:src|href)="(https?:[^"]+)"', html)
        remote = [u for u in remote if not u.startswith('https://github.com/')]
        assert not remote, f'{page_name(Path(nb))} loads {remote[:3]}'


def test_math_is_mathml(site):
    "A notebook with display math ($$…$$ in markdown) shows it as MathML."
    for nb in notebooks():
        md = [''.join(c['source']) for c in json.loads((ROOT / 'nbs' / nb).read_text())['cells'] if c['cell_type'] == 'markdown']
        if not any('$$' in s for s in md): continue
        assert '<math display="block"' in (site / page_name(Path(nb))).read_text().replace(
            ' xmlns="http://www.w3.org/1998/Math/MathML"', ''), f'{nb}: display math is not MathML'


def test_pages_with_plots_show_them(site):
    for nb in notebooks():
        src = json.loads((ROOT / 'nbs' / nb).read_text())
        has_png = any('image/png' in o.get('data', {}) for c in src['cells'] for o in c.get('outputs', []))
        if not has_png: continue
        p = Links(); p.feed((site / page_name(Path(nb))).read_text())
        assert p.imgs > 0, f'{nb}: the notebook has plots, its page shows none'


@pytest.mark.skipif(CHROMIUM is None, reason='chromium not installed (Debian package chromium); .ci/run installs it')
def test_pages_load_in_headless_chromium(site, tmp_path):
    for nb in notebooks():
        page = site / page_name(Path(nb))
        dom = subprocess.run([CHROMIUM, *FLAGS, f'--user-data-dir={tmp_path / "prof"}', '--dump-dom', page.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        assert 'ft-sidebar' in dom and '<h1>' in dom, f'{page.name} did not load'
        shot = tmp_path / (page.stem + '.png')
        subprocess.run([CHROMIUM, *FLAGS, f'--user-data-dir={tmp_path / "prof"}', '--window-size=1280,1600',
                        f'--screenshot={shot}', page.as_uri()], capture_output=True, timeout=120)
        assert shot.exists() and shot.stat().st_size > 20_000, f'{page.name}: blank screenshot'
