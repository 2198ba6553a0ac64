"""Tests of factored_timing.diffusion (through the application's config where a run is needed): shapes, masking,
objectives, sampler, endpoint correction, checkpoints, config, DDP."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest, torch

from factored_timing.cache import build_cache
from factored_timing.dataset import GestureDataset
from factored_timing.base import CheckpointError, save_checkpoint
from factored_timing.dataset import normalize, denormalize
from factored_timing.diffusion import (
    UNet1D, GeometryDiffusion, GeometrySpec, correct_endpoint, ddim_sample, diffusion_loss, empirical_conditions,
    endpoint_error, geometry_dataset, load_diffusion, load_diffusion_checkpoint, make_scheduler, masked_mse,
    step_randomness, target_features)
from factored_timing.pipeline import load_config, run_short, train_geometry

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return build_cache('synthetic', out=tmp_path_factory.mktemp('cache'), T=64, seed=0)


def tiny_cfg(cache_dir, run_dir, *overrides):
    return load_config('cpu_tiny', [f'data.cache_dir={cache_dir}', f'run.dir={run_dir}', *overrides])


def masks(lengths, T=64): return torch.arange(T)[None] < torch.tensor(lengths)[:, None]


# ---------------------------------------------------------------- model, loss
@pytest.mark.parametrize('T,mults', [(64, (1, 2, 4)), (32, (1, 2)), (128, (1, 2, 2, 2))])
def test_unet_shapes_and_padding(T, mults):
    net = UNet1D(2, 2, dim=8, dim_mults=mults, num_res_blocks=1, groups=4, n_users=3)
    mask = masks([T, 7, 1], T)
    out = net(torch.randn(3, T, 2), torch.tensor([0, 500, 999]), mask=mask, cond=torch.randn(3, 5), user=torch.tensor([0, 2, 3]))
    assert out.shape == (3, T, 2)
    assert out[~mask].abs().sum() == 0 and out[mask].abs().sum() > 0
    with pytest.raises(AssertionError, match='divisible'):
        net(torch.randn(1, T + 1, 2), torch.tensor([1]), mask=torch.ones(1, T + 1, dtype=torch.bool))


def test_conditioning_changes_output():
    torch.manual_seed(0)
    net = UNet1D(dim=8, dim_mults=(1, 2), num_res_blocks=1, groups=4, n_users=2)
    x, t, mask = torch.randn(2, 64, 2), torch.tensor([10, 10]), masks([20, 20])
    c = torch.randn(2, 5)
    base = net(x, t, mask=mask, cond=c, user=torch.tensor([0, 0]))
    assert not torch.allclose(base, net(x, t, mask=mask, cond=c + 1, user=torch.tensor([0, 0])))      # target
    assert not torch.allclose(base, net(x, t, mask=mask, cond=c, user=torch.tensor([1, 1])))          # user
    assert not torch.allclose(base, net(x, t + 500, mask=mask, cond=c, user=torch.tensor([0, 0])))    # timestep


@pytest.mark.parametrize('objective', ['epsilon', 'v'])
def test_loss_ignores_padding(objective):
    torch.manual_seed(0)
    net, sched = UNet1D(dim=8, dim_mults=(1, 2), num_res_blocks=1, groups=4), make_scheduler(objective)
    mask = masks([64, 30, 5, 1])
    x0, noise, t = torch.randn(4, 64, 2), torch.randn(4, 64, 2), torch.randint(0, 1000, (4,))
    loss = diffusion_loss(net, x0, mask=mask, t=t, noise=noise, scheduler=sched)
    x0b, nb = x0.clone(), noise.clone()
    x0b[~mask], nb[~mask] = 100., -50.
    torch.testing.assert_close(diffusion_loss(net, x0b, mask=mask, t=t, noise=nb, scheduler=sched), loss)
    x0c = x0.clone(); x0c[1, 3] += 5.                                   # a valid step does count
    assert not torch.allclose(diffusion_loss(net, x0c, mask=mask, t=t, noise=noise, scheduler=sched), loss)


def test_masked_mse_is_per_gesture_mean():
    pred, target = torch.zeros(2, 4, 2), torch.ones(2, 4, 2)
    target[0, 2:] = 100.                                                # padding of gesture 0
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    assert masked_mse(pred, target, mask).item() == pytest.approx(1.0)
    # the mean of two half-batches equals the full-batch loss (what DDP gradient averaging needs)
    full = masked_mse(pred, target, mask)
    halves = (masked_mse(pred[:1], target[:1], mask[:1]) + masked_mse(pred[1:], target[1:], mask[1:])) / 2
    torch.testing.assert_close(full, halves)


def test_target_features():
    f = target_features(torch.tensor([[100., -100.], [0., 0.]]), torch.tensor([64, 8]), T=64, net_scale=100.)
    assert f.shape == (2, 5)
    torch.testing.assert_close(f[0, :2], torch.asinh(torch.tensor([1., -1.])))
    torch.testing.assert_close(f[1, 3:], torch.tensor([8 / 64, 3 / 6]))


def test_v_target_is_diffusers_velocity():
    "With a model that outputs the true v, the v-objective loss is 0 (and the ε-target is not v)."
    sched = make_scheduler('v')
    x0, noise, t, mask = torch.randn(3, 64, 2), torch.randn(3, 64, 2), torch.tensor([1, 400, 999]), masks([64, 10, 3])
    m = mask[..., None].float()
    v = sched.get_velocity(x0 * m, noise * m, t)
    a = sched.alphas_cumprod[t].sqrt()[:, None, None]; s = (1 - sched.alphas_cumprod[t]).sqrt()[:, None, None]
    torch.testing.assert_close(v, (a * noise - s * x0) * m)              # v = √ᾱ ε − √(1−ᾱ) x₀
    oracle = lambda x_t, t_, mask, cond=None, user=None, drift=None: v
    assert diffusion_loss(oracle, x0, mask=mask, t=t, noise=noise, scheduler=sched).item() < 1e-10
    assert diffusion_loss(oracle, x0, mask=mask, t=t, noise=noise, scheduler=make_scheduler('epsilon')).item() > 0.1


def test_step_randomness_shards_the_global_batch():
    full = step_randomness(3, 7, 8, 64, 2, num_train_timesteps=1000, user_dropout=.5)
    for r in range(2):
        part = step_randomness(3, 7, 8, 64, 2, num_train_timesteps=1000, user_dropout=.5, rank=r, world=2)
        for f, p in zip(full, part): assert torch.equal(f[r::2], p)
    assert not torch.equal(full[1], step_randomness(3, 8, 8, 64, 2, num_train_timesteps=1000, user_dropout=.5)[1])


# ---------------------------------------------------------------- training
@pytest.mark.parametrize('objective', ['epsilon', 'v'])
def test_objectives_train_with_decreasing_loss(cache_dir, tmp_path, objective):
    s = train_geometry(tiny_cfg(cache_dir, tmp_path, f'training.objective={objective}', 'training.epochs=3', 'eval.n_samples=0'))
    epochs = json.loads((tmp_path / 'metrics.json').read_text())['epochs']
    tl, vl = [e['train_loss'] for e in epochs], [e['val_loss'] for e in epochs]
    assert tl[-1] < 0.8 * tl[0], tl
    assert vl[-1] < vl[0], vl
    assert load_diffusion(s.checkpoint).spec.objective == objective
    assert (tmp_path / 'loss.png').stat().st_size > 1000 and (tmp_path / 'metrics.csv').exists()


def test_resume_equals_uninterrupted(cache_dir, tmp_path):
    "1 epoch + resume to 2 epochs gives the weights of an uninterrupted 2-epoch run."
    common = ['training.batch_size=64', 'eval.n_samples=0', 'training.val=false']
    train_geometry(tiny_cfg(cache_dir, tmp_path / 'a', 'training.epochs=1', *common))
    s = train_geometry(tiny_cfg(cache_dir, tmp_path / 'a', 'training.epochs=2', *common))
    train_geometry(tiny_cfg(cache_dir, tmp_path / 'b', 'training.epochs=2', *common))
    a, b = (torch.load(tmp_path / d / 'ckpt_last.pt', weights_only=True) for d in 'ab')
    assert a['step'] == b['step'] == s.step == 2 * (947 // 64)
    assert len(a['history']['epochs']) == 2
    for k in a['model']: torch.testing.assert_close(a['model'][k], b['model'][k], rtol=0, atol=1e-6)
    with pytest.raises(CheckpointError, match='model'):                  # resuming with another architecture
        train_geometry(tiny_cfg(cache_dir, tmp_path / 'a', 'training.epochs=3', 'model.dim=16', *common))


# ---------------------------------------------------------------- sampling
@pytest.fixture(scope='module')
def trained(cache_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp('trained')
    s = train_geometry(tiny_cfg(cache_dir, d, 'training.objective=v', 'training.epochs=3', 'eval.n_samples=0'))
    return s.checkpoint


def test_sampler_determinism_and_padding(trained, cache_dir):
    model = load_diffusion(trained)
    ds = geometry_dataset(cache_dir, 'val')
    cond = empirical_conditions(ds, 24, seed=1)
    torch.testing.assert_close(empirical_conditions(ds, 24, seed=1)['net'], cond['net'])
    assert not torch.equal(empirical_conditions(ds, 24, seed=2)['lengths'], cond['lengths'])
    a = model.sample(**cond, steps=5, seed=0, batch_size=10)
    b = model.sample(**cond, steps=5, seed=0, batch_size=10)
    c = model.sample(**cond, steps=5, seed=1, batch_size=10)
    assert torch.equal(a.x, b.x) and not torch.allclose(a.x, c.x)
    assert a.x.shape == (24, 64, 2) and a.mask.shape == (24, 64)
    assert torch.equal(a.mask.sum(1), cond['lengths'])
    assert a.x[~a.mask].abs().sum() == 0


def test_endpoint_correction(trained, cache_dir):
    model = load_diffusion(trained)
    ds = geometry_dataset(cache_dir, 'val')
    cond = empirical_conditions(ds, 64, seed=0)
    out = model.sample(**cond, steps=10, seed=0)
    raw, fixed = out.endpoint_error_raw, out.endpoint_error
    assert raw.median() > 1.0                       # a barely trained model misses
    assert fixed.max() < 1e-2                       # the correction lands exactly (float32 rounding)
    torch.testing.assert_close(endpoint_error(out.x, out.mask, cond['net'], model.spec.stats), fixed)
    uncorrected = model.sample(**cond, steps=10, seed=0, correct=False)
    torch.testing.assert_close(endpoint_error(uncorrected.x, out.mask, cond['net'], model.spec.stats), raw)


def test_correct_endpoint_properties():
    stats = {'geom_mean': torch.tensor([.5, -.5]), 'geom_std': torch.tensor([20., 10.])}
    mask = masks([10, 1, 5])
    px = torch.randn(3, 64, 2) * 30 * mask[..., None]
    px[0, 4] = 0.                                    # a step that did not move (duplicate event)
    px[2, :5] = 0.                                   # a path of zero length: uniform spreading
    x = normalize(px, mask, stats)
    target = torch.tensor([[100., 50.], [-7., 3.], [10., -20.]])
    y = correct_endpoint(x, mask, target, stats)
    out = denormalize(y, mask, stats)
    torch.testing.assert_close(out.sum(1), target, atol=1e-3, rtol=0)
    assert out[0, 4].abs().max() < 1e-4              # zero step stays zero
    torch.testing.assert_close(out[2, :5], target[2].expand(5, 2) / 5, atol=1e-4, rtol=0)
    assert y[~mask].abs().sum() == 0
    # weights ∝ step length: steps change in proportion to their length
    d = (out[0] - px[0])[:10]; lens = px[0, :10].norm(dim=1)
    torch.testing.assert_close(d.norm(dim=1) / d.norm(dim=1).sum(), lens / lens.sum(), atol=1e-3, rtol=0)


def test_denormalize_matches_dataset(cache_dir):
    ds = GestureDataset(cache_dir, 'train')
    b = [ds[i] for i in range(8)]
    x, mask = torch.stack([i['x'] for i in b]), torch.stack([i['mask'] for i in b])
    stats = {'geom_mean': ds.mean, 'geom_std': ds.std}
    torch.testing.assert_close(denormalize(x, mask, stats), ds.denormalize(x, mask), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(denormalize(x, mask, stats).sum(1), torch.stack([i['net'] for i in b]), atol=1e-3, rtol=1e-5)


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_and_refusal(trained, tmp_path):
    ck = load_diffusion_checkpoint(trained, T=64)
    assert ck['kind'] == 'diffusion' and ck['spec']['T'] == 64 and ck['fingerprint'] == ck['spec']['fingerprint']
    model = load_diffusion(trained, fingerprint=ck['fingerprint'])
    ema = {k[len('module.'):]: v for k, v in ck['ema'].items() if k.startswith('module.')}
    for k, v in model.state_dict().items(): assert torch.equal(v, ema[k])
    raw = load_diffusion(trained, ema=False)
    assert any(not torch.equal(raw.state_dict()[k], ema[k]) for k in ema)   # EMA differs from raw weights
    # a copy saved and loaded again is identical
    p = save_checkpoint(tmp_path / 'copy.pt', {k: v for k, v in ck.items() if k not in ('format', 'kind')},
                        kind='diffusion')
    assert [f.name for f in tmp_path.iterdir()] == ['copy.pt']
    for k, v in load_diffusion_checkpoint(p)['model'].items(): assert torch.equal(v, ck['model'][k])
    with pytest.raises(CheckpointError, match='fingerprint'): load_diffusion(trained, fingerprint='0' * 32)
    with pytest.raises(CheckpointError, match='T: checkpoint has 64, expected 128'): load_diffusion(trained, T=128)
    bad = tmp_path / 'bad.pt'; bad.write_bytes(Path(trained).read_bytes()[:2000])
    with pytest.raises(CheckpointError, match='corrupt'): load_diffusion(bad)
    (tmp_path / 'other.pt').write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='corrupt'): load_diffusion(tmp_path / 'other.pt')
    torch.save({'format': 'something else'}, tmp_path / 'foreign.pt')
    with pytest.raises(CheckpointError, match='not a diffusion checkpoint'): load_diffusion(tmp_path / 'foreign.pt')


def test_resume_refuses_other_cache(cache_dir, tmp_path):
    d = tmp_path / 'run'
    train_geometry(tiny_cfg(cache_dir, d, 'training.max_steps=2', 'eval.n_samples=0', 'training.val=false'))
    other = build_cache('synthetic', out=tmp_path / 'other', T=64, seed=1)
    with pytest.raises(CheckpointError, match='fingerprint'):
        train_geometry(tiny_cfg(other, d, 'training.max_steps=4', 'eval.n_samples=0', 'training.val=false'))


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    p = save_checkpoint(tmp_path / 'ck.pt', {'T': 64, 'x': torch.ones(3)}, kind='diffusion')
    before = p.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(p, {'T': 64, 'bad': lambda: 0}, kind='diffusion')    # not picklable
    assert p.read_bytes() == before and [f.name for f in tmp_path.iterdir()] == ['ck.pt']


# ---------------------------------------------------------------- config and scripts
def test_configs_ship_in_the_package(monkeypatch, tmp_path):
    import factored_timing
    conf = Path(factored_timing.__file__).parent / 'conf'
    assert {p.name for p in conf.glob('*.yaml')} == {'ft_run.yaml', 'exp_factored_timing.yaml', 'cpu_tiny.yaml'}
    monkeypatch.chdir(tmp_path)                                         # found from anywhere: the package search path
    cfg = load_config('exp_factored_timing', ['+timing.eval_assign=true', 'training.objective=v'])
    assert cfg.model.in_channels == 2 and cfg.training.objective == 'v' and cfg.timing.eval_assign is True
    assert {'enabled', 'head_hidden', 'dirichlet_rank', 'loss_weights', 'cache_path'} <= set(cfg.timing)
    alt = tmp_path / 'conf'; shutil.copytree(conf, alt)
    (alt / 'exp_factored_timing.yaml').write_text((alt / 'exp_factored_timing.yaml').read_text().replace('dim: 16', 'dim: 24'))
    monkeypatch.setenv('FT_CONF_DIR', str(alt))
    assert load_config('exp_factored_timing').model.dim == 24
    assert load_config('ft_run').model.dim == 24                          # ft_run.yaml composes it


def test_run_short_logs_stats(cache_dir, tmp_path):
    r = run_short(tiny_cfg(cache_dir, tmp_path, 'training.epochs=1', 'eval.n_samples=16', 'timing.enabled=false'))
    saved = json.loads((tmp_path / 'short_run.json').read_text())
    assert saved['geometry']['endpoint_median_px_corrected'] < 1e-2 and len(saved['geometry']['gen_norm_std']) == 2
    assert 'timing' not in saved and r['timing_source'] == 'timing disabled'
    with pytest.raises(ValueError, match='at most 5 epochs'):
        run_short(tiny_cfg(cache_dir, tmp_path / 'x', 'training.epochs=6'))


def test_run_short_timing(cache_dir, tmp_path):
    r = run_short(tiny_cfg(cache_dir, tmp_path, 'training.epochs=1', 'eval.n_samples=32', 'timing.epochs=2',
                           'timing.enabled=true'))
    for side in ('real', 'generated'):
        t = r['timing'][side]
        assert t['mean_duration_s'] > 0 and t['dt_median_s'] >= 0 and t['vel_abs_p95_px_s'] > 0
    assert (tmp_path / 'timing').exists()
    r2 = run_short(tiny_cfg(cache_dir, tmp_path / 'abl', 'training.epochs=1', 'eval.n_samples=8', '+timing.eval_assign=false',
                            'timing.enabled=true'))
    assert 'timing' not in r2 and 'eval_assign=false' in r2['timing_source']


# ---------------------------------------------------------------- more than one process
def _launch(args, run_dir, cache_dir, nproc=None, extra=()):
    code = "import sys; from factored_timing.pipeline import ft_train_diffusion; ft_train_diffusion(sys.argv[1:])"
    cmd = [sys.executable, '-c', code]
    if nproc: cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}',
                     '--no-python', *cmd]
    env = {**os.environ, 'PYTHONPATH': f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", 'OMP_NUM_THREADS': '1'}
    cfg = ['--config-name', 'cpu_tiny', f'data.cache_dir={cache_dir}', f'run.dir={run_dir}', 'training.val=false',
           'eval.n_samples=0', *args, *extra]
    r = subprocess.run(cmd + cfg, env=env, capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return torch.load(Path(run_dir) / 'ckpt_last.pt', weights_only=True)


def test_ddp_two_processes_match_single_process(cache_dir, tmp_path):
    args = ['training.max_steps=3', 'training.batch_size=16', 'training.user_dropout=0.3']
    two = _launch(args, tmp_path / 'ddp', cache_dir, nproc=2)
    one = _launch(args, tmp_path / 'single', cache_dir)
    half = _launch(['training.max_steps=3', 'training.batch_size=8', 'training.user_dropout=0.3'], tmp_path / 'half', cache_dir)
    assert two['step'] == one['step'] == 3
    torch.manual_seed(0); init = GeometryDiffusion(GeometrySpec(**one['spec'])).state_dict()
    flat = lambda sd: torch.cat([sd[k].flatten().float() for k in sorted(sd)])
    a, b, c, i0 = flat(one['model']), flat(two['model']), flat(half['model']), flat(init)
    moved = (a - i0).abs().max()
    assert moved > 1e-3                                   # training did change the weights
    assert (a - b).abs().max() < 0.05 * moved             # 2 processes == 1 process, same global batch
    assert (a - b).abs().mean() < 1e-6
    assert (a - c).abs().mean() > 1e-4                    # ... while another global batch differs
    ea, eb = flat({k: v for k, v in one['ema'].items() if k != 'n_averaged'}), flat({k: v for k, v in two['ema'].items() if k != 'n_averaged'})
    assert (ea - eb).abs().max() < 0.05 * moved


@pytest.mark.parametrize('objective', ['epsilon', 'v'])
@pytest.mark.parametrize('spacing', ['leading', 'trailing'])
def test_ddim_with_oracle_denoiser_recovers_data(objective, spacing):
    "If the data is always the path c, the ideal ε̂ (or v̂) makes DDIM return c exactly."
    sched, c = make_scheduler(objective), torch.randn(1, 64, 2) * 3
    class Oracle(torch.nn.Module):
        out_channels = 2
        def __init__(self): super().__init__(); self.p = torch.nn.Parameter(torch.zeros(1))
        def forward(self, x, t, *, mask, cond=None, user=None, drift=None):
            a = sched.alphas_cumprod[t][:, None, None]; c0 = c * mask[..., None]
            eps = (x - a.sqrt() * c0) / (1 - a).sqrt()
            return eps if objective == 'epsilon' else a.sqrt() * eps - (1 - a).sqrt() * c0
    mask = masks([40])
    got = ddim_sample(Oracle(), mask=mask, scheduler=sched, steps=10, timestep_spacing=spacing, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got, c * mask[..., None], atol=1e-4, rtol=0)


def test_ft_run_short_cli(cache_dir, tmp_path, capsys):
    from factored_timing.pipeline import ft_run_short
    ft_run_short(['--config-name', 'cpu_tiny', 'training.epochs=1', f'data.cache_dir={cache_dir}', f'run.dir={tmp_path}',
                  'eval.n_samples=8', 'eval.sample_steps=3'])
    r = json.loads((tmp_path / 'short_run.json').read_text())
    assert r['epochs'] == 1 and 'endpoint' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='at most 5 epochs'):
        ft_run_short(['--config-name', 'cpu_tiny', 'training.epochs=6', f'data.cache_dir={cache_dir}'])
    with pytest.raises(SystemExit, match='no_such_key'): ft_run_short(['training.no_such_key=1'])
