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


def test_readme_opens_with_the_two_commands():
    md = README.read_text()
    assert fenced(md)[:2] == [('bash', INSTALL), ('bash', TEST)]
    head = md.split('```', 1)[0].splitlines()
    shown = [l for l in head if l.strip() and not l.startswith('<!--')]
    assert shown == ['# factored_timing'], head


def test_ci_runs_the_readme_commands_verbatim():
    ci = (ROOT / '.ci' / 'run').read_text().splitlines()
    assert TEST in ci and INSTALL in ci
