"""Speed of the default CPU geometry diffusion model (benchmark, not a test).

Prints training throughput (samples/s), sampling throughput (gestures/s) at the config's sampler
(`diffusion.solver`, `diffusion.sample_steps`: UniPC at 6 steps) and at DDIM 50 steps (the
old default), and, as a same-run reference, the model's bare forward pass under
`torch.inference_mode` (optionally `torch.compile`) — the ratio sampler/forward shows what the
scheduler loop costs. Target (issue 15): 10 000 gestures in ≤ 10 s on 2 CPU cores at the
config's sampler.

    python bench/diffusion_speed.py                     # 2 threads, 2 000 gestures per setting
    python bench/diffusion_speed.py --n 10000           # the full 10 000-gesture target
    python bench/diffusion_speed.py --compile           # add a torch.compile forward reference
"""
import argparse, json, os, time
import torch
from factored_timing.base import ema_warmup_avg_fn
from factored_timing.cache import lengths_to_mask
from factored_timing.diffusion import GeometryDiffusion, GeometrySpec, target_features
from factored_timing.pipeline import load_config
from torch.optim.swa_utils import AveragedModel


def timed(fn, repeat=1):
    fn()                                                    # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat): fn()
    return (time.perf_counter() - t0) / repeat


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--n', type=int, default=3000, help='gestures sampled per setting')
    p.add_argument('--batch', type=int, default=1000, help='sampling batch size')
    p.add_argument('--train-steps', type=int, default=20)
    p.add_argument('--config-name', default='exp_factored_timing')
    p.add_argument('--compile', action='store_true', help='also time a torch.compile(model) forward')
    p.add_argument('--json', default=None, help='write the figures to this file')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = load_config(a.config_name)
    T, n_users = int(cfg.data.T), 10
    kw = dict(dim=int(cfg.model.dim), dim_mults=list(cfg.model.dim_mults), num_res_blocks=int(cfg.model.num_res_blocks),
              groups=int(cfg.model.groups), cond_dim=5, n_users=n_users)
    spec = GeometrySpec(fingerprint='bench', T=T, unet=kw, net_scale=100., geom_mean=[0., 0.], geom_std=[20., 20.],
                        objective=str(cfg.training.objective), num_train_timesteps=int(cfg.diffusion.num_train_timesteps),
                        beta_schedule=str(cfg.diffusion.beta_schedule))
    torch.manual_seed(0)
    diffusion = GeometryDiffusion(spec)
    model = diffusion.unet
    n_params = sum(q.numel() for q in model.parameters())
    g = torch.Generator().manual_seed(0)
    res = {'threads': a.threads, 'params': n_params, 'model': kw, 'T': T}

    # training: forward + backward + AdamW + EMA on a global batch of the config's size
    B = int(cfg.training.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ema = AveragedModel(diffusion, multi_avg_fn=ema_warmup_avg_fn(0.995), use_buffers=True)
    L = torch.randint(4, T + 1, (B,), generator=g)
    mask = lengths_to_mask(L, T)
    x0 = torch.randn(B, T, 2, generator=g) * mask[..., None]
    net_b = torch.randn(B, 2, generator=g) * 200
    user = torch.randint(0, n_users, (B,), generator=g)
    def train_step():
        t = torch.randint(0, 1000, (B,), generator=g)
        noise = torch.randn(B, T, 2, generator=g)
        loss = diffusion.loss(x0, mask=mask, net=net_b, lengths=L, t=t, noise=noise, user=user)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update_parameters(diffusion)
    secs = timed(train_step, a.train_steps)
    res['train_samples_per_s'] = B / secs
    print(f"model: {n_params:,} parameters {kw}, T={T}, threads={a.threads}")
    print(f"training     {B / secs:10.0f} samples/s   (batch {B}, forward+backward+AdamW+EMA)")

    diffusion.eval()
    n = a.n
    Ls = torch.randint(4, T + 1, (n,), generator=g)
    net = torch.randn(n, 2, generator=g) * 200
    users = torch.randint(0, n_users, (n,), generator=g)
    # reference: the bare forward pass at the sampling batch size
    Bs = min(a.batch, n)
    mref = lengths_to_mask(Ls[:Bs], T)
    xr, cr, tr = torch.randn(Bs, T, 2), target_features(net[:Bs], Ls[:Bs], T=T, net_scale=100.), torch.full((Bs,), 500)
    with torch.inference_mode():
        fwd = timed(lambda: model(xr, tr, mask=mref, cond=cr, user=users[:Bs]), 3)
    res['forward_inference_mode_gestures_per_s'] = Bs / fwd
    default = (str(cfg.diffusion.solver), int(cfg.diffusion.sample_steps))
    res['default_sampler'] = f'{default[0]}{default[1]}'
    for solver, steps in dict.fromkeys([default, ('ddim', 50)]):
        times = []                                          # one sample call per batch: per-batch wall times
        for i in range(0, n, a.batch):
            sl = slice(i, i + a.batch)
            t0 = time.perf_counter()
            diffusion.sample(Ls[sl], net[sl], users[sl], steps=steps, seed=i, batch_size=a.batch, solver=solver)
            times.append(time.perf_counter() - t0)
        secs, best = sum(times), min(times) / min(a.batch, n)
        rate = n / secs
        ideal = n / Bs * steps * fwd                        # the same work as bare inference-mode forwards
        key = f'{solver}{steps}'
        res[f'{key}_gestures_per_s'] = rate
        res[f'{key}_best_batch_gestures_per_s'] = 1 / best
        res[f'{key}_vs_forward_ratio'] = secs / ideal
        res[f'{key}_projected_10k_s'] = 10_000 / rate
        res[f'{key}_projected_10k_best_batch_s'] = 10_000 * best
        print(f"{solver:5s} {steps:2d} steps {rate:10.0f} gestures/s  → 10 000 gestures in {10_000 / rate:6.1f} s "
              f"(best batch: {10_000 * best:6.1f} s; sampler / bare inference-mode forwards = {secs / ideal:.2f})")
    print(f"reference    {Bs / fwd:10.0f} gesture-forwards/s under torch.inference_mode (batch {Bs})")
    if a.compile:
        cm = torch.compile(model)
        t0 = time.perf_counter()
        with torch.inference_mode(): cm(xr, tr, mask=mref, cond=cr, user=users[:Bs])
        comp_s = time.perf_counter() - t0
        with torch.inference_mode():
            cf = timed(lambda: cm(xr, tr, mask=mref, cond=cr, user=users[:Bs]), 3)
        res['forward_compiled_gestures_per_s'] = Bs / cf
        res['compile_speedup'] = fwd / cf
        print(f"compiled     {Bs / cf:10.0f} gesture-forwards/s (torch.compile, {comp_s:.0f} s to compile; "
              f"{fwd / cf:.2f}× inference mode)")
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    res['load_average_1min'] = load
    print(f"machine load average (1 min): {load:.2f} on {os.cpu_count()} CPUs — other processes slow every figure above")
    ok = res[f"{res['default_sampler']}_projected_10k_s"] <= 10
    print(f"target 10 000 gestures ≤ 10 s at the config's sampler ({default[0]}, {default[1]} steps) on "
          f"{a.threads} threads: {'met' if ok else 'NOT met'}")
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=2)
    return res


if __name__ == '__main__':
    main()
