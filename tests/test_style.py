"Lines a reader can follow: every line of the generated modules is at most 100 characters."

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / 'factored_timing'
WIDTH = 100  # pyproject.toml: [tool.ruff] line-length
MODULES = sorted(p.name for p in PKG.glob('*.py') if p.name != '_modidx.py')


def nbdev_lines(lines, tree) -> set[int]:
    "Line numbers (1-based) nbdev writes itself: the summary docstring, `__all__`, `# %%` markers."
    own = {i for i, l in enumerate(lines, 1) if l.startswith('# %%')}
    if lines and lines[0].startswith(('"', "'")):
        own.add(1)
    for node in tree.body:
        targets = getattr(node, 'targets', [])
        if any(isinstance(t, ast.Name) and t.id == '__all__' for t in targets):
            own.update(range(node.lineno, node.end_lineno + 1))
    return own


def test_there_are_modules():
    assert {'base.py', 'cache.py', 'evaluation.py'} <= set(MODULES)


@pytest.mark.parametrize('name', MODULES)
def test_lines_fit(name):
    path = PKG / name
    text = path.read_text(encoding='utf-8')
    lines = text.split('\n')
    skip = nbdev_lines(lines, ast.parse(text))
    long = [
        f'factored_timing/{name}:{i}: {len(l)} > {WIDTH} characters: {l.strip()[:60]}…'
        for i, l in enumerate(lines, 1)
        if i not in skip and len(l) > WIDTH
    ]
    assert not long, f'{len(long)} line(s) over {WIDTH} characters:\n' + '\n'.join(long)


NBS = Path(__file__).resolve().parents[1] / 'nbs'
NOTEBOOKS = sorted(p.name for p in NBS.glob('*.ipynb'))


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_slow_cells_hold_no_import(name):
    """nbdev's doc processor (`nbdev_proc_nbs`, run by tools/render_docs.py) executes every cell that
    holds an import, whatever its flags: a `#| slow` cell with an import runs there without the cells
    before it (and, with FT_BALABIT_DIR set, on the real data). Imports belong in their own cells."""
    import json
    import re

    cells = json.loads((NBS / name).read_text(encoding='utf-8'))['cells']
    bad = [
        i
        for i, c in enumerate(cells)
        if c['cell_type'] == 'code'
        and re.search(r'^#\|\s*slow', ''.join(c['source']), re.M)
        and re.search(r'^(import|from)\s', ''.join(c['source']), re.M)
    ]
    assert not bad, f'nbs/{name}: #| slow cell(s) {bad} hold an import; move it to an import cell'
