"README.md is nbs/index.ipynb rendered by tools/render_readme.py; it opens with the CI commands."
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
from render_readme import README, check, render  # noqa: E402

INSTALL = 'pip install torch==2.13.0 && pip install -e ".[dev]" && ft_run'
TEST = 'nbdev_test && pytest -q tests'


def fenced(md):
    "(language, body) of every fenced block of `md`, in order."
    return re.findall(r'^```(\w*)\n(.*?)\n```$', md, re.M | re.S)


def test_readme_is_the_render_of_index():
    msg = check()
    assert msg is None, msg


def test_check_names_the_first_stale_line(tmp_path):
    lines = render().splitlines()
    lines[7] += ' (edited by hand)'
    stale = tmp_path / 'README.md'
    stale.write_text('\n'.join(lines) + '\n')
    msg = check(stale)
    assert msg and 'line 8 ' in msg and '\n' not in msg, msg


def test_cli_check_passes_on_the_readme():
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'render_readme.py'), '--check'],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def images(md):
    "(alt, src) of every markdown image of `md`."
    return re.findall(r'!\[([^\]]*)\]\(([^)\s]+)\)', md)


def test_readme_opens_with_the_picture_then_the_two_commands():
    "First screen: title, one-line summary, the picture (and its caption), the two commands."
    md = README.read_text()
    assert fenced(md)[:2] == [('bash', INSTALL), ('bash', TEST)]
    head = md.split('```', 1)[0].splitlines()
    shown = [l for l in head if l.strip() and not l.startswith('<!--')]
    assert shown[0] == '# factored_timing', head
    assert shown[1].startswith('> '), f'the one-line summary should follow the title: {shown[1]!r}'
    assert re.fullmatch(r'!\[[^\]]+\]\(nbs/images/[\w.-]+\.png\)', shown[2]), f'then the picture: {shown[2]!r}'
    assert len(shown) <= 4 and all(l.startswith('*') for l in shown[3:]), f'at most a caption before the commands: {shown}'


def test_readme_images_resolve_and_are_small():
    "Every README image is a committed file at a relative path GitHub resolves, a real PNG under 300 KB."
    imgs = images(README.read_text())
    assert imgs, 'the README shows no picture'
    for alt, src in imgs:
        assert alt and not re.match(r'^(?:[a-z][\w+.-]*:|/)', src), f'{src}: a relative path with alt text, please'
        f = ROOT / src
        assert f.is_file(), f'README image {src} does not exist'
        assert f.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', f'{src} is not a PNG'
        assert f.stat().st_size < 300_000, f'{src}: {f.stat().st_size} bytes, keep it under 300 KB'
        ignored = subprocess.run(['git', 'check-ignore', '-q', src], cwd=ROOT).returncode == 0
        assert not ignored, f'{src} is git-ignored: GitHub would not show it'


def test_results_table_follows_the_commands():
    "After the two commands, the first section is the shipped model's results, table first."
    md = README.read_text()
    after = md.split(TEST, 1)[1]
    first = re.search(r'^## (.+)$', after, re.M)
    assert first and first[1].startswith('Results'), f'first section after the commands: {first and first[1]!r}'
    section = after[first.end():].split('\n## ', 1)[0]
    prose = section.split('\n|', 1)[0]
    assert '| generator |' in section and '```' not in prose and len(prose.split()) < 60, \
        'the results table should come right after the heading and a sentence'


def test_ci_runs_the_readme_commands_verbatim():
    ci = (ROOT / '.ci' / 'run').read_text().splitlines()
    assert TEST in ci and INSTALL in ci
