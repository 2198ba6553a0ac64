"""Any mouse log through the main job (issue 14 item 2): `ft_run dataset=csv` on a millisecond-clock log in the layout
`client timestamp,button,state,x,y`, two sessions per user, with no code change — and val/test sets that hold every user."""
import json, subprocess, sys

import pytest

from factored_timing.cache import synthetic_sessions, STATE_CODES, load_manifest

STATE = {v: k for k, v in STATE_CODES.items()}


def write_ms_log(root, n_users=3, sessions=2, gestures=120):
    "A small generated log: 1 ms timestamps in whole ms, 125 Hz polling with jitter, no shared tick."
    for s in synthetic_sessions(seed=0, clock='ms', n_users=n_users, sessions_per_user=sessions,
                                gestures_per_session=gestures):
        d = root / s.user
        d.mkdir(parents=True, exist_ok=True)
        rows = [f"{round(t * 1000)},NoButton,{STATE.get(int(c), 'Move')},{int(x)},{int(y)}"
                for t, x, y, c in zip(s.t, s.x, s.y, s.state)]
        (d / f'{s.name}.csv').write_text('client timestamp,button,state,x,y\n' + '\n'.join(rows) + '\n')


def test_ft_run_on_a_millisecond_csv_log(tmp_path):
    write_ms_log(tmp_path / 'log')
    out = tmp_path / 'run'
    r = subprocess.run(
        [sys.executable, '-c', 'from factored_timing.pipeline import ft_run; ft_run()', 'dataset=csv',
         f'data_dir={tmp_path / "log"}', 'data.time_unit=ms', 'data.pause=0.5', 'data.max_coord=3000',
         f'out={out}', f'data.out={tmp_path / "cache"}', 'training.epochs=2', 'timing.epochs=2', 'model.dim=8',
         'evaluate.n_gestures=60', 'evaluate.n_permutations=0', 'evaluate.peers=false', 'evaluate.sample_steps=5',
         'evaluate.detectors=[gbdt]', 'run.progress=false', 'run.threads=2'],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    m = json.loads((out / 'metrics.json').read_text())
    man = load_manifest(m['cache']['cache_dir'])
    assert man['tick'] == 0                                   # a millisecond clock: no tick found
    assert man['config']['time_unit'] == 'ms' and man['config']['sentinel'] == 3000
    assert man['split_in_time'] == ['user0', 'user1', 'user2']          # two sessions each: cut in time
    counts = {s: c['gestures'] for s, c in man['counts'].items()}
    assert counts['val'] >= 0.1 * counts['train'] and counts['test'] >= 0.1 * counts['train'], counts
    assert 'factored model (ours)' in m['c2st'] and 'full_nn_acc' not in m['c2st']['factored model (ours)']


def test_seconds_read_as_milliseconds_are_named(tmp_path):
    write_ms_log(tmp_path / 'log', n_users=1, sessions=1, gestures=20)
    r = subprocess.run(
        [sys.executable, '-c', 'from factored_timing.pipeline import ft_run; ft_run()', 'dataset=csv',
         f'data_dir={tmp_path / "log"}', 'data.time_unit=s', f'out={tmp_path / "run"}',
         f'data.out={tmp_path / "cache"}', 'run.progress=false'],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "look like milliseconds" in r.stderr and "time_unit" in r.stderr, r.stderr[-1500:]
