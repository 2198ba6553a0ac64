"""Benchmark: the side-by-side C2ST over every row of `ft_run`'s table on Balabit, 1,000 gestures a side.

    python bench/eval_speed.py [--data-dir DIR] [--n 1000] [--jobs 2] [--neural] [--json FILE]

Rows as `ft_run` judges them: the control (real val), the four classical baselines, the installed peers (the `peers`
extra), the shipped `balabit` model on the test targets and its two timing ablations (constant and resampled Δt).
Judged by the gradient-boosted detector on both feature sets, with the binomial p-value (no permutations: the
default since issue 15), in `--jobs` processes; the reference, measured in the same run, is the same table in one
process, which must come out identical. `--neural` adds the neural judge (reported as its own figure).
Target (issue 15): every row in ≤ 60 s on 2 cores.
"""
import argparse, json, os, tempfile, time

import numpy as np
import torch
import pandas as pd

from factored_timing.assembly import from_timing_cache
from factored_timing.cache import build_cache, load_timing_cache
from factored_timing.evaluation import side_by_side, targets_of
from factored_timing.pipeline import table_rows
from factored_timing.pretrained import attach_timing_model, load_pretrained


def rows_of_the_table(data_dir, n, out, seed=0) -> tuple:
    "Real test gestures and every generator row of ft_run's table (`table_rows`) for n test targets; cache under `out`."
    cdir = build_cache('balabit', data_dir=data_dir, out=out, seed=seed)
    test, val, train = (load_timing_cache(cdir, s) for s in ('test', 'val', 'train'))
    rows = np.random.default_rng(seed).choice(len(test['lengths']), min(n, len(test['lengths'])), replace=False)
    real = from_timing_cache(test, rows)
    model = load_pretrained('balabit')
    net, lengths = targets_of(real)
    g = model.geometry.sample(torch.as_tensor(lengths), torch.as_tensor(net).float(),
                              torch.as_tensor(np.array(real.meta['user'])), steps=int(model.card['sample_steps']),
                              solver=model.card['solver'], seed=seed)
    ours = attach_timing_model(g, model.timing, model.stats, seed=seed, quantize=model.quantize)
    return real, table_rows(real, g, ours, val, train, seed=seed, log=lambda m: None)


def timed(real, gens, n, **kw) -> tuple:
    t0 = time.perf_counter()
    df = side_by_side(real, gens, seed=0, max_per_class=n, allow_timing_mismatch=True, **kw)
    return df, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data-dir', default=os.environ.get('FT_BALABIT_DIR'))
    p.add_argument('--n', type=int, default=1000, help='gestures a side')
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--neural', action='store_true', help='time the neural judge too')
    p.add_argument('--json', default=None)
    a = p.parse_args(argv)
    if not a.data_dir:
        raise SystemExit('bench/eval_speed.py: error: needs --data-dir or FT_BALABIT_DIR (the Balabit logs)')
    with tempfile.TemporaryDirectory(prefix='ft_eval_speed_') as td:
        real, gens = rows_of_the_table(a.data_dir, a.n, td)
    print(f"{len(gens)} rows, {len(real)} real test gestures: {', '.join(gens)}")
    df, t_par = timed(real, gens, a.n, detectors=('gbdt',), n_jobs=a.jobs)
    ref, t_one = timed(real, gens, a.n, detectors=('gbdt',), n_jobs=1)
    pd.testing.assert_frame_equal(df, ref)                     # the same table for any n_jobs
    res = {'rows': len(gens), 'n_per_side': a.n, 'jobs': a.jobs, 'gbdt_s': t_par, 'gbdt_one_process_s': t_one,
           'ratio': t_par / t_one, 'target_s': 60.0, 'load': os.getloadavg()[0]}
    print(df[['full_acc', 'geometry_acc']].round(3).to_string())
    print(f"gradient-boosted, every row: {t_par:.1f} s in {a.jobs} processes vs {t_one:.1f} s in one "
          f"({t_par / t_one:.2f}×); target ≤ 60 s: {'met' if t_par <= 60 else 'NOT met'}")
    if a.neural:
        nn_df, res['neural_s'] = timed(real, gens, a.n, detectors=('neural',), n_jobs=a.jobs)
        print(nn_df[['full_nn_acc', 'geometry_nn_acc']].round(3).to_string())
        print(f"neural, every row: {res['neural_s']:.1f} s in {a.jobs} processes")
    print(f"machine load average (1 min): {res['load']:.2f} on {os.cpu_count()} CPUs")
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == '__main__':
    main()
