"""Benchmark: Balabit timing-cache build and cache hit vs the bare pyarrow.csv parse of the same files.

    python bench/cache_build.py [--data-dir DIR] [--repeat 3] [--json]

The parse is the floor and the reference, measured in the same run. Targets (issue 15): a build within 1.5x of the
parse, a hit (unchanged files: their bytes are hashed, not parsed) within 0.3x. Prints each time (best of --repeat)
and its ratio to the parse.
"""
import argparse, os, tempfile, time, json

import pyarrow.csv as pacsv

from factored_timing.cache import build_cache, find_session_files


def bare_parse(files):
    return sum(pacsv.read_csv(p).num_rows for _, p in files)


def best(f, repeat):
    "Best wall time of `repeat` calls of f()."
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def measure(data_dir, repeat=3) -> dict:
    files = find_session_files(data_dir)
    rows = bare_parse(files)
    parse = best(lambda: bare_parse(files), repeat)
    with tempfile.TemporaryDirectory() as td:
        build = best(lambda: build_cache('balabit', data_dir=data_dir, out=td, rebuild=True), repeat)
        hit = best(lambda: build_cache('balabit', data_dir=data_dir, out=td), repeat)
    return {'files': len(files), 'rows': rows, 'parse_s': round(parse, 3), 'build_s': round(build, 3),
            'hit_s': round(hit, 3), 'build_over_parse': round(build / parse, 2), 'hit_over_parse': round(hit / parse, 2),
            'target_build': 1.5, 'target_hit': 0.3}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data-dir', default=os.environ.get('FT_BALABIT_DIR'))
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--json', action='store_true', help='print only the JSON line')
    a = ap.parse_args()
    if not a.data_dir: raise SystemExit('give --data-dir or set FT_BALABIT_DIR to the Balabit data')
    res = measure(a.data_dir, a.repeat)
    if not a.json:
        print(f"bare pyarrow parse: {res['parse_s']} s for {res['rows']} rows in {res['files']} files (reference)")
        print(f"full cache build:   {res['build_s']} s  ratio {res['build_over_parse']} (target <= 1.5)")
        print(f"cache hit:          {res['hit_s']} s  ratio {res['hit_over_parse']} (target <= 0.3)")
    print(json.dumps(res))


if __name__ == '__main__':
    main()
