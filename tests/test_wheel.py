"""A built wheel carries its configs: `pip install` of it into a fresh venv runs `ft_run` from an empty directory.

The wheel is built offline (`pip wheel --no-build-isolation`, so the running environment's setuptools builds it).
The fresh venv sees the running environment's dependencies (torch, hydra, ...) through a `.pth` file naming a
directory of symlinks to them; the project itself (its editable finder, `.pth`, dist-info) is left out, so the
only `factored_timing` the venv can import is the one the wheel installs.
"""
import importlib.util, json, os, shutil, site, subprocess, sys, zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = 'factored_timing'
CONFIGS = ('ft_run.yaml', 'exp_factored_timing.yaml', 'cpu_tiny.yaml')
# a few seconds of training and a 40-gesture C2ST: ~30 s on 2 CPU cores, most of it imports and the C2ST fits
TINY = ['out=RUN', 'data.out=CACHE', 'model.dim=8', 'model.dim_mults=[1,2]', 'model.groups=4', 'model.num_res_blocks=1',
        'training.epochs=1', 'training.max_steps=5', 'training.batch_size=32', 'timing.epochs=1', 'timing.head_hidden=16',
        'evaluate.n_gestures=40', 'evaluate.n_permutations=0', 'evaluate.sample_steps=3', 'evaluate.max_per_class=40',
        'eval.n_samples=0', 'run.progress=false', 'run.threads=1']


PROBE = """
import warnings; warnings.simplefilter('ignore')
try: from setuptools.command.bdist_wheel import bdist_wheel         # setuptools >= 70.1
except ImportError: from wheel.bdist_wheel import bdist_wheel       # older setuptools + the `wheel` package
"""


def _why_no_wheel_build():
    "Why this environment cannot build a wheel offline, or None when it can (probed in a subprocess: importing"
    " setuptools here would meddle with distutils in the test process)."
    if importlib.util.find_spec('pip') is None: return 'pip is not installed in the running environment'
    if importlib.util.find_spec('setuptools') is None:
        return 'setuptools is not installed in the running environment (the wheel is built with --no-build-isolation)'
    r = _run([sys.executable, '-c', PROBE], timeout=120, env=_env())
    if r.returncode != 0:
        v = _run([sys.executable, '-c', 'import setuptools; print(setuptools.__version__)'], timeout=120, env=_env()).stdout.strip()
        return (f'setuptools {v} cannot build wheels without the `wheel` package (install setuptools>=70.1, as .ci/run does); '
                f'{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""}')
    return None


def _env(**extra):
    "The environment handed to the subprocesses: headless, one thread, no path or config-dir leaks from outside."
    env = {k: v for k, v in os.environ.items()
           if k not in ('FT_CONF_DIR', 'PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'VIRTUAL_ENV', 'FT_BALABIT_DIR')}
    env.update(MPLBACKEND='Agg', OMP_NUM_THREADS='1', PYTHONNOUSERSITE='1', PIP_DISABLE_PIP_VERSION_CHECK='1', **extra)
    return env


def _run(cmd, *, timeout, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    r.log = f"$ {' '.join(map(str, cmd))}\n[rc {r.returncode}]\n--- stdout\n{r.stdout[-6000:]}\n--- stderr\n{r.stderr[-6000:]}"
    return r


def _is_project(name: str) -> bool:
    "Entries of a site-packages directory that belong to this project (or only work through processed .pth files)."
    n = name.lower().replace('-', '_')
    return n.startswith((PKG, '__editable__')) or n.endswith(('.egg_link', '.pth'))


def _outer_site_dirs():
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE: dirs.append(site.getusersitepackages())
    return [Path(d) for d in dict.fromkeys(dirs) if Path(d).is_dir()]


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    "A wheel of the checkout, built offline from a copy of its packaging files (so nothing lands in the checkout)."
    why = _why_no_wheel_build()
    if why: pytest.skip(f'cannot build the wheel offline: {why}')
    tmp = tmp_path_factory.mktemp('wheel')
    src, dist = tmp/'src', tmp/'dist'
    src.mkdir()
    for p in ROOT.iterdir():                               # setup.py, settings.ini, pyproject.toml, MANIFEST.in, README.md ...
        if p.is_file(): (src/p.name).write_bytes(p.read_bytes())
    shutil.copytree(ROOT/PKG, src/PKG, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    r = _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index', '--no-cache-dir',
              '-w', dist, src], timeout=600, env=_env(), cwd=tmp)
    assert r.returncode == 0, r.log
    whls = sorted(dist.glob(f'{PKG}-*.whl'))
    assert len(whls) == 1, f'expected one {PKG} wheel in {dist}: {sorted(p.name for p in dist.iterdir())}\n{r.log}'
    return whls[0]


def test_wheel_carries_the_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f'{PKG}/conf/{n}' for n in CONFIGS} | {f'{PKG}/conf/{p.name}' for p in (ROOT/PKG/'conf').glob('*.yaml')}
    assert shipped <= names, f'missing from {wheel.name}: {sorted(shipped - names)}'
    assert f'{PKG}/conf/__init__.py' in names
    eps = next(n for n in names if n.endswith('.dist-info/entry_points.txt'))
    assert f'ft_run = {PKG}.pipeline:ft_run' in zipfile.ZipFile(wheel).read(eps).decode()


def test_installed_wheel_runs_ft_run_from_an_empty_dir(wheel, tmp_path):
    # 1. a fresh venv that sees the running environment's dependencies but not this project
    venv = tmp_path/'venv'
    r = _run([sys.executable, '-m', 'venv', '--without-pip', venv], timeout=300, env=_env())
    if r.returncode != 0: pytest.skip(f'cannot create a venv with {sys.executable}:\n{r.log}')
    py = venv/'bin'/'python'
    if not py.exists(): pytest.skip(f'venv at {venv} has no bin/python (non-POSIX layout)')
    r = _run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], timeout=60, env=_env())
    assert r.returncode == 0, r.log
    inner_site = Path(r.stdout.strip())
    deps = []
    for i, d in enumerate(_outer_site_dirs()):
        farm = tmp_path/'deps'/str(i); farm.mkdir(parents=True)
        for p in d.iterdir():
            if not _is_project(p.name): (farm/p.name).symlink_to(p, target_is_directory=p.is_dir())
        deps.append(str(farm))
    assert deps, 'the running interpreter has no site-packages directory'
    (inner_site/'_outer_deps.pth').write_text('\n'.join(deps) + '\n')

    empty = tmp_path/'empty'; empty.mkdir()
    env = _env(PATH=f"{venv/'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    r = _run([py, '-c', f'import {PKG}'], timeout=120, env=env, cwd=empty)
    assert r.returncode != 0 and 'ModuleNotFoundError' in r.stderr, f'{PKG} is importable before the wheel is installed:\n{r.log}'
    r = _run([py, '-c', 'import hydra, pip'], timeout=120, env=env, cwd=empty)
    assert r.returncode == 0, f'the fresh venv does not see the dependencies:\n{r.log}'

    # 2. install the wheel (no index, no dependencies: they come from the running environment)
    r = _run([py, '-m', 'pip', 'install', '--no-deps', '--no-index', '--no-cache-dir', wheel], timeout=300, env=env, cwd=empty)
    assert r.returncode == 0, r.log
    r = _run([py, '-c', f'import {PKG}, importlib.resources as ir; print({PKG}.__file__); '
              f'print(ir.files("{PKG}.conf").joinpath("ft_run.yaml"))'], timeout=120, env=env, cwd=empty)
    assert r.returncode == 0, r.log
    mod, conf = (Path(l).resolve() for l in r.stdout.split())
    for p in (mod, conf):
        assert p.is_relative_to(venv.resolve()) and not p.is_relative_to(ROOT), f'{p} is not from the installed wheel'
    assert conf.is_file()

    # 3. a tiny ft_run from an empty directory
    ft_run = venv/'bin'/'ft_run'
    assert ft_run.exists(), f'the wheel did not install the ft_run console script: {sorted(os.listdir(venv/"bin"))}'
    assert not any(empty.iterdir())
    r = _run([ft_run, *TINY], timeout=900, env=env, cwd=empty)
    assert r.returncode == 0, r.log
    run = empty/'RUN'
    assert (run/'generated.npz').is_file(), r.log
    ev = json.loads((run/'eval.json').read_text())
    assert ev, r.log
    assert (empty/'CACHE').is_dir()
