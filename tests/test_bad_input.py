"""Bad input is refused in one line, never silently wrong: numeric CLI arguments, empty training,
unsafe checkpoints, stale temporary files, whole-config validation, the raw-log CSV export, screen
bounds and pause, runs from another directory, training/comparison tool errors, files in the wrong
time unit, and the tick-less synthetic clock."""
import json, os, pickle, subprocess, sys, warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from factored_timing import pipeline
from factored_timing.assembly import _make, to_balabit_csv
from factored_timing.base import CheckpointError, load_weights_only, save_atomic
from factored_timing.cache import (CacheConfig, DataFormatError, build_cache, estimate_tick,
                                   load_manifest, load_stats, read_session_csv, segment_session,
                                   synthetic_sessions)
from factored_timing.diffusion import GeometryDiffusion, GeometrySpec, geometry_dataset
from factored_timing.pipeline import (ft_build_cache, ft_compare_timing, ft_run, ft_sample,
                                      ft_train_diffusion, ft_train_timing, job_config, load_config,
                                      sample_run)
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
        ('data.pause=0', ['data.pause', '> 0', '0']),
        ('data.pause=-1', ['data.pause', '> 0', '-1']),
        ('data.pause=abc', ['data.pause', 'a number', "'abc'"]),
        ('data.max_coord=0', ['data.max_coord', '> 0']),
        ('data.max_coord=wide', ['data.max_coord', 'a number', "'wide'"]),
        ('data.synthetic_clock=us', ['data.synthetic_clock', 'tick', 'ms', "'us'"]),
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


def read_back(path, **kw):
    cfg = CacheConfig(T=64, **kw)
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
    assert (p.n, p.pause, p.changes) == (4, 0.5, {})
    back = read_back(p)
    np.testing.assert_array_equal(back.lengths, st.lengths)
    np.testing.assert_array_equal(back.dxdy, np.concatenate([r[:, :2] for r in rows]))
    np.testing.assert_allclose(back.dt, np.concatenate([r[:, 2] for r in rows]), atol=1e-9)



def steps_of(rows):
    return np.concatenate([r[:, :2] for r in rows]), np.concatenate([r[:, 2] for r in rows])


def test_balabit_csv_round_trips_long_steps_and_wide_paths(tmp_path):
    long_step = np.array([[5, 0, 0.01], [5, 0, 0.8], [5, 0, 0.01], [5, 0, 0.01]], np.float32)
    wide = np.array([[1500, 0, 0.01], [1500, 0, 0.01], [5, 0, 0.01]], np.float32)  # 3005 px
    tall = np.array([[0, -700, 0.02], [3, -700, 0.02], [0, 5, 0.02]], np.float32)  # 1400 px up
    fine = np.array([[5, 1, 0.01], [5, 1, 0.01], [5, 1, 0.01]], np.float32)
    rows = [fine, long_step, wide, tall, fine]
    with pytest.warns(UserWarning) as w:
        ex = to_balabit_csv(gestures(rows), tmp_path / 'g.csv')
    assert ex.changes == {'long_step': 1, 'wider_than_screen': 2} and ex.pause == 0.801, ex
    msg = ' '.join(str(x.message) for x in w)
    assert "1 gesture(s) have a step longer than the reader's pause of 0.5 s" in msg, msg
    assert 'pause=0.801' in msg and '2 gesture(s) are wider or taller than the 1920x1080' in msg
    back = read_back(ex, pause=ex.pause)  # the reader with the pause the export asked for
    np.testing.assert_array_equal(back.lengths, [len(r) for r in rows])
    dxdy, dt = steps_of(rows)
    np.testing.assert_array_equal(back.dxdy, dxdy)
    np.testing.assert_allclose(back.dt, dt, atol=1e-6)
    # a cache built from the written folder holds the same gestures
    d = tmp_path / 'data' / 'generated'
    d.mkdir(parents=True)
    (d / 'session_1').write_bytes(Path(ex).read_bytes())
    c = build_cache('csv', data_dir=tmp_path / 'data', out=tmp_path / 'c', pause=ex.pause,
                    split_fracs=(1, 0, 0))
    assert load_manifest(c)['counts']['train']['gestures'] == len(rows)


def test_balabit_csv_reports_what_cannot_read_back(tmp_path):
    huge = np.array([[3000, 0, 0.01], [3000, 0, 0.01], [5, 0, 0.01]], np.float32)  # > 4000 px
    rep = np.array([[5, 0, 0.01], [0, 0, 0.0], [5, 0, 0.01]], np.float32)  # a repeated row
    short = np.array([[5, 0, 0.01], [5, 0, 0.01]], np.float32)  # fewer than min_steps
    with pytest.warns(UserWarning, match="beyond the reader's max_coord of 4000 px"):
        ex = to_balabit_csv(gestures([huge, rep, short]), tmp_path / 'g.csv')
    assert ex.changes == {'wider_than_screen': 1, 'beyond_max_coord': 1, 'repeated_row': 1,
                          'too_short': 1}, ex.changes
    with pytest.warns(UserWarning, match='wider or taller'):
        ex = to_balabit_csv(gestures([huge]), tmp_path / 'w.csv', reader=CacheConfig(sentinel=8000))
    assert ex.changes == {'wider_than_screen': 1}
    np.testing.assert_array_equal(read_back(ex, sentinel=8000).dxdy, huge[:, :2])


def test_balabit_csv_without_clicks_refuses_merging_gestures(tmp_path):
    long_step = np.array([[5, 0, 0.01], [5, 0, 0.8], [5, 0, 0.01]], np.float32)
    fine = np.array([[5, 1, 0.01], [5, 1, 0.01], [5, 1, 0.01]], np.float32)
    st = gestures([long_step, fine])
    with pytest.raises(ValueError, match=r"pause=0.7 s between gestures must exceed .*0.801"):
        to_balabit_csv(st, tmp_path / 'g.csv', click=False, pause=0.7)
    assert not (tmp_path / 'g.csv').exists()
    with pytest.warns(UserWarning):
        ex = to_balabit_csv(st, tmp_path / 'g.csv', click=False, pause=2.0)
    np.testing.assert_array_equal(read_back(ex, pause=ex.pause).lengths, [3, 3])


# 7. screen bounds and pause: validated, configurable, default fingerprints unchanged
GOOD = "".join(f"{i * 0.016:.3f},NoButton,Move,{100 + 3 * i},{200 + i}\n" for i in range(8))
HEADER = "client timestamp,button,state,x,y\n"


def session_file(tmp_path, body, user='user1', name='session_1'):
    p = tmp_path / 'data' / user / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(HEADER + body)
    return p


@pytest.mark.parametrize(
    'kw, msg',
    [
        (dict(pause=0.0), "--pause must be > 0, got 0.0"),
        (dict(pause=-0.5), "--pause must be > 0, got -0.5"),
        (dict(pause=float('nan')), "--pause must be a finite number, got nan"),
        (dict(max_coord=0.0), "--max_coord must be > 0, got 0.0"),
        (dict(max_coord=-1.0), "--max_coord must be > 0, got -1.0"),
        (dict(max_coord=float('inf')), "--max_coord must be a finite number, got inf"),
        (dict(dataset='csv', synthetic_clock='ms'), "--synthetic_clock is for --dataset synthetic"),
    ],
)
def test_ft_build_cache_screen_and_pause_flags(tmp_path, kw, msg):
    assert one_line_exit(ft_build_cache, out=str(tmp_path), **kw) == f"ft_build_cache: error: {msg}"
    assert not any(tmp_path.iterdir())


def test_ft_build_cache_non_numeric_flag_is_one_error_line(tmp_path, flag='--max_coord'):
    code = "import sys; from factored_timing.pipeline import ft_build_cache as f; f()"
    r = subprocess.run([sys.executable, '-c', code, flag, 'abc', '--out', str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.endswith(f"argument {flag}: invalid float value: 'abc'"), r.stderr


def test_cache_config_refuses_bad_thresholds():
    for kw in (dict(pause=0), dict(pause=-1), dict(pause='abc'), dict(sentinel=0),
               dict(sentinel=float('nan'))):
        with pytest.raises(ValueError, match=r"must be a finite number > 0") as e:
            CacheConfig(**kw)
        assert '\n' not in str(e.value)


def test_max_coord_keeps_a_wide_screen(tmp_path, capsys):
    ts = [1.0 + i * 0.016 for i in range(8)]  # a second monitor: x beyond 4000 px
    rows = "".join(f"{t:.3f},NoButton,Move,{5000 + 3 * i},{200 + i}\n" for i, t in enumerate(ts))
    session_file(tmp_path, GOOD + "0.9,NoButton,Pressed,0,0\n" + rows)
    common = dict(dataset='csv', data_dir=str(tmp_path / 'data'))
    c = build_cache(**common, out=tmp_path / 'a', split_fracs=(1, 0, 0))
    assert load_manifest(c)['skipped']['offscreen']['count'] == 8
    c = build_cache(**common, out=tmp_path / 'b', split_fracs=(1, 0, 0), sentinel=7680)
    man = load_manifest(c)
    assert 'offscreen' not in man['skipped'] and man['counts']['train']['gestures'] == 2
    assert man['config']['sentinel'] == 7680.0


def test_default_fingerprints_do_not_see_the_new_keys(tmp_path):
    fp = lambda c: load_manifest(c)['fingerprint']
    c0 = build_cache('synthetic', out=tmp_path / 'a', T=32)
    c1 = build_cache('synthetic', out=tmp_path / 'b', T=32, synth={'clock': 'tick'}, pause=0.5,
                     sentinel=4000)
    assert c0.name == c1.name == 'synthetic-T32' and fp(c0) == fp(c1)
    assert load_manifest(c1)['synthetic'] is None


def test_ft_run_passes_the_data_thresholds_to_the_cache(tmp_path, monkeypatch):
    seen = {}

    def stop(*a, **kw):
        seen.update(kw)
        raise DataFormatError('stop here')

    monkeypatch.setattr(pipeline, 'build_cache', stop)
    args = [f'out={tmp_path}/run', 'data.pause=0.7', 'data.max_coord=7680']
    args.append('data.synthetic_clock=ms')
    assert one_line_exit(ft_run, args) == 'ft_run: error: stop here'
    assert seen['pause'] == 0.7 and seen['sentinel'] == 7680.0 and seen['synth'] == {'clock': 'ms'}
    one_line_exit(ft_run, [f'out={tmp_path}/run2'])
    assert (seen['pause'], seen['sentinel'], seen['synth']) == (0.5, 4000.0, {'clock': 'tick'})


# 8. a run made from relative paths works from any directory, with its own cache
def test_relative_run_and_cache_work_from_another_cwd(tmp_path, monkeypatch, capsys):
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir(), b.mkdir()
    monkeypatch.chdir(a)
    rel = Path('data/cache/datasets/synthetic-T32')
    assert build_cache('synthetic', out='data/cache', T=32) == rel  # relative, as given
    tiny = ['--config-name', 'cpu_tiny', 'data.T=32', f'data.cache_dir={rel}']
    ft_train_timing([*tiny, 'timing.out=run/timing', 'timing.epochs=1'])
    ft_train_diffusion([*tiny, 'run.dir=run/diffusion', 'training.max_steps=2',
                        'training.val=false'])
    cfg = load_config('ft_run', ['data.T=32', 'evaluate.sample_steps=2'])
    Path('run/config.yaml').write_text(OmegaConf.to_yaml(cfg, resolve=True))
    fp = load_manifest(rel)['fingerprint']
    monkeypatch.chdir(b)  # another cwd, holding another cache at the same relative path
    other = build_cache('synthetic', out='data/cache', T=32, seed=1)
    assert other == rel and load_manifest(other)['fingerprint'] != fp
    st = sample_run(a / 'run', 5, 'five.npz', seed=2)
    assert len(st) == 5 and Path('five.npz').exists()
    ck = torch.load(a / 'run' / 'diffusion' / 'ckpt_last.pt', weights_only=True)
    assert Path(ck['spec']['cache_dir']) == (a / rel).resolve()  # absolute: its own cache
    assert ck['spec']['fingerprint'] == fp


# 9. ft_train_diffusion and ft_compare_timing: one line, non-zero exit, no traceback
@pytest.fixture(scope='module')
def broken_caches(cache_dir, tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp('broken')
    bad_val = Path(shutil.copytree(cache_dir, root / 'bad_val'))
    (bad_val / 'val_timing.pt').write_bytes(b'garbage')
    no_train = Path(shutil.copytree(cache_dir, root / 'no_train'))
    (no_train / 'train_timing.pt').unlink()
    return dict(missing=root / 'missing', bad_val=bad_val, no_train=no_train, good=cache_dir)


@pytest.mark.parametrize(
    'which, extra, words',
    [
        ('missing', [], ['has no stats.pt', 'ft_build_cache']),
        ('no_train', [], ["split 'train' is not in this cache"]),
        ('bad_val', [], ['val_timing.pt', 'corrupt']),
        ('good', ['training.batch_size=100000'], ['no full batch of 100000']),
    ],
)
def test_ft_train_diffusion_errors_are_one_line(broken_caches, tmp_path, which, extra, words):
    argv = ['--config-name', 'cpu_tiny', 'data.T=32', f'data.cache_dir={broken_caches[which]}',
            f'run.dir={tmp_path}/run', 'training.max_steps=1', *extra]
    msg = one_line_exit(ft_train_diffusion, argv)
    assert msg.startswith('ft_train_diffusion: error: '), msg
    for w in words:
        assert w in msg, (w, msg)


@pytest.mark.parametrize(
    'which, kw, words',
    [
        ('missing', {}, ['no manifest.json', 'ft_build_cache']),
        ('good', dict(split='nonsense'), ["split 'nonsense' is not in this cache", 'train']),
        ('no_train', dict(split='train'), ["split 'train' is not in this cache"]),
        ('bad_val', {}, ['val_timing.pt', 'corrupt']),
        ('good', dict(checkpoint='nope.pt'), ['nope.pt', 'no such timing checkpoint']),
    ],
)
def test_ft_compare_timing_errors_are_one_line(broken_caches, tmp_path, which, kw, words):
    ck = tmp_path / 'timing.pt'
    ck.write_bytes(b'not a checkpoint')
    kw = {'checkpoint': str(ck), 'cache': str(broken_caches[which]), **kw}
    if kw['checkpoint'] == 'nope.pt':
        kw['checkpoint'] = str(tmp_path / 'nope.pt')
    msg = one_line_exit(ft_compare_timing, **kw)
    assert msg.startswith('ft_compare_timing: error: '), msg
    for w in words:
        assert w in msg, (w, msg)


@pytest.mark.parametrize(
    'tool, args',
    [
        ('ft_train_diffusion', ['data.cache_dir=/no/such/cache']),
        ('ft_compare_timing', ['--checkpoint', 'x.pt', '--cache', '/no/such/cache']),
    ],
)
def test_tool_errors_exit_non_zero_without_traceback(tool, args):
    code = f"import sys; from factored_timing.pipeline import {tool} as f; sys.argv[0] = '{tool}'"
    code += "; f()"
    r = subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'{tool}: error: '), r.stderr


# 10. a file in the wrong time unit: skipped and counted, or refused with --strict
def test_wrong_time_unit_file_is_skipped_and_counted(tmp_path):
    session_file(tmp_path, GOOD)  # seconds
    ms = "".join(f"{i * 16},NoButton,Move,{10 + i},{20 + 2 * i}\n" for i in range(10))
    bad = session_file(tmp_path, ms, user='user2')  # milliseconds, read as seconds
    c = build_cache('csv', data_dir=tmp_path / 'data', out=tmp_path / 'c', split_fracs=(1, 0, 0))
    man = load_manifest(c)
    assert man['counts']['train']['gestures'] == 1
    sk = man['skipped']['time_unit']
    assert sk['count'] == 1 and str(bad) in sk['examples'][0]
    assert "look like milliseconds; pass time_unit='ms'" in sk['examples'][0]
    with pytest.raises(DataFormatError, match=r"user2/session_1: .*look like milliseconds"):
        build_cache('csv', data_dir=tmp_path / 'data', out=tmp_path / 'd', split_fracs=(1, 0, 0),
                    on_bad='raise')
    msg = one_line_exit(ft_build_cache, dataset='csv', data_dir=str(tmp_path / 'data'),
                        out=str(tmp_path / 'e'), strict=True)
    assert 'look like milliseconds' in msg, msg


def test_no_file_left_names_the_unit(tmp_path):
    session_file(tmp_path, GOOD)
    session_file(tmp_path, GOOD, user='user2')
    with pytest.raises(DataFormatError) as e:
        build_cache('csv', data_dir=tmp_path / 'data', out=tmp_path / 'c', time_unit='ms',
                    split_fracs=(1, 0, 0))
    msg = str(e.value)
    assert 'none of the 2 session files' in msg and '2 file(s) skipped for their time unit' in msg
    assert "look like seconds; pass time_unit='s'" in msg and '\n' not in msg


# 11. the synthetic data without a tick: 1 ms times, a 125 Hz mouse
@pytest.fixture(scope='module')
def ms_cache(tmp_path_factory):
    return build_cache('synthetic', out=tmp_path_factory.mktemp('ms'), synth={'clock': 'ms'})


def test_synthetic_tick_clock_is_unchanged():
    a, b = synthetic_sessions(seed=3, n_users=2, sessions_per_user=1), synthetic_sessions(
        seed=3, n_users=2, sessions_per_user=1, clock='tick')
    for s, t in zip(a, b):
        for k in ('t', 'x', 'y', 'state', 'line'):
            assert getattr(s, k).tobytes() == getattr(t, k).tobytes()
    with pytest.raises(ValueError, match="clock must be one of"):
        synthetic_sessions(clock='us')


def test_synthetic_ms_clock_has_no_tick(ms_cache, tmp_path):
    s = synthetic_sessions(seed=0, n_users=2, sessions_per_user=1, clock='ms')[0]
    ms = np.round(s.t * 1000)
    assert np.abs(s.t * 1000 - ms).max() < 1e-6  # whole milliseconds
    man, st = load_manifest(ms_cache), load_stats(ms_cache)
    assert ms_cache.name == 'synthetic-ms-T64' and man['synthetic'] == {'clock': 'ms'}
    assert man['tick'] == 0 and st['tick'] == 0
    assert 0.006 <= st['dt_median'] <= 0.011, st['dt_median']
    d = np.diff(s.t)
    assert estimate_tick(d[(d > 0) & (d < 0.3)])[0] == 0
    tick = build_cache('synthetic', out=tmp_path, T=64)
    assert abs(load_stats(tick)['tick'] - 0.015625) < 2e-4
    assert load_manifest(tick)['fingerprint'] != man['fingerprint']


def test_ft_build_cache_synthetic_clock_flag(ms_cache, capsys):
    ft_build_cache(out=str(ms_cache.parents[1]), synthetic_clock='ms')  # reuses the built cache
    summ = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summ['id'] == 'synthetic-ms-T64' and summ['tick'] == 0
    assert summ['fingerprint'] == load_manifest(ms_cache)['fingerprint']
