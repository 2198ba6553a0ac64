"""Gestures for the user's targets (issue 14 item 1): the shipped model from the command line and Python, placed on
the screen, landing on the targets exactly, in the exchange .npz, the raw-log CSV and JSON lines."""
import json, subprocess, sys

import numpy as np
import pandas as pd
import pytest

from factored_timing.assembly import load_npz, positions, events
from factored_timing.pretrained import generate_path, generate_paths, read_targets


def test_generate_paths_hits_every_target_exactly():
    start = np.array([[100, 100], [1500, 900], [640, 480], [10, 1000]])
    end = np.array([[900, 120], [1400, 100], [642, 483], [1900, 10]])
    st = generate_paths(start, end, seed=4)
    for p, s, e in zip(positions(st), start, end):
        assert (p[0] == s).all() and (p[-1] == e).all()                    # exactly, on whole pixels
        assert (p == np.round(p)).all()
    assert st.meta['endpoint_error_raw_px'].shape == (4,)                   # what the correction removed
    assert (st.dt[st.mask] >= 0).all() and (st.duration > 0).all()
    again = generate_paths(start, end, seed=4)
    assert np.array_equal(again.gestures, st.gestures)                      # seeded


def test_step_counts_follow_the_distance_and_the_given_ones_are_kept():
    n = 200
    short = generate_paths(np.zeros((n, 2)), np.tile([20, 0], (n, 1)), seed=0, sample_steps=5)
    long = generate_paths(np.zeros((n, 2)), np.tile([1200, 0], (n, 1)), seed=0, sample_steps=5)
    assert np.median(long.lengths) > np.median(short.lengths) + 3
    fixed = generate_paths([0, 0], [300, 300], steps=17, user=3, seed=1, sample_steps=5)
    assert fixed.lengths.tolist() == [17] and fixed.meta['user'].tolist() == [3]


def test_generate_path_returns_its_events():
    ev = generate_path((10, 20), (400, 300), seed=2, sample_steps=5)
    assert list(ev.columns) == ['event', 't', 'x', 'y', 'dx', 'dy', 'dt']
    assert ev.iloc[0][['t', 'x', 'y', 'dx', 'dy', 'dt']].tolist() == [0, 10, 20, 0, 0, 0]
    assert ev.iloc[-1][['x', 'y']].tolist() == [400, 300]
    np.testing.assert_allclose(np.diff(ev['t']), ev['dt'].values[1:], atol=1e-9)
    np.testing.assert_allclose(np.diff(ev[['x', 'y']].values, axis=0), ev[['dx', 'dy']].values[1:])


def test_ft_sample_targets_writes_npz_csv_and_jsonl(tmp_path):
    t = tmp_path / 'targets.csv'
    t.write_text('start_x,start_y,end_x,end_y,user,steps\n100,100,800,400,,\n800,400,120,640,2,30\n')
    out, raw, jl = tmp_path / 'g.npz', tmp_path / 'g.csv', tmp_path / 'g.jsonl'
    r = subprocess.run([sys.executable, '-c', 'from factored_timing.pipeline import ft_sample; ft_sample()',
                        '--pretrained', 'balabit', '--targets', str(t), '--steps', '5', '--out', str(out),
                        '--csv', str(raw), '--jsonl', str(jl)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    said = json.loads(r.stdout.splitlines()[-1])
    assert said['n'] == 2 and said['endpoint_error_raw_px_p50'] >= 0
    st = load_npz(out)
    assert st.meta['end'].tolist() == [[800, 400], [120, 640]] and st.lengths[1] == 30
    recs = [json.loads(line) for line in jl.read_text().splitlines()]
    assert [r['end'] for r in recs] == [[800, 400], [120, 640]] and len(recs[1]['x']) == 31
    df = pd.read_csv(raw)
    moves = df[df['state'] == 'Move']
    assert moves[['x', 'y']].values[0].tolist() == [100, 100]
    assert [800, 400] in moves[['x', 'y']].values.tolist() and [120, 640] in moves[['x', 'y']].values.tolist()


@pytest.mark.parametrize('text, msg', [
    ('start_x,start_y,end_x\n0,0,1\n', 'line 1: missing column(s) end_y'),
    ('start_x,start_y,end_x,end_y\n0,0,1,1\n0,0,1,nan\n', "line 3: end_y='nan' is not a finite number"),
    ('start_x,start_y,end_x,end_y,user\n0,0,1,1,-2\n', "line 2: user='-2' is not a whole number ≥ 0"),
    ('start_x,start_y,end_x,end_y,steps\n0,0,1,1,999\n', 'line 2: steps=999 is outside the model'),
    ('start_x,start_y,end_x,end_y,user\n0,0,1,1,99\n', 'line 2: user=99 is outside the model'),
    ('start_x,start_y,end_x,end_y\n', 'no targets'),
])
def test_bad_targets_name_the_file_and_line(tmp_path, text, msg):
    t = tmp_path / 'bad.csv'
    t.write_text(text)
    r = subprocess.run([sys.executable, '-c', 'from factored_timing.pipeline import ft_sample; ft_sample()',
                        '--pretrained', 'balabit', '--targets', str(t), '--out', str(tmp_path / 'x.npz')],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('ft_sample: error: ') and 'bad.csv' in err[0] and msg in err[0], err
    assert not (tmp_path / 'x.npz').exists()
