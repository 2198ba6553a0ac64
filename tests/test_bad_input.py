"""Bad input is refused in one line, never silently wrong: numeric CLI arguments, empty training,
unsafe checkpoints, stale temporary files, whole-config validation and the raw-log CSV export."""
import os, pickle, subprocess, sys, warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from factored_timing import pipeline
from factored_timing.assembly import _make, to_balabit_csv
from factored_timing.base import CheckpointError, load_weights_only, save_atomic
from factored_timing.cache import CacheConfig, build_cache, read_session_csv, segment_session
from factored_timing.diffusion import GeometryDiffusion, GeometrySpec, geometry_dataset
from factored_timing.pipeline import ft_build_cache, ft_run, ft_sample, ft_train_timing, job_config
from factored_timing.timing_train import train_timing

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return build_cache('synthetic', out=tmp_path_factory.mktemp('cache'), T=32, seed=0)


def one_line_exit(f, *a, **kw) -> str:
    with pytest.raises(SystemExit) as e:
        f(*a, **kw)
    msg = str(e.value.code)
    assert '\n' not in msg, msg
    return msg


# 1. numeric arguments
@pytest.mark.parametrize(
    'kw, msg',
    [
        (dict(steps=-3), "--steps must be ≥ 1, got -3"),
        (dict(steps=0), "--steps must be ≥ 1, got 0"),
        (dict(n=0), "--n must be ≥ 1, got 0"),
        (dict(n=-5), "--n must be ≥ 1, got -5"),
    ],
)
def test_ft_sample_numeric_arguments(tmp_path, kw, msg):
    out = one_line_exit(ft_sample, run=str(tmp_path / 'no-run'), out=str(tmp_path / 'g.npz'), **kw)
    assert out == f"ft_sample: error: {msg}"


def test_ft_build_cache_numeric_arguments(tmp_path):
    msg = one_line_exit(ft_build_cache, out=str(tmp_path), T=0)
    assert msg.startswith("ft_build_cache: error: --T must be ≥ 3, got 0"), msg
    msg = one_line_exit(ft_build_cache, out=str(tmp_path), pause=-1.0)
    assert msg.startswith("ft_build_cache: error: --pause must be > 0"), msg
    assert not any(tmp_path.iterdir())


def test_diffusion_sample_refuses_bad_steps(cache_dir):
    ds = geometry_dataset(cache_dir, 'train')
    spec = GeometrySpec.from_dataset(ds, unet=dict(dim=8, dim_mults=[1, 2], groups=4))
    d = GeometryDiffusion(spec)
    for steps in (-3, 0):
        with pytest.raises(ValueError, match='steps must be ≥ 1'):
            d.sample([5], [[10.0, 0.0]], steps=steps)
    with pytest.raises(ValueError, match='batch_size must be ≥ 1'):
        d.sample([5], [[10.0, 0.0]], steps=2, batch_size=0)


# 2. no epochs, no checkpoint
def test_train_timing_refuses_zero_epochs(cache_dir, tmp_path):
    with pytest.raises(ValueError, match='epochs must be ≥ 1'):
        train_timing(cache_dir, tmp_path / 't', epochs=0, quiet=True, hidden=8)
    assert not (tmp_path / 't' / 'timing.pt').exists()
    msg = one_line_exit(
        ft_train_timing, [f'data.cache_dir={cache_dir}', f'timing.out={tmp_path}/t', 'timing.epochs=0']
    )
    assert 'timing.epochs' in msg and 'got 0' in msg, msg


# 3. unsafe vs corrupt checkpoints
class Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_unsafe_checkpoint_is_refused_as_unsafe(tmp_path):
    p = tmp_path / 'evil.pt'
    torch.save({'x': Evil()}, p)
    with pytest.raises(CheckpointError) as e:
        load_weights_only(p)
    msg = str(e.value)
    assert 'refused as unsafe' in msg and 'corrupt' not in msg, msg
    assert 'getcwd' in msg, msg  # names what it would have run
    g = tmp_path / 'garbage.pt'
    g.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='corrupt'):
        load_weights_only(g)
    t = tmp_path / 'trunc.pt'
    torch.save({'w': torch.zeros(100)}, t)
    t.write_bytes(t.read_bytes()[:200])
    with pytest.raises(CheckpointError, match='corrupt'):
        load_weights_only(t)


# 4. stale temporary files
def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, '-c', 'pass'])
    p.wait()
    return p.pid


def test_save_atomic_removes_stale_tmp_files(tmp_path):
    path = tmp_path / 'ckpt.pt'
    stale = tmp_path / f'ckpt.pt.tmp-{dead_pid()}'
    stale.write_bytes(b'half a checkpoint')
    alive = tmp_path / f'ckpt.pt.tmp-{os.getppid()}'  # a running process's write: left alone
    alive.write_bytes(b'in progress')
    other = tmp_path / 'other.pt.tmp-1234567'  # another file's temporary: not ours to judge
    other.write_bytes(b'x')
    save_atomic({'a': 1}, path)
    assert not stale.exists()
    assert alive.exists() and other.exists()
    assert torch.load(path, weights_only=True) == {'a': 1}


# 5. the whole config is validated before anything runs
@pytest.mark.parametrize(
    'override, words',
    [
        ('training.epochs=abc', ['training.epochs', 'int', "'abc'"]),
        ('data.T=30', ['data.T', 'multiple of 4', '30']),
        ('data.T=0', ['data.T', '0']),
        ('dataset=nonsense', ['dataset', 'synthetic', 'balabit', 'csv', 'nonsense']),
        ('training.lr=fast', ['training.lr', 'a number']),
        ('training.batch_size=0', ['training.batch_size', '≥ 1']),
        ('timing.epochs=-1', ['timing.epochs', '≥ 1']),
        ('evaluate.n_gestures=0', ['evaluate.n_gestures', '≥ 1']),
        ('evaluate.sample_steps=0', ['evaluate.sample_steps', '≥ 1']),
        ('evaluate.strict_guard=maybe', ['evaluate.strict_guard', 'bool']),
        ('training.objective=x0', ['training.objective', 'epsilon']),
    ],
)
def test_job_config_validates_everything_first(override, words):
    msg = one_line_exit(job_config, 'ft_run', 'doc', [override], 'ft_run')
    assert msg.startswith('ft_run: error: '), msg
    for w in words:
        assert w in msg, (w, msg)


def test_job_config_keeps_good_configs():
    cfg = job_config('ft_run', 'doc', ['training.lr=1', 'data.T=32', 'seed=3'], 'ft_run')
    assert cfg.training.lr == 1 and cfg.data.T == 32
    assert job_config('x', 'doc', ['training.max_steps=5'], 'cpu_tiny').training.max_steps == 5
    one_line_exit(job_config, 'x', 'doc', ['training.max_steps=0'], 'cpu_tiny')
    msg = one_line_exit(job_config, 'x', 'doc', ['nosuchkey=1'], 'ft_run')
    assert 'nosuchkey' in msg


def test_run_pipeline_refuses_another_runs_folder(tmp_path, monkeypatch):
    out = tmp_path / 'run'
    out.mkdir()
    old = "dataset: synthetic\nseed: 0\ndata:\n  T: 64\n"
    (out / 'config.yaml').write_text(old)

    def no_cache(*a, **kw):
        raise AssertionError('must refuse before building the cache')

    monkeypatch.setattr(pipeline, 'build_cache', no_cache)
    msg = one_line_exit(ft_run, [f'out={out}', 'data.T=32'])
    assert 'data.T' in msg and '64' in msg and '32' in msg, msg
    assert (out / 'config.yaml').read_text() == old
    assert sorted(p.name for p in out.iterdir()) == ['config.yaml']


# 6. the raw-log export reads back as the same gestures, or says what it changed
def gestures(rows):
    T = max(len(r) for r in rows)
    g = np.zeros((len(rows), T, 3), np.float32)
    for i, r in enumerate(rows):
        g[i, : len(r)] = r
    return _make(g, [len(r) for r in rows], 'model:test')


def read_back(path):
    cfg = CacheConfig(T=64)
    return segment_session(read_session_csv(path, 'u', cfg), cfg)


def test_balabit_csv_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for L in (5, 12, 30, 3):
        d = rng.integers(-20, 21, (L, 2)).astype(np.float32)
        d[0] = (7, 3)  # moves
        dt = rng.integers(1, 40, L) / 1000
        rows.append(np.c_[d, dt])
    st = gestures(rows)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        p = to_balabit_csv(st, tmp_path / 'g.csv')
    back = read_back(p)
    np.testing.assert_array_equal(back.lengths, st.lengths)
    np.testing.assert_array_equal(back.dxdy, np.concatenate([r[:, :2] for r in rows]))
    np.testing.assert_allclose(back.dt, np.concatenate([r[:, 2] for r in rows]), atol=1e-9)


def test_balabit_csv_says_what_it_changed(tmp_path):
    long_step = np.array([[5, 0, 0.01], [5, 0, 0.8], [5, 0, 0.01], [5, 0, 0.01]], np.float32)
    wide = np.array([[1500, 0, 0.01], [1500, 0, 0.01], [5, 0, 0.01]], np.float32)
    fine = np.array([[5, 1, 0.01], [5, 1, 0.01], [5, 1, 0.01]], np.float32)
    st = gestures([long_step, wide, fine])
    with pytest.warns(UserWarning) as w:
        to_balabit_csv(st, tmp_path / 'g.csv')
    msg = ' '.join(str(x.message) for x in w)
    assert '1 gesture' in msg and '0.5' in msg, msg  # the long step
    assert 'screen' in msg, msg  # the wide path
    back = read_back(tmp_path / 'g.csv')
    assert list(back.lengths).count(3) >= 1
