"""Every benchmark figure in one table: each figure, its reference measured in the same run, the ratio and the target.

    python bench/all.py [--data-dir DIR] [--quick] [--markdown]

Runs `cache_build.py`, `diffusion_speed.py`, `pretrained_speed.py`, `timing_train.py`, `eval_speed.py` and
`scaling.py` one after the other (never in parallel: on 2 cores they would slow each other) in fresh processes,
reads the JSON each writes, and prints one table. Balabit rows need `--data-dir` or `FT_BALABIT_DIR`; without it they are left out and said so (the
scaling rows then build synthetic logs). `--quick`: fewer gestures and repeats (a smoke run, not figures to report).
"""
import argparse, json, os, subprocess, sys, tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script, *args) -> dict:
    "Run one benchmark in a fresh process; its figures from its --json file (or its last stdout line)."
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / 'res.json'
        json_args = {'diffusion_speed.py': ['--json', str(out)], 'pretrained_speed.py': ['--json', str(out)],
                     'scaling.py': ['--json', str(out)], 'eval_speed.py': ['--json', str(out)],
                     'cache_build.py': ['--json']}.get(script, [])   # timing_train.py: its last line is JSON
        r = subprocess.run([sys.executable, str(HERE / script), *args, *json_args], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"bench/{script} failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
        return json.loads(out.read_text()) if out.exists() else json.loads(r.stdout.strip().splitlines()[-1])


def rows(data_dir, quick) -> list:
    "(figure, value s, reference, reference s, ratio, target) of every benchmark."
    n = ['--n', '1000'] if quick else ['--n', '10000']
    out = []
    if data_dir:
        c = run('cache_build.py', '--data-dir', data_dir, '--repeat', '1' if quick else '3')
        out += [('Balabit cache build', c['build_s'], 'bare pyarrow parse', c['parse_s'], c['build_over_parse'], '≤ 1.5×'),
                ('Balabit cache hit', c['hit_s'], 'bare pyarrow parse', c['parse_s'], c['hit_over_parse'], '≤ 0.3×')]
    d = run('diffusion_speed.py', *n)
    k = d['default_sampler']
    out += [(f'10,000 gestures, default CPU model ({k})', d[f'{k}_projected_10k_s'], 'bare forwards, same work',
             d[f'{k}_projected_10k_s'] / d[f'{k}_vs_forward_ratio'], d[f'{k}_vs_forward_ratio'], '≤ 10 s')]
    p = run('pretrained_speed.py', *n, '--settings', 'card')
    key = next(x.removesuffix('_10k_s') for x in p if x.endswith('_10k_s'))
    out += [(f'10,000 gestures, shipped Balabit model ({key})', p[f'{key}_10k_s'], 'bare forwards, same work',
             p[f'{key}_10k_s'] / p[f'{key}_vs_forward'], p[f'{key}_vs_forward'], '≤ 30 s')]
    if data_dir:
        t = run('timing_train.py', '--data-dir', data_dir)
        out += [('timing heads training, Balabit', t['default_heads_s'], 'Dirichlet heads, same epochs',
                 t['dirichlet_reference_s'], t['ratio_default_over_dirichlet'], f"≤ {t['target_s']:.0f} s")]
    if data_dir:
        e = run('eval_speed.py', '--data-dir', data_dir, *(['--n', '300'] if quick else []))
        out += [(f"C2ST of every row ({e['rows']}), Balabit, {e['n_per_side']:,} a side, gbdt", e['gbdt_s'],
                 'same table in one process', e['gbdt_one_process_s'], e['ratio'], '≤ 60 s')]
    s = run('scaling.py', *(['--data-dir', data_dir] if data_dir else []), *(['--quick'] if quick else []))
    for work in ('cache build', 'sampling', 'evaluation'):        # how cost grows: per-unit seconds, 4× vs 1×
        k = work.replace(' ', '_')
        unit = s[f'{k}_unit'] + (f", {s['data']}" if work == 'cache build' else '')
        out += [(f'{work} per unit at 4× ({unit})', s[f'{k}_per_unit_4x_s'], 'per unit at 1×',
                 s[f'{k}_per_unit_1x_s'], s[f'{k}_ratio_4x'], f"≤ {s['target']}×")]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data-dir', default=os.environ.get('FT_BALABIT_DIR'))
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--markdown', action='store_true', help='print the table as Markdown (for the README)')
    a = ap.parse_args(argv)
    if not a.data_dir:
        print('no --data-dir / FT_BALABIT_DIR: the Balabit rows (cache build and hit, timing heads) are left out')
    table = rows(a.data_dir, a.quick)
    head = ('figure', 'seconds', 'reference (same run)', 'ref. seconds', 'ratio', 'target')
    sec = lambda x: f'{x:.2f}' if abs(x) >= 0.1 else f'{x:.3g}'   # per-unit seconds of the scaling rows are small
    fmt = lambda r: [r[0], sec(r[1]), r[2], sec(r[3]), f'{r[4]:.2f}', r[5]]
    if a.markdown:
        print('| ' + ' | '.join(head) + ' |\n|' + '---|' * len(head))
        for r in table: print('| ' + ' | '.join(fmt(r)) + ' |')
    else:
        w = [max(len(str(x)) for x in col) for col in zip(head, *map(fmt, table))]
        for r in [head, *map(fmt, table)]: print('  '.join(str(x).ljust(k) for x, k in zip(r, w)))
    print(f"machine load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return table


if __name__ == '__main__':
    main()
