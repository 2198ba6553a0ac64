"""Benchmark: how cost grows — cache build, sampling and evaluation at 1x, 2x and 4x a base amount, time per unit.

    python bench/scaling.py [--data-dir DIR] [--files 16] [--n-sample 1000] [--n-eval 500] [--repeat 3]
    python bench/scaling.py --quick [--json FILE]            # small amounts: a smoke run, not figures to report

Three kinds of work, each at 1x, 2x and 4x its base amount (best wall time of --repeat, the scales interleaved so
that drift in the machine's load hits them alike; one untimed warm-up at 1x first):
  cache build  `build_cache` of the first k, 2k, 4k session files (the Balabit files of --data-dir or
               $FT_BALABIT_DIR dealt round-robin over users; without it, seeded synthetic sessions written as
               Balabit logs), each into a fresh directory (no cache hit); unit: 1,000 raw rows;
  sampling     the default CPU geometry model (as `diffusion_speed.py` builds it) at the config's sampler,
               N, 2N, 4N gestures in batches of --batch; unit: gesture;
  evaluation   `judge_features` of two disjoint real samples (the 4x cache, seed 0) of n, 2n, 4n gestures a side
               and the gradient-boosted `c2st` of them (no permutations); unit: gesture pair; the features and
               the C2ST are also shown on their own.
Prints per work and scale the amount, the seconds, the seconds per unit and its ratio to the 1x per-unit cost
(flat ~ 1.0: linear; below 1: a fixed cost spread over more units). Target (issue 15): per-unit cost at 4x within
1.25x of 1x.
"""
import argparse, json, os, shutil, tempfile, time
from itertools import zip_longest
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import torch

from factored_timing.assembly import from_timing_cache
from factored_timing.cache import (SPLITS, build_cache, find_session_files, load_timing_cache, synthetic_sessions,
                                   write_balabit_session)
from factored_timing.diffusion import GeometryDiffusion, GeometrySpec
from factored_timing.evaluation import c2st, judge_features
from factored_timing.pipeline import load_config

SCALES = (1, 2, 4)
TARGET = 1.25


def best_of(fns, repeat, prep=lambda s: None):
    """{scale: best wall time} of each scale's fn(), the scales interleaved, after one untimed warm-up of the 1x fn;
    prep(scale) runs untimed before each call."""
    prep(SCALES[0])
    fns[SCALES[0]]()
    ts = {s: [] for s in fns}
    for _ in range(repeat):
        for s, f in fns.items():
            prep(s)
            t0 = time.perf_counter()
            f()
            ts[s].append(time.perf_counter() - t0)
    return {s: min(v) for s, v in ts.items()}


def session_files(data_dir, n, root):
    "The first n session files (Balabit's or synthetic ones written as Balabit logs), dealt round-robin over users."
    if data_dir:
        found = find_session_files(data_dir)
    else:
        per_user, found = 4, []                             # 4 sessions a user of 400 gestures (~6,000 rows)
        for s in synthetic_sessions(seed=0, n_users=-(-n // per_user), sessions_per_user=per_user,
                                    gestures_per_session=400):
            write_balabit_session(s, root / 'synthetic' / s.user / s.name)
            found.append((s.user, root / 'synthetic' / s.user / s.name))
    by_user = {}
    for u, p in found:
        by_user.setdefault(u, []).append(p)
    files = [f for fs in zip_longest(*by_user.values()) for f in fs if f is not None]
    if len(files) < n:
        raise SystemExit(f'{data_dir} holds {len(files)} session files; 4x needs {n}: lower --files')
    return [(f.parent.name, f) for f in files[:n]]


def subset_dir(files, root):
    "A data directory of these files only (symlinks in <user>/<session> layout)."
    d = Path(tempfile.mkdtemp(prefix=f'files{len(files)}_', dir=root))
    for u, p in files:
        (d / u).mkdir(exist_ok=True)
        (d / u / p.name).symlink_to(Path(p).resolve())
    return d


def bench_cache(files, k, repeat, root):
    "Cache build of k, 2k, 4k files, each into a fresh directory; the last 4x cache is kept (for the evaluation)."
    dirs = {s: subset_dir(files[:k * s], root) for s in SCALES}
    rows = {s: sum(pacsv.read_csv(p).num_rows for _, p in files[:k * s]) for s in SCALES}   # also warms the OS cache
    out, cdir = {}, {}

    def fresh(s):                                           # untimed: the last build of s goes, a new empty directory
        if s in out: shutil.rmtree(out[s])
        out[s] = Path(tempfile.mkdtemp(prefix='cache_', dir=root))

    def build(s):
        cdir[s] = build_cache('balabit', data_dir=dirs[s], out=out[s])   # fresh directory: never a hit
    secs = best_of({s: (lambda s=s: build(s)) for s in SCALES}, repeat, fresh)
    return [dict(work='cache build', scale=s, amount=k * s, amount_name=f'files ({rows[s]:,} rows)',
                 seconds=secs[s], unit='1,000 rows', units=rows[s] / 1000) for s in SCALES], cdir[SCALES[-1]]


def default_model(config_name, n_users):
    "The default CPU geometry model as bench/diffusion_speed.py builds it (seed 0, untrained: same cost)."
    cfg = load_config(config_name)
    T = int(cfg.data.T)
    kw = dict(dim=int(cfg.model.dim), dim_mults=list(cfg.model.dim_mults), num_res_blocks=int(cfg.model.num_res_blocks),
              groups=int(cfg.model.groups), cond_dim=5, n_users=n_users)
    spec = GeometrySpec(fingerprint='bench', T=T, unet=kw, net_scale=100., geom_mean=[0., 0.], geom_std=[20., 20.],
                        objective=str(cfg.training.objective),
                        num_train_timesteps=int(cfg.diffusion.num_train_timesteps),
                        beta_schedule=str(cfg.diffusion.beta_schedule))
    torch.manual_seed(0)
    return GeometryDiffusion(spec).eval(), T, str(cfg.diffusion.solver), int(cfg.diffusion.sample_steps)


def bench_sampling(n, batch, repeat, config_name):
    "N, 2N, 4N gestures (prefixes of one seeded set of targets) at the config's sampler."
    n_users = 10
    diffusion, T, solver, steps = default_model(config_name, n_users)
    g = torch.Generator().manual_seed(0)
    N = n * SCALES[-1]
    Ls = torch.randint(4, T + 1, (N,), generator=g)
    net = torch.randn(N, 2, generator=g) * 200
    users = torch.randint(0, n_users, (N,), generator=g)
    run = lambda m: diffusion.sample(Ls[:m], net[:m], users[:m], steps=steps, seed=0, batch_size=batch, solver=solver)
    secs = best_of({s: (lambda s=s: run(n * s)) for s in SCALES}, repeat)
    return [dict(work='sampling', scale=s, amount=n * s, amount_name=f'gestures ({solver} {steps}, batch {batch})',
                 seconds=secs[s], unit='gesture', units=n * s) for s in SCALES]


def bench_evaluation(cdir, n, repeat):
    "Features and C2ST of n, 2n, 4n gestures a side: two disjoint seeded draws of the real gestures of the 4x cache."
    parts = [load_timing_cache(cdir, s) for s in SPLITS if (Path(cdir) / f'{s}_timing.pt').exists()]
    cache = {k: torch.cat([p[k] for p in parts]) for k in ('dxdy', 'dt', 'lengths')}
    need = 2 * n * SCALES[-1]
    if len(cache['lengths']) < need:
        raise SystemExit(f"the 4x cache holds {len(cache['lengths'])} gestures; two sides of 4n need {need}: "
                         'lower --n-eval or raise --files')
    idx = np.random.default_rng(0).permutation(len(cache['lengths']))[:need]
    real, fake = {}, {}
    for s in SCALES:
        m = n * s
        real[s], fake[s] = from_timing_cache(cache, idx[:m]), from_timing_cache(cache, idx[need // 2:need // 2 + m])
    feats = {}

    def features(s):
        feats[s] = judge_features(real[s]), judge_features(fake[s])
    judge = lambda s: c2st(*feats[s], seed=0, n_permutations=0, max_per_class=n * s)
    f_s = best_of({s: (lambda s=s: features(s)) for s in SCALES}, repeat)
    c_s = best_of({s: (lambda s=s: judge(s)) for s in SCALES}, repeat)
    out = []
    for work, secs in (('evaluation', {s: f_s[s] + c_s[s] for s in SCALES}), ('  features', f_s), ('  C2ST', c_s)):
        out += [dict(work=work, scale=s, amount=n * s, amount_name='gestures a side', seconds=secs[s],
                     unit='gesture pair', units=n * s) for s in SCALES]
    return out


def table(rows):
    "Per-unit seconds and their ratio to the 1x per-unit cost of the same work, in place; the printed table."
    for r in rows:
        r['per_unit_s'] = r['seconds'] / r['units']
        r['ratio'] = r['per_unit_s'] / next(x['per_unit_s'] for x in rows if x['work'] == r['work'] and x['scale'] == 1)
    head = ('work', 'scale', 'amount', 'seconds', 's per unit', 'unit', 'ratio to 1x')
    fmt = lambda r: [r['work'], f"{r['scale']}x", f"{r['amount']:,} {r['amount_name']}", f"{r['seconds']:.3f}",
                     f"{r['per_unit_s']:.3g}", r['unit'], f"{r['ratio']:.2f}"]
    w = [max(len(str(x)) for x in col) for col in zip(head, *map(fmt, rows))]
    return '\n'.join('  '.join(str(x).ljust(k) for x, k in zip(r, w)).rstrip() for r in [head, *map(fmt, rows)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data-dir', default=os.environ.get('FT_BALABIT_DIR'))
    ap.add_argument('--quick', action='store_true', help='small amounts, one repeat: a smoke run')
    ap.add_argument('--files', type=int, help='session files at 1x (default 16, --quick 2)')
    ap.add_argument('--n-sample', type=int, help='gestures sampled at 1x (default 1000, --quick 100)')
    ap.add_argument('--batch', type=int, help='sampling batch size (default --n-sample: 1, 2, 4 batches)')
    ap.add_argument('--n-eval', type=int, help='gestures a side of the C2ST at 1x (default 500, --quick 50)')
    ap.add_argument('--repeat', type=int, help='best of this many timed runs (default 3, --quick 1)')
    ap.add_argument('--threads', type=int, default=int(os.environ.get('OMP_NUM_THREADS') or 2),
                    help='torch threads for sampling (default $OMP_NUM_THREADS, else 2); the C2ST uses 1')
    ap.add_argument('--config-name', default='exp_factored_timing')
    ap.add_argument('--json', default=None, help='write the figures to this file')
    a = ap.parse_args(argv)
    q = a.quick
    k, n_s, n_e = a.files or (2 if q else 16), a.n_sample or (100 if q else 1000), a.n_eval or (50 if q else 500)
    repeat, batch = a.repeat or (1 if q else 3), a.batch or n_s
    torch.set_num_threads(a.threads)
    np.random.seed(0)
    torch.manual_seed(0)
    root = Path(tempfile.mkdtemp(prefix='ft_scaling_'))
    try:
        files = session_files(a.data_dir, k * SCALES[-1], root)
        rows, cdir = bench_cache(files, k, repeat, root)
        rows += bench_sampling(n_s, batch, repeat, a.config_name)
        rows += bench_evaluation(cdir, n_e, repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"data: {'Balabit files of ' + str(a.data_dir) if a.data_dir else 'synthetic sessions (seed 0)'}; "
          f"best of {repeat}; torch threads {a.threads}")
    print(table(rows))
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    print(f"machine load average (1 min): {load:.2f} on {os.cpu_count()} CPUs — other processes slow every figure "
          "above")
    res = {'data': 'balabit' if a.data_dir else 'synthetic', 'repeat': repeat, 'threads': a.threads, 'target': TARGET,
           'load_average_1min': load, 'rows': rows}
    for work in ('cache build', 'sampling', 'evaluation'):
        one, four = (next(r for r in rows if r['work'] == work and r['scale'] == s) for s in (1, SCALES[-1]))
        key = work.replace(' ', '_')
        res.update({f'{key}_unit': one['unit'], f'{key}_per_unit_1x_s': one['per_unit_s'],
                    f'{key}_per_unit_4x_s': four['per_unit_s'], f'{key}_ratio_4x': four['ratio']})
        print(f"{work}: per-unit cost at 4x = {four['ratio']:.2f}x the 1x cost "
              f"(target <= {TARGET}x: {'met' if four['ratio'] <= TARGET else 'NOT met'})")
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=2)
    return res


if __name__ == '__main__':
    main()
