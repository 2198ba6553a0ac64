"""Speed of the shipped pretrained model (benchmark, not a test): gestures/s of `Pretrained.sample`
(geometry + timing through the assembly helper) at the card's sampler and at fewer steps, with the
bare forward pass of its U-Net under `torch.inference_mode` as the same-run reference.
Target (issue: pretrained model): 10 000 gestures in ≤ 30 s on 2 CPU cores.

    python bench/pretrained_speed.py                    # 2 threads, 3 000 gestures per setting
    python bench/pretrained_speed.py --n 10000          # the full 10 000-gesture target
"""
import argparse, json, os, time
import torch
from factored_timing.cache import lengths_to_mask
from factored_timing.pretrained import load_pretrained


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--name', default='balabit', help='a shipped model or a bundle .pt')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--n', type=int, default=3000, help='gestures sampled per setting')
    p.add_argument('--settings', default='card,ddim:10,dpm++:10', help='samplers: card or solver:steps')
    p.add_argument('--json', default=None, help='write the figures to this file')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = load_pretrained(a.name)
    card, spec = model.card, model.geometry.spec
    tg = model.targets_for(a.n, seed=0)
    B = min(1000, a.n)                                       # the sampler's batch
    mask = lengths_to_mask(tg['lengths'][:B], spec.T)
    cond, drift = model.geometry.conditions(tg['net'][:B], tg['lengths'][:B])
    x, t = torch.randn(B, spec.T, 2), torch.full((B,), 500)
    unet = model.geometry.unet
    with torch.inference_mode():
        unet(x, t, mask=mask, cond=cond, drift=drift, user=tg['user'][:B])
        t0 = time.perf_counter()
        for _ in range(3):
            unet(x, t, mask=mask, cond=cond, drift=drift, user=tg['user'][:B])
        fwd = (time.perf_counter() - t0) / 3
    res = {'model': a.name, 'threads': a.threads, 'n': a.n, 'forward_gestures_per_s': B / fwd}
    print(f"{a.name}: {sum(q.numel() for q in unet.parameters()):,} parameters, T={spec.T}, "
          f"{a.threads} threads; reference {B / fwd:,.0f} gesture-forwards/s (batch {B})")
    for s in a.settings.split(','):
        solver, steps = (card.get('solver', 'ddim'), card['sample_steps']) if s == 'card' else s.split(':')
        t0 = time.perf_counter()
        model.sample(a.n, seed=0, steps=int(steps), solver=solver)
        secs = time.perf_counter() - t0
        ratio = secs / (a.n / B * int(steps) * fwd)
        res[f'{solver}{steps}_10k_s'] = 10_000 * secs / a.n
        res[f'{solver}{steps}_vs_forward'] = ratio
        print(f"{solver:5s} {int(steps):3d} steps: {a.n / secs:8.0f} gestures/s → 10 000 in "
              f"{10_000 * secs / a.n:6.1f} s (target ≤ 30 s: {'met' if 10_000 * secs / a.n <= 30 else 'NOT met'}); "
              f"sampler / bare forwards = {ratio:.2f}")
    print(f"machine load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=2)
    return res


if __name__ == '__main__':
    main()
