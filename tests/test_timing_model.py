"""Tests of the timing heads and their trainer (issue 3): plan 000 §6.1 and the trainer's guarantees.

Everything runs on the synthetic cache, built into a temporary directory (seconds), on one CPU thread."""
import json, math
import pytest
import torch

from factored_timing.cache import build_cache, load_timing_cache
from factored_timing.timing_heads import (TimingModel, masked_dirichlet_log_prob, sample_masked_dirichlet,
                                          lognormal_nll, quantize_to_ticks, unfloor_profile, PROFILE_PARAMS)
from factored_timing.base import CheckpointError
from factored_timing.timing_train import (train_timing, load_timing_checkpoint, load_timing_model, CKPT_NAME,
                                          compare_timing, fit_baseline, baseline_nll, timing_tensors)
from factored_timing.pipeline import ft_train_timing, ft_compare_timing

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def syn(tmp_path_factory):
    return build_cache('synthetic', out=tmp_path_factory.mktemp('cache'))


@pytest.fixture(scope='module')
def trained(syn, tmp_path_factory):
    "One short run on the synthetic cache, shared by the tests that need a trained model."
    out = tmp_path_factory.mktemp('run')
    summary = train_timing(syn, out, epochs=15, batch_size=64, seed=0, quiet=True)
    return summary, out


def toy_model(T=6, **kw):
    stats = dict(feature_mean=torch.zeros(4), feature_std=torch.ones(4), user_prior=torch.tensor([0.5, 0.5]),
                 n_users=2, T=T, mu_D=math.log(0.5), sigma_D=0.4, tick=0.015625, floor=0.0078125)
    kw = {'profile_param': 'direct', 'step_geometry': False, **kw}  # the Dirichlet, unless asked
    return TimingModel.from_stats(stats, hidden=16, **kw)


MASK = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)


def test_masked_dirichlet_matches_torch_and_ignores_padding():
    torch.manual_seed(0)
    alpha = torch.rand(4, 5) * 3 + 0.2
    w = torch.distributions.Dirichlet(alpha).sample()
    full = torch.ones(4, 5, dtype=torch.bool)
    assert torch.allclose(masked_dirichlet_log_prob(alpha, w, full), torch.distributions.Dirichlet(alpha).log_prob(w), atol=1e-4)
    m = torch.tensor([[1, 1, 1, 0, 0]], dtype=torch.bool)
    w3 = torch.tensor([[0.2, 0.5, 0.3, 0., 0.]])
    a_pad1 = torch.tensor([[1.5, 2., 0.7, 3., 9.]])
    a_pad2 = torch.tensor([[1.5, 2., 0.7, float('inf'), 0.01]])
    ref = torch.distributions.Dirichlet(a_pad1[:, :3]).log_prob(w3[:, :3])
    for a in (a_pad1, a_pad2):
        assert torch.allclose(masked_dirichlet_log_prob(a, w3, m), ref, atol=1e-5)


@pytest.mark.parametrize('param', PROFILE_PARAMS)
def test_uniform_alpha_gives_constant_profile(param):
    "Plan 000 §6.1: uniform α ⇒ the head's mean is the constant profile 1/L (deterministic and Monte Carlo)."
    torch.manual_seed(0)
    model = toy_model(profile_param=param, zeros='floor')
    with torch.no_grad(): model.profile.proj.weight.zero_()   # α_t equal for every step (bias is constant)
    cond = dict(features=torch.randn(3, 4), mask=MASK)
    flat = MASK / MASK.sum(-1, keepdim=True)
    _, w = model.sample(cond, deterministic=True, unfloor=False)
    assert torch.allclose(w, flat, atol=1e-6)
    big = {k: v.repeat(3000, 1) for k, v in cond.items()}
    _, ws = model.sample(big, unfloor=False)
    assert torch.allclose(ws.view(3000, 3, 6).mean(0), flat, atol=0.01)
    # and a non-uniform α is *not* reported as constant (the test above can fail)
    with torch.no_grad(): model.profile.proj.bias.copy_(torch.linspace(-2, 2, model.profile.proj.bias.numel()))
    _, w = model.sample(cond, deterministic=True, unfloor=False)
    assert not torch.allclose(w, flat, atol=1e-3)


def test_duration_head_recovers_known_lognormal():
    "Plan 000 §6.1: μ̂, σ̂ within 0.03 of μ = log 0.5, σ = 0.4 (standard errors ≈ 0.006 and 0.004 at n = 4096)."
    torch.manual_seed(0)
    n, mu, sigma = 4096, math.log(0.5), 0.4
    D = torch.exp(mu + sigma * torch.randn(n))
    model = TimingModel(n_features=4, n_users=1, T=6, hidden=16, mu_D=0., sigma_D=1., step_geometry=False)
    opt = torch.optim.Adam(model.duration.parameters(), lr=0.05)
    feats, users, mask = torch.randn(n, 4), torch.zeros(n, dtype=torch.long), torch.ones(n, 6, dtype=torch.bool)
    for _ in range(300):
        out = model(feats, mask, users)
        loss = lognormal_nll(out['mu'], out['log_sigma'], D).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    assert abs(out['mu'].mean().item() - mu) < 0.03
    assert abs(out['log_sigma'].exp().mean().item() - sigma) < 0.03
    with pytest.raises(ValueError): lognormal_nll(torch.zeros(1), torch.zeros(1), torch.zeros(1))


@pytest.mark.parametrize('zeros', ['inflate', 'floor'])
@pytest.mark.parametrize('kw', [dict(), dict(deterministic=True), dict(quantize=True)])
def test_masking_zero_dt_on_padding_and_shares_sum_to_one(zeros, kw):
    torch.manual_seed(0)
    model = toy_model(zeros=zeros)
    cond = dict(features=torch.randn(300, 4), mask=MASK.repeat(100, 1))
    D, w = model.sample(cond, **kw)
    dt = D[:, None] * w
    assert (dt[~cond['mask']] == 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(300), atol=1e-5)
    assert (D > 0).all() and (w >= 0).all()


@pytest.mark.parametrize('kw', [dict(), dict(deterministic=True)])
def test_tick_head_samples_on_the_lattice(kw):
    "The tick head: zero Δt on padding, shares sum to 1, D > 0, every Δt a whole number of ticks."
    torch.manual_seed(0)
    model = toy_model(profile_param='ticks', step_geometry=True, max_ticks=8)
    assert model.ticks and model.zero_head is None
    mask = MASK.repeat(100, 1)
    cond = dict(features=torch.randn(300, 4), mask=mask, dxdy=torch.randn(300, 6, 2) * 5 * mask[..., None])
    D, w = model.sample(cond, **kw)
    assert D.dtype == w.dtype == torch.float64  # D·w gives back the logged Δt exactly
    dt = D[:, None] * w
    assert (dt[~mask] == 0).all() and (D > 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(300, dtype=w.dtype), atol=1e-5)
    k = dt / 0.015625
    assert torch.allclose(k, k.round(), atol=1e-3) and k.max() <= 8 + 1e-6
    with pytest.raises(ValueError, match='dxdy'):
        model.sample(dict(features=cond['features'], mask=mask))


def test_tick_head_through_the_assembly_gives_the_logged_values_exactly():
    """Δt of the tick head, joined to a path by the assembly helper, are the values a millisecond log
    holds, bit for bit (float32 of whole ms): a float32 D·w was off in the last bits for a third of
    the steps (0.10900001 for 109 ms), and a detector that reads exact values caught it."""
    import numpy as np
    from factored_timing.assembly import TimingConfig, compose_spatiotemporal_sequence

    torch.manual_seed(0)
    stats = dict(feature_mean=torch.zeros(16), feature_std=torch.ones(16), n_users=2, T=6,
                 user_prior=torch.tensor([0.5, 0.5]), mu_D=math.log(0.5), sigma_D=0.4, tick=0.015625,
                 floor=0.0078125, geom_mean=torch.zeros(2), geom_std=torch.ones(2))
    model = TimingModel.from_stats(stats, hidden=16, profile_param='ticks', max_ticks=8,
                                   clock_resolution=1e-3).eval()
    mask = MASK.repeat(200, 1)
    geom = torch.randn(600, 6, 2) * 3 * mask[..., None]
    st = compose_spatiotemporal_sequence(geom, dict(mask=mask), model, TimingConfig(stats, seed=0))
    dt = np.array(st.gestures)[..., 2]
    valid = dt[mask.numpy()]
    assert (valid == (np.round(valid.astype(np.float64) * 1000) / 1000).astype(np.float32)).all()
    ms = np.round(valid * 1000)
    assert set(np.unique(ms).tolist()) <= {0, 15, 16, 31, 32, 46, 47, 62, 63, 78, 79, 93, 94, 109, 110,
                                           125}


@pytest.mark.parametrize('kw', [dict(), dict(deterministic=True), dict(quantize=True)])
def test_dirichlet_writes_times_on_the_logs_resolution(kw):
    """A Dirichlet head of a millisecond log (no tick) stamps event times in whole ms, as the log
    does: every Δt a whole number of ms, bit for bit in float32, zeros where two events share a ms."""
    import numpy as np

    torch.manual_seed(0)
    model = toy_model(clock_resolution=1e-3)
    mask = MASK.repeat(100, 1)
    D, w = model.sample(dict(features=torch.randn(300, 4), mask=mask), **kw)
    assert D.dtype == w.dtype == torch.float64 and (D >= 1e-3).all()
    dt = (D[:, None] * w).float().numpy()
    assert (dt == (np.round(dt.astype(np.float64) * 1000) / 1000).astype(np.float32)).all()
    assert (dt[~mask.numpy()] == 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(300, dtype=w.dtype))
    D0, w0 = toy_model().sample(dict(features=torch.randn(300, 4), mask=mask), **kw)
    ms0 = (D0[:, None] * w0)[mask].double() * 1000
    assert (ms0 - ms0.round()).abs().max() > 0.01  # without a resolution: continuous times


def test_sampling_is_a_dirichlet_and_users_come_from_the_prior():
    torch.manual_seed(0)
    alpha = torch.tensor([[4., 2., 1., 1., 7.]]).expand(20000, 5)
    mask = torch.tensor([[1, 1, 1, 1, 0]], dtype=torch.bool).expand(20000, 5)
    w = sample_masked_dirichlet(alpha, mask)
    assert torch.allclose(w.mean(0), torch.tensor([0.5, 0.25, 0.125, 0.125, 0.]), atol=0.01)
    assert (w[:, 4] == 0).all()
    model = toy_model()
    with torch.no_grad(): model.user_prior.copy_(torch.tensor([0., 1.]))
    assert (model.sample_users(500) == 1).all()


def test_quantize_and_unfloor():
    D = torch.tensor([0.1]); m = torch.tensor([[1, 1, 1, 1, 0]], dtype=torch.bool)
    w = torch.tensor([[0.05, 0.25, 0.1, 0.6, 0.]])
    Dq, wq = quantize_to_ticks(D, w, m, 0.015625)
    ticks = Dq[:, None] * wq / 0.015625
    assert torch.allclose(ticks, ticks.round(), atol=1e-5) and (wq[0, :4] == 0).any()
    assert torch.allclose(wq.sum(), torch.tensor(1.))
    dt = torch.tensor([[0.2, 0., 0.1, 0.2, 0.]]); Dt = dt.sum(-1); delta = 0.01
    wt = (dt + delta) / (Dt[:, None] + 4 * delta) * m
    assert torch.allclose(unfloor_profile(wt, Dt, m, delta), dt / Dt[:, None], atol=1e-6)


def test_training_beats_baseline_and_recovers_the_synthetic_profile(syn, trained):
    "The profile head recovers the synthetic data's known non-uniform profile (long first step) on val."
    summary, out = trained
    assert summary['beats_baseline'] and not summary['collapse']
    val = load_timing_cache(syn, 'val')
    model = load_timing_model(out/CKPT_NAME, fingerprint=val['fingerprint'])
    t = timing_tensors(val, {'feature_mean': model.feature_mean, 'feature_std': model.feature_std})
    with torch.no_grad():
        mp = model.mean_profile(model(t['features'], t['mask'], t['user'], t['dxdy']), t['mask'])
    L = t['mask'].sum(-1); i = torch.arange(len(L))
    flat_first = (1. / L).mean().item()
    data_first, model_first = t['profile'][:, 0].mean().item(), mp[:, 0].mean().item()
    data_last, model_last = t['profile'][i, L - 1].mean().item(), mp[i, L - 1].mean().item()
    assert data_first > 1.2 * flat_first                     # the known profile is not flat ...
    assert abs(model_first - data_first) < 0.1 * data_first  # ... and the head recovers it
    assert abs(model_last - data_last) < 0.25 * data_last
    # the duration head's conditional μ tracks the data: per-gesture D correlates with exp(μ)
    with torch.no_grad(): mu = model(t['features'], t['mask'], t['user'], t['dxdy'])['mu']
    assert torch.corrcoef(torch.stack([mu, t['duration'].log()]))[0, 1] > 0.5


def test_baseline_is_a_likelihood_maximum(syn):
    train = load_timing_cache(syn, 'train')
    for zeros in ('inflate', 'floor'):
        base = fit_baseline(train, zeros)
        assert abs(base['mu'] - train['stats']['mu_D']) < 1e-4
        nll = lambda s: baseline_nll({**base, 's': s}, train)['profile']
        assert nll(base['s']) <= min(nll(base['s'] * 1.5), nll(base['s'] / 1.5))


def test_resume_after_interruption_gives_the_same_weights(syn, tmp_path):
    kw = dict(epochs=4, batch_size=128, seed=3, quiet=True)
    train_timing(syn, tmp_path/'full', **kw)

    def interrupt(epoch, rec):
        if epoch == 2: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt): train_timing(syn, tmp_path/'cut', callbacks=[interrupt], **kw)
    assert torch.load(tmp_path/'cut'/CKPT_NAME, weights_only=True)['epoch'] == 2
    train_timing(syn, tmp_path/'cut', resume=True, **kw)
    a, b = (torch.load(p/CKPT_NAME, weights_only=True) for p in (tmp_path/'full', tmp_path/'cut'))
    assert b['epoch'] == 4
    for k in a['model']: assert torch.equal(a['model'][k], b['model'][k]), k
    for k in a['ema']: assert torch.equal(a['ema'][k], b['ema'][k]), k
    # a different seed does give different weights (so the equality above is not vacuous)
    train_timing(syn, tmp_path/'other', **{**kw, 'seed': 4})
    c = torch.load(tmp_path/'other'/CKPT_NAME, weights_only=True)
    assert not all(torch.equal(a['model'][k], c['model'][k]) for k in a['model'])


def test_corrupt_and_mismatched_checkpoints_are_refused(syn, trained, tmp_path):
    _, out = trained
    ck = out/CKPT_NAME
    assert not list(out.glob('*.tmp'))                       # atomic writes leave no temp file behind
    bad = tmp_path/'bad.pt'; bad.write_bytes(ck.read_bytes()[:4000])
    with pytest.raises(CheckpointError, match='corrupt'): load_timing_checkpoint(bad)
    with pytest.raises(CheckpointError, match='fingerprint'): load_timing_checkpoint(ck, fingerprint='0' * 32)
    with pytest.raises(CheckpointError, match='T: checkpoint has 64, expected 32'): load_timing_checkpoint(ck, T=32)
    torch.save({'hello': 1}, tmp_path/'other.pt')
    with pytest.raises(CheckpointError, match='not a timing checkpoint'): load_timing_checkpoint(tmp_path/'other.pt')
    with pytest.raises(FileExistsError): train_timing(syn, out, epochs=15, quiet=True)
    other = build_cache('synthetic', out=tmp_path/'other_cache', seed=1)
    with pytest.raises(CheckpointError, match='fingerprint'): train_timing(other, out, epochs=15, resume=True, quiet=True)


def test_compare_and_clis(syn, trained, tmp_path, capsys, monkeypatch):
    _, out = trained
    job = ['--config-name', 'cpu_tiny', f'data.cache_dir={syn}', f'timing.out={tmp_path/"cli"}', 'timing.epochs=2']
    ft_train_timing(job)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['epochs'] == 2 and summary['checkpoint'].endswith(CKPT_NAME)
    with pytest.raises(SystemExit, match='timing.resume=true'):   # refuses to overwrite a run silently
        ft_train_timing(job)
    ft_compare_timing(checkpoint=str(out/CKPT_NAME), cache=str(syn/'val_timing.pt'), samples=300, json=True,
                      plot=str(tmp_path/'cmp.png'))
    lines = capsys.readouterr().out.strip().splitlines()
    printed = json.loads(lines[-1])
    assert len(lines) == 1                                         # --json: the JSON line only
    assert printed['n'] == 300 and (tmp_path/'cmp.png').stat().st_size > 0
    q = printed['duration_quantiles']
    assert list(q) == ['q05', 'q25', 'q50', 'q75', 'q95'] and all(set(e) == {'real', 'sampled', 'rel_err'} for e in q.values())
    # the tool prints what the library computes
    val = load_timing_cache(syn, 'val')
    model = load_timing_model(out/CKPT_NAME)
    assert 0 <= printed['ks_D'] <= 1 and compare_timing(model, val, samples=300)['ks_D'] == printed['ks_D']
    # the real side really is the data: its median is the split's median duration over the same gestures
    full = compare_timing(model, val, samples=0)
    assert abs(full['duration_quantiles']['q50']['real'] - val['duration'].median().item()) < 0.02
    assert abs(full['duration_quantiles']['q50']['rel_err']) < 0.1 and full['ks_D'] < 0.1
    other = build_cache('synthetic', out=tmp_path/'o', seed=1)
    argv = ['ft_compare_timing', '--checkpoint', str(out/CKPT_NAME), '--cache', str(other), '--samples', '100', '--json']
    monkeypatch.setattr('sys.argv', argv)                          # as the console script: flags from sys.argv
    with pytest.raises(SystemExit, match='^ft_compare_timing: error: .*fingerprint'):
        ft_compare_timing()


def _duration_dependent_data(n=3000, T=4, seed=0):
    "Profiles that depend on D only (the features say nothing): long gestures end slowly, short ones start slowly."
    g = torch.Generator().manual_seed(seed)
    D = torch.exp(0.5 * torch.randn(n, generator=g))
    hi, lo = torch.tensor([10., 10., 10., 60.]), torch.tensor([60., 10., 10., 10.])
    alpha = torch.where((D > 1)[:, None], hi, lo)
    torch.manual_seed(seed)
    w = torch.distributions.Dirichlet(alpha).sample()
    return dict(features=torch.zeros(n, 4), user=torch.zeros(n, dtype=torch.long), mask=torch.ones(n, T, dtype=torch.bool),
                duration=D, profile=w, dt=D[:, None] * w)


@pytest.mark.parametrize('given_D', [True, False])
def test_profile_given_duration(given_D):
    "With condition_on_duration the profile head learns p(w | D); without it, it cannot, and its α ignores D."
    data = _duration_dependent_data()
    torch.manual_seed(0)
    model = toy_model(T=4, condition_on_duration=given_D)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        out = model.nll(data); loss = (out['duration'] + out['profile']).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        nll_w = model.nll(data)['profile'].mean().item()
        a_long = model(data['features'][:1], data['mask'][:1], data['user'][:1], duration=torch.tensor([3.]))['alpha']
        a_short = model(data['features'][:1], data['mask'][:1], data['user'][:1], duration=torch.tensor([0.3]))['alpha']
    if given_D:
        assert nll_w < -5.0, nll_w                                       # near the true model (-6.08); independent: -2.15
        assert a_long[0, 3] > 2 * a_long[0, 0] and a_short[0, 0] > 2 * a_short[0, 3]
        torch.manual_seed(1)                                             # samples follow the sampled D
        D, w = model.sample(dict(features=torch.zeros(4000, 4), mask=torch.ones(4000, 4, dtype=torch.bool), user=torch.zeros(4000, dtype=torch.long)))
        assert w[D > 1.3, 3].mean() > 1.5 * w[D > 1.3, 0].mean() and w[D < 0.7, 0].mean() > 1.5 * w[D < 0.7, 3].mean()
    else:
        assert nll_w > -3.0, nll_w                                       # one profile for all D: a much worse fit
        assert torch.equal(a_long, a_short)
