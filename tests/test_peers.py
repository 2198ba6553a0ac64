"The peers (third-party human-like mouse generators) as baselines: exact step counts, on-target ends, seeds, seconds."
import warnings

import numpy as np
import pytest

from factored_timing import peers
from factored_timing.assembly import from_timing_cache
from factored_timing.cache import build_cache, load_timing_cache

RNG = np.random.default_rng(7)
ANG = RNG.uniform(0, 2 * np.pi, 24)
DIST = RNG.uniform(100, 800, 24)  # HumanMoveMouse: duration ∝ distance (33 px: 35 ms)
NET = np.round(np.column_stack([DIST * np.cos(ANG), DIST * np.sin(ANG)]))
LENGTHS = RNG.integers(3, 60, 24)
T = 64


def need(peer):
    """Skip unless `peer` is installed: `pytest.importorskip` for cursory; HumanMoveMouse's package
    (`humanmouse`) cannot be imported without a display, so its model file is checked the way the
    adapter loads it."""
    if peer == 'cursory':
        pytest.importorskip('cursory')
    why = peers.peers_available()[peer]
    if why is not None:
        pytest.skip(why)


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return build_cache('synthetic', out=tmp_path_factory.mktemp('cache'), T=T, seed=0)


def check_common(st, name, every_duration=True):
    """L steps exactly, pixel grid, Δt ≥ 0 and in seconds: every duration in 0.05..10 s (a clock in
    ms would give 50..10000), or only the median where `every_duration` is False."""
    assert st.source == f'baseline:{name}'
    np.testing.assert_array_equal(st.lengths, LENGTHS)                # exactly L steps
    assert (st.dxdy == np.round(st.dxdy)).all()                        # pixel grid
    assert (st.dt >= 0).all() and (st.dt[~st.mask] == 0).all() and (st.duration > 0).all()
    D = st.duration if every_duration else np.median(st.duration)
    assert ((D > 0.05) & (D < 10)).all(), st.duration


def test_cursory_exact_steps_and_target():
    need('cursory')
    st = peers.cursory_peer(NET, LENGTHS, T, seed=0)
    check_common(st, 'cursory')
    np.testing.assert_array_equal(st.dxdy.sum(1), NET)                # on target, exactly
    ms = st.dt[st.mask] * 1000
    np.testing.assert_allclose(ms, np.round(ms), atol=1e-3)           # its clock: whole ms
    assert st.meta['version'] == '2.1.0' and st.meta['zero_targets'] == 0


def test_humanmovemouse_exact_steps_and_target():
    need('HumanMoveMouse')
    st = peers.humanmovemouse_peer(NET, LENGTHS, T, seed=0)
    check_common(st, 'humanmovemouse')
    err = np.abs(st.dxdy.sum(1) - NET)
    assert err.max() <= 2, err.max()                                   # its end jitter (0.3 px)
    assert st.meta['model'] == 'bundled' and st.meta['version'] == '1.2.0'


@pytest.mark.parametrize('peer', ['cursory', 'HumanMoveMouse'])
def test_seeded_and_independent_of_global_rng(peer):
    need(peer)
    make = peers.cursory_peer if peer == 'cursory' else peers.humanmovemouse_peer
    a = make(NET, LENGTHS, T, seed=3)
    np.random.seed(123)
    state = np.random.get_state()
    b = make(NET, LENGTHS, T, seed=3)
    assert np.array_equal(np.random.get_state()[1], state[1])          # global RNG untouched
    np.testing.assert_array_equal(a.gestures, b.gestures)
    assert not np.array_equal(make(NET, LENGTHS, T, seed=4).gestures, a.gestures)
    np.testing.assert_array_equal(make(NET[:5], LENGTHS[:5], T, seed=3).gestures, a.gestures[:5])


def test_zero_target_is_stationary():
    need('cursory')
    st = peers.cursory_peer([[0.0, 0.0], [10.0, 0.0]], [4, 4], 8, seed=0)
    assert (st.dxdy[0] == 0).all() and st.meta['zero_targets'] == 1
    np.testing.assert_allclose(st.duration[0], 4 * peers.ZERO_TARGET_DT, rtol=1e-6)


def test_bad_targets_are_refused():
    with pytest.raises(ValueError, match='1..T'):
        peers.cursory_peer([[5.0, 5.0]], [9], 8)
    with pytest.raises(ValueError, match=r'\[N,2\]'):
        peers.humanmovemouse_peer([5.0, 5.0], [3], 8)


def test_missing_peer_is_left_out_with_a_warning(monkeypatch, cache_dir):
    real = from_timing_cache(load_timing_cache(cache_dir, 'test'), np.arange(6))
    missing = {'cursory': f"cursory is not installed: {peers.PIP_HINT}",
               'HumanMoveMouse': f"humanmovemouse is not installed: {peers.PIP_HINT}"}
    monkeypatch.setattr(peers, 'peers_available', lambda: missing)
    with pytest.warns(UserWarning) as rec:
        out = peers.peer_baselines(real, seed=0)
    assert out == {}
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 2 and all('\n' not in m and 'factored_timing[peers]' in m for m in msgs)
    assert any('cursory' in m for m in msgs) and any('humanmovemouse' in m for m in msgs)


def test_peer_baselines_on_real_targets(cache_dir):
    need('cursory')
    need('HumanMoveMouse')
    real = from_timing_cache(load_timing_cache(cache_dir, 'test'), np.arange(20))
    with warnings.catch_warnings():
        warnings.simplefilter('error')                                 # nothing to warn about
        out = peers.peer_baselines(real, seed=0)
    assert set(out) == {'cursory', 'HumanMoveMouse'}
    for st in out.values():
        np.testing.assert_array_equal(st.lengths, real.lengths)


def test_fit_on_a_synthetic_train_split(cache_dir):
    need('HumanMoveMouse')
    train = from_timing_cache(load_timing_cache(cache_dir, 'train'))
    state = np.random.get_state()
    model, info = peers.humanmovemouse_fit(train, n=200, seed=0)
    assert np.array_equal(np.random.get_state()[1], state[1])
    assert info['offered'] == 200 and info['used'] >= 50 and info['bad_dt'] == 0, info
    assert info['used'] + info['too_short'] + info['bad_dt'] == 200
    st = peers.humanmovemouse_peer(NET, LENGTHS, T, seed=0, model=model)
    # fitted: (distance, duration) drawn apart from the target's distance, then the duration is
    # scaled by distance / drawn distance, so long targets can take 10-15 s; only the median here
    check_common(st, 'humanmovemouse_fitted', every_duration=False)
    assert np.abs(st.dxdy.sum(1) - NET).max() <= 2
    model2, info2 = peers.humanmovemouse_fit(train, n=200, seed=0)
    assert info2 == info
    np.testing.assert_array_equal(model2.gmm_global.means_, model.gmm_global.means_)
    with pytest.raises(TypeError, match='SpatioTemporal'):
        peers.humanmovemouse_fit(train.gestures)
