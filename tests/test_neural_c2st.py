"""Tests of the neural C2ST (`factored_timing.evaluation.neural_c2st` and friends).

Runs on the small synthetic cache of `00_cache` (built once per module in a temp dir); CPU only,
one thread, well under a minute.
"""

import json

import numpy as np
import pytest
import torch

from factored_timing.cache import build_cache, load_timing_cache
from factored_timing.assembly import from_baseline, from_timing_cache
from factored_timing import evaluation as ev


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    cdir = build_cache(dataset='synthetic', out=tmp_path_factory.mktemp('cache'), T=64, seed=0)
    return {s: load_timing_cache(cdir, s) for s in ('train', 'test')}


def halves(st, seed=0):
    "Two disjoint random halves of a sample."
    idx = np.random.default_rng(seed).permutation(len(st))
    h = len(st) // 2
    return st[idx[:h]], st[idx[h:]]


def dt_times_2(st):
    "The same gestures with every Δt doubled (a test double of a too-slow timing model)."
    return from_baseline(st.dxdy, 2 * st.dt, st.lengths, 'dt_x2')


@pytest.fixture(scope='module')
def test_halves(cache):
    return halves(from_timing_cache(cache['test']))


def test_same_seed_same_result_and_caller_state_kept(test_halves):
    a, b = test_halves
    kw = dict(max_per_class=80, n_splits=3, seed=4)
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    r1 = ev.neural_c2st(a, b, 'full', **kw)
    r2 = ev.neural_c2st(a, b, 'full', **kw)
    assert r1 == r2 and len(r1['fold_accuracies']) == 3 and r1['n_per_class'] == 80
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
    keys = {'accuracy', 'accuracy_std', 'auc', 'p_binomial', 'p_value', 'n_per_class', 'n_splits'}
    assert keys | {'seed', 'fold_accuracies', 'detector'} <= set(r1)
    assert r1['detector'] == 'neural' and np.isnan(r1['p_value'])


def test_real_vs_real_halves_is_chance(cache):
    a, b = halves(from_timing_cache(cache['train']), seed=1)  # 473 gestures per side
    r = ev.neural_c2st(a, b, 'full', seed=0)
    assert abs(r['accuracy'] - 0.5) <= 0.05 and abs(r['auc'] - 0.5) <= 0.06, r
    assert r['p_binomial'] > 0.01


def test_doubled_dt_is_seen_by_full_and_not_by_geometry(test_halves):
    a, b = test_halves
    slow = dt_times_2(b)
    full = ev.neural_c2st(a, slow, 'full', seed=0)
    assert full['accuracy'] >= 0.8 and full['auc'] > 0.85 and full['p_binomial'] < 1e-10, full
    geo = ev.neural_c2st(a, slow, 'geometry', seed=0)
    assert abs(geo['accuracy'] - 0.5) <= 0.05, geo
    # Δt cannot leak into the geometry-only judge: its inputs ignore Δt entirely
    np.testing.assert_array_equal(
        ev.judge_sequences(slow, 'geometry'), ev.judge_sequences(b, 'geometry')
    )
    assert ev.sequence_channels('geometry') == ev.GEOMETRY_CHANNELS + ['mask']


def test_inputs_refuse_raw_arrays_and_bad_variants(test_halves):
    a, _ = test_halves
    with pytest.raises(TypeError, match='SpatioTemporal'):
        ev.neural_c2st(np.array(a.gestures), a)
    with pytest.raises(TypeError, match='SpatioTemporal'):
        ev.judge_sequences(np.array(a.gestures))
    with pytest.raises(TypeError, match='geometry-only'):
        ev.geometry_sequences(a, a.lengths)
    with pytest.raises(ValueError, match='variant'):
        ev.judge_sequences(a, 'speed')
    with pytest.raises(ValueError, match='at least'):
        ev.neural_c2st(a[:4], a[4:8])


def test_side_by_side_has_the_neural_columns(test_halves):
    a, b = test_halves
    gens = {'real half': b, 'line': ev.straight_line(*ev.targets_of(b), b.T, dt=0.03)}
    df = ev.side_by_side(
        a, gens, seed=0, n_permutations=0, max_per_class=80, neural_kw={'n_splits': 3}
    )
    for v in ev.VARIANTS:
        for c in ('acc', 'acc_std', 'auc', 'p', 'p_binom'):
            assert f'{v}_{c}' in df
        for c in ('nn_acc', 'nn_acc_std', 'nn_auc', 'nn_p_binom'):
            assert f'{v}_{c}' in df
    nn_acc = df['full_nn_acc']
    assert nn_acc['line'] > 0.9 and nn_acc['real half'] < 0.65, nn_acc
    assert (df['n_per_class'] == 80).all()
    only = ev.side_by_side(
        a, gens, seed=0, n_permutations=0, max_per_class=80, detectors=('gbdt',),
        variants=('geometry',),
    )
    assert not any('_nn_' in c for c in only) and 'geometry_acc' in only
    # the gbdt columns do not depend on whether the neural judge ran too
    np.testing.assert_array_equal(only['geometry_acc'], df['geometry_acc'])
    rec = json.loads(json.dumps(ev.eval_record(df, seed=0)))
    assert rec['judge']['full_features'] == ev.FULL_FEATURES
    assert rec['neural_judge']['channels']['full'] == ev.sequence_channels('full')
    assert len(ev.plot_side_by_side(df, detectors=ev.DETECTORS).patches) == 2 * 4
