"""Draw the README's picture: held-out Balabit test gestures beside the shipped model's gestures.

    python tools/make_readme_figure.py --cache DIR [--out nbs/images/real_vs_generated.png]

`DIR` is a Balabit timing cache (`ft_build_cache --dataset balabit --data_dir $FT_BALABIT_DIR`,
e.g. `…/datasets/balabit-T64`), the one the shipped model was trained from (the script refuses
another: its user ids would not match the model's). It picks `--n` test-split gestures (seeded,
8–40 steps, at least 150 px apart end to end), gives their targets (net displacement, steps, user)
to `load_pretrained('balabit').generate`, and draws both sides: paths, and speed over time as the
C2ST judge computes it (`evaluation.gesture_kinematics`: between distinct timestamps, on the pixel
grid; a generated speed above the real side's scale is marked with its value). The picture holds a
few drawn lines, never the logs: the data stays outside the repository. `nbs/index.ipynb` shows it,
and so the README and the docs' home page.
"""
import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / 'nbs' / 'images' / 'real_vs_generated.png'


def pick(cache: dict, n: int, seed: int) -> np.ndarray:
    "n seeded test rows with 8–40 steps and ≥ 150 px net displacement (paths that read at a glance)."
    L = np.asarray(cache['lengths'])
    net = np.linalg.norm(np.asarray(cache['dxdy'], np.float64).sum(1), axis=1)
    ok = (L >= 8) & (L <= 40) & (net >= 150)
    if 'positive' in cache: ok &= np.asarray(cache['positive']).astype(bool)
    rows = np.flatnonzero(ok)
    if len(rows) < n: raise SystemExit(f'only {len(rows)} test gestures qualify, {n} asked')
    return np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))


def draw(real, fake, out: Path, dpi: int = 90):
    "Four panels: real paths, generated paths, real speed, generated speed (same colour = same target)."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from factored_timing.evaluation import gesture_kinematics, grid_positions

    fig, ax = plt.subplots(1, 4, figsize=(13, 3.3), gridspec_kw=dict(width_ratios=[1, 1, 1.15, 1.15]))
    sides = [(real, 'real: Balabit test gestures'), (fake, 'generated: shipped model, same targets')]
    for j, (st, name) in enumerate(sides):
        for i, (g, L) in enumerate(zip(st.gestures, st.lengths)):
            P = grid_positions(g[:, :2], L)
            k = gesture_kinematics(P, g[:L, 2])
            c = f'C{i % 10}'
            ax[j].plot(P[:, 0], P[:, 1], '.-', ms=2.5, lw=1, color=c)
            ax[2 + j].plot(k['tv'], k['v'], '.-', ms=2.5, lw=1, color=c)
        ax[j].set_title(f'{name}\npath (px)', fontsize=9.5)
        ax[2 + j].set_title(f'{name}\nspeed (px/s) over time (s)', fontsize=9.5)
    for a in ax: a.tick_params(labelsize=8); a.grid(alpha=.25)
    ends = [v for a in ax[:2] for v in a.get_xlim() + a.get_ylim()]
    lo, hi = min(ends), max(ends)                                       # one square box for both sides
    for a in ax[:2]:
        a.set(xlim=(lo, hi), ylim=(hi, lo), aspect='equal')                # screen y points down
    top = 1.25 * max(v for ln in ax[2].get_lines() for v in ln.get_ydata())   # the real side's scale
    for a in ax[2:]:
        a.set(xlim=(0, max(b.get_xlim()[1] for b in ax[2:])), ylim=(0, top))
    for ln in ax[3].get_lines():                            # a generated speed above it: marked, not hidden
        x, y = ln.get_xdata(), ln.get_ydata()
        for i in np.flatnonzero(y > top):
            ax[3].annotate(f'{y[i]:,.0f} ↑', (x[i], top), xytext=(3, -10), textcoords='offset points',
                           fontsize=8, color=ln.get_color())
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, metadata={'Software': None})
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--cache', required=True, help='the Balabit timing cache the shipped model was trained from')
    ap.add_argument('--out', default=str(OUT))
    ap.add_argument('--n', type=int, default=8)
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args(argv)
    from factored_timing.assembly import from_timing_cache
    from factored_timing.cache import load_timing_cache
    from factored_timing.pretrained import load_pretrained

    model, test = load_pretrained('balabit'), load_timing_cache(a.cache, 'test')
    if test.get('fingerprint') != model.card.get('fingerprint'):
        raise SystemExit(f"{a.cache}: cache fingerprint {test.get('fingerprint')} is not the shipped model's "
                         f"{model.card.get('fingerprint')} (its user ids would not match)")
    rows = pick(test, a.n, a.seed)
    real = from_timing_cache(test, rows)
    fake = model.generate(np.asarray(test['dxdy'])[rows].sum(1), np.asarray(test['lengths'])[rows],
                          np.asarray(test['user'])[rows], seed=a.seed)
    out = Path(a.out)
    draw(real, fake, out)
    print(f'{out}: {out.stat().st_size / 1e3:.0f} kB, test rows {rows.tolist()}')


if __name__ == '__main__':
    main()
