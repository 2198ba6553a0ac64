"The library/application boundary: library modules import neither Hydra nor a later module; every console script says what it does."
import ast, configparser, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / 'factored_timing'
# notebook order: each module may import only those before it
ORDER = ['base', 'cache', 'dataset', 'timing_heads', 'timing_train', 'diffusion', 'assembly', 'evaluation',
         'peers', 'pretrained', 'browser', 'timing_evaluation',
         'pipeline', 'diagnostics']
LIBRARY = ORDER[:ORDER.index('pipeline')]


def imported(module: str) -> set[str]:
    "Top-level names of everything `module` imports, anywhere in the file (lazy imports included)."
    tree = ast.parse((PKG / f'{module}.py').read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import): names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level: names.add(f'factored_timing.{node.module}')        # from .x import y
            elif node.module: names.add(node.module)
    return names


def test_module_list_is_complete():
    mods = {p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_')}
    assert mods == set(ORDER), mods ^ set(ORDER)


@pytest.mark.parametrize('module', ORDER)
def test_no_later_module_and_no_hydra_in_the_library(module):
    own = {n.split('.')[1] for n in imported(module) if n.startswith('factored_timing.')}
    later = set(ORDER[ORDER.index(module) + 1:])
    assert not own & later, f"{module} imports later module(s) {own & later}"
    if module == 'diagnostics': assert 'pipeline' not in own    # the staged checks stand on the library only
    if module in LIBRARY:
        bad = {n for n in imported(module) if n.split('.')[0] in ('hydra', 'omegaconf')}
        assert not bad, f"library module {module} imports {bad}"


def console_scripts():
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini')
    return [line.split('=')[0].strip() for line in cfg['DEFAULT']['console_scripts'].split('\n') if line.strip()]


@pytest.mark.parametrize('script', console_scripts())
def test_every_script_helps_with_an_example(script):
    r = subprocess.run([sys.executable, '-c', f"import sys; from importlib.metadata import entry_points; "
                        f"ep = entry_points(group='console_scripts')['{script}']; sys.argv = ['{script}', '--help']; "
                        f"ep.load()()"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'Example' in r.stdout, f"{script} --help gives no example:\n{r.stdout[:1000]}"


def test_library_defaults_agree_with_the_packaged_yaml():
    "The YAML is the one source of a run's defaults; where a library dataclass has a default too, they agree."
    from dataclasses import MISSING, fields
    from factored_timing.diffusion import GeometrySpec, TrainConfig
    from factored_timing.pipeline import load_config, train_config
    cfg = load_config('exp_factored_timing')
    assert train_config(cfg) == TrainConfig()                   # every training.* default, field by field
    spec_defaults = {f.name: f.default for f in fields(GeometrySpec) if f.default is not MISSING}
    assert spec_defaults['objective'] == cfg.training.objective
    assert spec_defaults['num_train_timesteps'] == cfg.diffusion.num_train_timesteps
    assert spec_defaults['beta_schedule'] == cfg.diffusion.beta_schedule
