"""Benchmark: full Balabit timing-cache build vs the bare pyarrow.csv parse of the same files.

    python bench/cache_build.py [--data-dir DIR] [--repeat 3]

The parse is the floor; the target is a build within 3x of it. Prints both times (best of
--repeat) and their ratio, measured in the same run.
"""
import argparse, os, tempfile, time, json
from pathlib import Path
import pyarrow.csv as pacsv
from factored_timing.cache import build_cache, find_session_files

def bare_parse(files):
    return sum(pacsv.read_csv(p).num_rows for _, p in files)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data-dir', default=os.environ.get('FT_BALABIT_DIR'))
    ap.add_argument('--repeat', type=int, default=3)
    a = ap.parse_args()
    if not a.data_dir: raise SystemExit('give --data-dir or set FT_BALABIT_DIR to the Balabit data')
    files = find_session_files(a.data_dir)
    parse, build = [], []
    for _ in range(a.repeat):
        t0 = time.perf_counter(); rows = bare_parse(files); parse.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as td:
            t0 = time.perf_counter(); build_cache('balabit', data_dir=a.data_dir, out=td); build.append(time.perf_counter() - t0)
    res = {'files': len(files), 'rows': rows, 'parse_s': round(min(parse), 3), 'build_s': round(min(build), 3),
           'ratio_build_over_parse': round(min(build) / min(parse), 2), 'target_ratio': 3.0}
    print(f"bare pyarrow parse: {res['parse_s']} s for {rows} rows in {len(files)} files")
    print(f"full cache build:   {res['build_s']} s")
    print(f"ratio build/parse:  {res['ratio_build_over_parse']} (target <= 3)")
    print(json.dumps(res))

if __name__ == '__main__':
    main()
