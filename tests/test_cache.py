"Data layer: readers, bad input, segmentation, the timing cache and its fingerprint."
import io, json, os, threading, zipfile, functools, http.server
from pathlib import Path

import numpy as np
import pytest
import torch

from factored_timing.cache import (CacheConfig, DataFormatError, SkipLog, StaleCacheError, build_cache,
                                   check_cache, download_balabit, find_session_files, load_manifest, load_timing_cache,
                                   read_session_csv, SYNTH_DEFAULTS)
from factored_timing.dataset import GestureDataset, TimingDataset
from factored_timing.pipeline import ft_build_cache

REPO = Path(__file__).resolve().parents[1]
HEADER = "record timestamp,client timestamp,button,state,x,y\n"
GOOD = "".join(f"{i*0.1:.3f},{i*0.016:.3f},NoButton,Move,{100+3*i},{200+i}\n" for i in range(8))


def write(tmp_path, body, name='session_1', user='user1'):
    p = tmp_path / 'data' / user / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(body)
    return p


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    return build_cache('synthetic', out=tmp_path_factory.mktemp('syn'), seed=0)


# --- bad input: each gives a clear error or a counted skip naming file and line -----------------

def test_malformed_row_is_counted_with_line(tmp_path):
    p = write(tmp_path, HEADER + GOOD + "0.9,0.2,NoButton,Move,1\n" + "1.0,abc,NoButton,Move,5,5\n")
    sk = SkipLog()
    s = read_session_csv(p, skips=sk)
    assert len(s.t) == 8 and sk.counts['malformed_row'] == 2
    assert f"{p}:10" in sk.examples['malformed_row'][0] and f"{p}:11" in sk.examples['malformed_row'][1]
    with pytest.raises(DataFormatError, match=r'session_1:10'):
        read_session_csv(p, cfg=CacheConfig(on_bad='raise'))


def test_missing_column_names_file_and_column(tmp_path):
    p = write(tmp_path, "record timestamp,client timestamp,button,state,x\n0,0,NoButton,Move,1\n")
    with pytest.raises(DataFormatError, match=r"session_1:1: missing column\(s\) \['y'\]"):
        read_session_csv(p)


def test_empty_file_and_header_only_are_counted(tmp_path):
    sk = SkipLog()
    assert read_session_csv(write(tmp_path, ""), skips=sk) is None
    assert read_session_csv(write(tmp_path, HEADER, name='s2'), skips=sk) is None
    assert sk.counts == {'empty_file': 1, 'empty_session': 1}


def test_nan_rows_are_counted(tmp_path):
    p = write(tmp_path, HEADER + GOOD + "1.0,0.2,NoButton,Move,nan,5\n1.1,0.21,NoButton,Move,,5\n")
    sk = SkipLog(); s = read_session_csv(p, skips=sk)
    assert len(s.t) == 8 and sk.counts['nan'] == 2 and sk.examples['nan'] == [f"{p}:10", f"{p}:11"]


def test_non_monotonic_timestamps_are_counted(tmp_path):
    p = write(tmp_path, HEADER + GOOD + "1.0,0.05,NoButton,Move,5,5\n1.1,0.2,NoButton,Move,6,6\n")
    sk = SkipLog(); s = read_session_csv(p, skips=sk)
    assert sk.counts['non_monotonic'] == 1 and sk.examples['non_monotonic'] == [f"{p}:10"]
    assert (np.diff(s.t) >= 0).all() and len(s.t) == 9
    with pytest.raises(DataFormatError, match='goes backwards'):
        read_session_csv(p, cfg=CacheConfig(on_bad='raise'))


def test_sentinel_coordinates_break_gestures_and_are_counted(tmp_path):
    rows = "".join(f"{i*0.1:.3f},{i*0.016:.3f},NoButton,Move,{65535 if i == 6 else 100+3*i},{200+i}\n" for i in range(13))
    write(tmp_path, HEADER + rows)
    cdir = build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c', min_steps=2, split_fracs=(1, 0, 0))
    man = load_manifest(cdir)
    assert man['skipped']['offscreen']['count'] == 1 and 'session_1:8' in man['skipped']['offscreen']['examples'][0]
    assert load_timing_cache(cdir, 'train')['lengths'].tolist() == [5, 5]


def test_directory_without_sessions(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataFormatError, match='no session files'):
        build_cache('balabit', data_dir=tmp_path / 'empty', out=tmp_path / 'c')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        find_session_files(tmp_path / 'missing')
    with pytest.raises(ValueError, match='needs data_dir'):
        build_cache('balabit', data_dir=None, out=tmp_path / 'c')


def test_all_files_empty_is_an_error(tmp_path):
    write(tmp_path, ""); write(tmp_path, HEADER, name='s2')
    with pytest.raises(DataFormatError, match='none of the 2 session files holds events'):
        build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c')


def test_stale_and_corrupt_cache_are_refused(tmp_path, synth):
    cdir = build_cache('synthetic', out=tmp_path, seed=0)
    with pytest.raises(StaleCacheError, match='rebuild'):
        build_cache('synthetic', out=tmp_path, seed=0, pause=0.4)
    cdir = build_cache('synthetic', out=tmp_path, seed=0, pause=0.4, rebuild=True)
    assert load_manifest(cdir)['config']['pause'] == 0.4
    with pytest.raises(StaleCacheError, match='stale'):
        load_timing_cache(cdir, 'train', fingerprint=load_manifest(synth)['fingerprint'])
    (cdir / 'test_timing.pt').write_bytes(b'garbage')
    with pytest.raises(StaleCacheError, match='corrupt'):
        load_timing_cache(cdir, 'test')
    (cdir / 'manifest.json').write_text('{not json')
    with pytest.raises(StaleCacheError, match='corrupt manifest'):
        load_timing_cache(cdir, 'train')


def test_changed_data_file_makes_cache_stale(tmp_path):
    p = write(tmp_path, HEADER + GOOD)
    build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c', split_fracs=(1, 0, 0))
    p.write_text(HEADER + GOOD.replace(',103,', ',104,'))
    with pytest.raises(StaleCacheError):
        build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c', split_fracs=(1, 0, 0))


# --- the cache itself ------------------------------------------------------------------------

def test_same_seed_gives_byte_identical_cache(tmp_path, synth):
    other = build_cache('synthetic', out=tmp_path, seed=0)
    for f in ('train_timing.pt', 'val_timing.pt', 'test_timing.pt', 'stats.pt', 'manifest.json'):
        assert (synth / f).read_bytes() == (other / f).read_bytes(), f
    third = build_cache('synthetic', out=tmp_path / 'x', seed=1)
    assert (synth / 'train_timing.pt').read_bytes() != (third / 'train_timing.pt').read_bytes()


def test_integrity_and_known_parameters(synth):
    check_cache(synth)
    st = load_timing_cache(synth, 'train')['stats']
    assert abs(st['mu_D'] - SYNTH_DEFAULTS['mu_D']) < 0.05 and abs(st['sigma_D'] - SYNTH_DEFAULTS['sigma_D']) < 0.04
    assert abs(st['tick'] - SYNTH_DEFAULTS['tick']) < 2e-4 and 0 < st['zero_share'] < 0.3
    tr = load_timing_cache(synth, 'train')
    first = (tr['profile'][:, 0] * tr['lengths']).mean().item()     # first step vs an average step
    assert first > 1.3, first                                         # slow starts: a non-uniform profile


def test_splits_are_by_session_and_statistics_from_train(synth):
    sess = {s: set(load_timing_cache(synth, s)['session'].tolist()) for s in ('train', 'val', 'test')}
    assert not (sess['train'] & sess['val']) and not (sess['train'] & sess['test']) and not (sess['val'] & sess['test'])
    tr = load_timing_cache(synth, 'train'); va = load_timing_cache(synth, 'val')
    assert abs(tr['duration'].log().mean().item() - tr['stats']['mu_D']) < 1e-5
    assert abs(va['duration'].log().mean().item() - va['stats']['mu_D']) > 1e-6   # val carries train's stats


def test_datasets_drop_dt_and_normalise(synth):
    ds = GestureDataset(synth, 'train'); item = ds[0]
    assert set(item) >= {'x', 'mask', 'cond', 'user'} and 'dt' not in item
    xs = torch.stack([ds[i]['x'] for i in range(len(ds))])
    assert torch.allclose(xs[ds.mask].mean(0), torch.zeros(2), atol=1e-3)
    td = TimingDataset(synth, 'val'); t = td[3]
    assert torch.isclose(t['log_duration'], t['duration'].log()) and t['profile'][~t['mask']].abs().sum() == 0


def test_balabit_preset_reads_committed_synthetic_logs(tmp_path):
    cdir = build_cache('balabit', data_dir=REPO / 'data' / 'synthetic_balabit', out=tmp_path)
    check_cache(cdir)
    man = load_manifest(cdir)
    assert man['users'] == ['user0', 'user1'] and man['n_sessions'] == 6 and man['counts']['train']['gestures'] > 20


def test_csv_reader_with_ms_column(tmp_path):
    body = "client timestamp,button,state,x,y\n" + "".join(f"{i*16},NoButton,Move,{10+i},{20+2*i}\n" for i in range(10))
    write(tmp_path, body)
    cdir = build_cache('csv', data_dir=tmp_path / 'data', out=tmp_path / 'c', time_unit='ms', split_fracs=(1, 0, 0))
    d = load_timing_cache(cdir, 'train')
    assert d['lengths'].tolist() == [9] and abs(d['duration'].item() - 0.144) < 1e-6


def test_cli_prints_json_summary_last(tmp_path, capsys):
    ft_build_cache(dataset='synthetic', out=str(tmp_path))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    s = json.loads(last)
    assert s['dataset'] == 'synthetic' and set(s['counts']) == {'train', 'val', 'test'} and len(s['profile_first_mid_last']) == 3
    with pytest.raises(SystemExit, match='does not exist'):
        ft_build_cache(dataset='balabit', data_dir=str(tmp_path / 'nope'), out=str(tmp_path))


def test_cli_parses_its_flags(tmp_path, capsys, monkeypatch):
    "Called with no arguments (as the console script is), the tool parses `sys.argv`."
    argv = ['ft_build_cache', '--dataset', 'synthetic', '--out', str(tmp_path), '--T', '32', '--long_policy', 'split']
    monkeypatch.setattr('sys.argv', argv)
    ft_build_cache()
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s['id'] == 'synthetic-T32' and 'longer_than_T' not in s['skipped']
    assert load_manifest(s['cache_dir'])['config']['long_policy'] == 'split'
    monkeypatch.setattr('sys.argv', ['ft_build_cache', '--dataset', 'balabit', '--data_dir', str(tmp_path / 'nope')])
    with pytest.raises(SystemExit, match='^ft_build_cache: error: .*does not exist'): ft_build_cache()


# --- opt-in download, against a local HTTP server serving a zip built here ----------------------

def test_download_balabit_from_local_server(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        z.writestr('Mouse-Dynamics-Challenge-master/README.md', 'x')
        z.writestr('Mouse-Dynamics-Challenge-master/training_files/user7/session_1', HEADER + GOOD)
        z.writestr('Mouse-Dynamics-Challenge-master/test_files/user7/session_2', HEADER + GOOD)
    (tmp_path / 'srv').mkdir(); (tmp_path / 'srv' / 'a.zip').write_bytes(buf.getvalue())
    (tmp_path / 'srv' / 'bad.zip').write_bytes(b'not a zip')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / 'srv'))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    try:
        url = f'http://127.0.0.1:{srv.server_address[1]}'
        out = download_balabit(tmp_path / 'dl', url=f'{url}/a.zip', timeout=10)
        assert (out / 'user7' / 'session_1').read_text() == HEADER + GOOD
        assert not (tmp_path / 'dl' / 'test_files').exists()
        assert [u for u, _ in find_session_files(tmp_path / 'dl')] == ['user7']
        with pytest.raises(DataFormatError, match='not a zip'):
            download_balabit(tmp_path / 'dl2', url=f'{url}/bad.zip', timeout=10)
    finally:
        srv.shutdown()


# --- the real data, when it is there --------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get('FT_BALABIT_DIR'), reason='FT_BALABIT_DIR not set')
def test_balabit_cache(tmp_path):
    cdir = build_cache('balabit', data_dir=os.environ['FT_BALABIT_DIR'], out=tmp_path)
    check_cache(cdir)
    st = load_timing_cache(cdir, 'train')['stats']
    assert abs(st['tick'] - 0.015625) < 2e-4                        # the 64 Hz client timer
    assert 0.05 < st['zero_share'] < 0.2                             # README: ~15 % of all gaps, fewer inside gestures
    assert 0.08 < float(st['mean_profile'][0]) < 0.2                 # plan 001 §5: first bin ≈ 0.12
    man = load_manifest(cdir)
    assert man['counts']['train']['sessions'] >= 40 and man['skipped']['offscreen']['count'] > 0


# --- nothing silently wrong: bad input is counted or refused ------------------------------------

def test_unknown_states_are_counted_and_known_ones_match_any_case(tmp_path):
    p = write(tmp_path, HEADER + GOOD.replace(',Move,', ',move,') + "9,0.2,NoButton,Hover,1,1\n")
    sk = SkipLog()
    s = read_session_csv(p, skips=sk)
    assert (s.state == 0).sum() == 8                                  # 'move' is Move
    assert sk.counts['unknown_state'] == 1 and f"{p}:10" in sk.examples['unknown_state'][0]
    assert 'Hover' in sk.examples['unknown_state'][0]
    with pytest.raises(DataFormatError, match=r"session_1:10: unknown state 'Hover'"):
        read_session_csv(p, cfg=CacheConfig(on_bad='raise'))
    write(tmp_path, HEADER + GOOD.replace(',Move,', ',MOVE,') + "9,0.2,NoButton,Hover,1,1\n")
    cdir = build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c', split_fracs=(1, 0, 0))
    man = load_manifest(cdir)
    assert man['counts']['train']['gestures'] == 1 and man['skipped']['unknown_state']['count'] == 1


def test_one_future_timestamp_drops_only_that_row(tmp_path):
    rows = [f"{i*0.1:.3f},{(i*0.016 if i != 5 else 9999.0):.3f},NoButton,Move,{100+3*i},{200+i}\n"
            for i in range(150)]
    p = write(tmp_path, HEADER + "".join(rows))
    sk = SkipLog()
    s = read_session_csv(p, skips=sk)
    assert len(s.t) == 149 and 9999.0 not in s.t.tolist()
    assert sk.counts['time_outlier'] == 1 and sk.examples['time_outlier'] == [f"{p}:7"]
    assert 'non_monotonic' not in sk.counts


def test_clock_reset_starts_a_new_segment(tmp_path):
    rows = [f"{i*0.1:.3f},{100 + i*0.016:.3f},NoButton,Move,{100+3*i},{200+i}\n" for i in range(20)]
    rows += [f"{i*0.1:.3f},{i*0.016:.3f},NoButton,Move,{300+3*i},{200+i}\n" for i in range(20)]
    p = write(tmp_path, HEADER + "".join(rows))
    sk = SkipLog()
    s = read_session_csv(p, skips=sk)
    assert len(s.t) == 40 and sk.counts['clock_reset'] == 1 and sk.examples['clock_reset'] == [f"{p}:22"]
    assert 'non_monotonic' not in sk.counts
    cdir = build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c', split_fracs=(1, 0, 0))
    d = load_timing_cache(cdir, 'train')
    assert d['lengths'].tolist() == [19, 19] and (d['dt'] >= 0).all()


def test_wrong_time_unit_is_refused_with_the_likely_unit(tmp_path):
    write(tmp_path, HEADER + GOOD)                                     # seconds
    with pytest.raises(DataFormatError, match=r"session_1: .*look like seconds.*time_unit='s'"):
        build_cache('csv', data_dir=tmp_path / 'data', out=tmp_path / 'c', time_unit='ms', split_fracs=(1, 0, 0))
    body = "client timestamp,button,state,x,y\n" + "".join(f"{i*16},NoButton,Move,{10+i},{20+2*i}\n" for i in range(10))
    write(tmp_path, body, user='user2')                                # milliseconds
    (tmp_path / 'data' / 'user1' / 'session_1').unlink()
    with pytest.raises(DataFormatError, match=r"user2/session_1: .*look like milliseconds.*time_unit='ms'"):
        build_cache('csv', data_dir=tmp_path / 'data', out=tmp_path / 'c', time_unit='s', split_fracs=(1, 0, 0))


def test_corrupt_split_file_is_refused_on_reuse(tmp_path):
    cdir = build_cache('synthetic', out=tmp_path, seed=0)
    man = load_manifest(cdir)
    assert set(man['files']) == {'train_timing.pt', 'val_timing.pt', 'test_timing.pt', 'stats.pt'}
    assert build_cache('synthetic', out=tmp_path, seed=0) == cdir     # intact: reused
    (cdir / 'val_timing.pt').write_bytes(b'garbage')
    with pytest.raises(StaleCacheError, match=r"val_timing.pt: .*rebuild=True"):
        build_cache('synthetic', out=tmp_path, seed=0)
    cdir = build_cache('synthetic', out=tmp_path, seed=0, rebuild=True)
    raw = (cdir / 'train_timing.pt').read_bytes()
    (cdir / 'train_timing.pt').write_bytes(raw[: len(raw) // 2])
    with pytest.raises(StaleCacheError, match=r"train_timing.pt: .*rebuild=True"):
        build_cache('synthetic', out=tmp_path, seed=0)


def test_too_few_gestures_for_val_and_test_is_refused_at_build(tmp_path):
    write(tmp_path, HEADER + GOOD); write(tmp_path, HEADER + GOOD, user='user2')
    with pytest.raises(DataFormatError, match=r"split is empty.*fewer than 3.*split_fracs=\(1, 0, 0\)"):
        build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c')
    assert not (tmp_path / 'c' / 'datasets').exists()
    cdir = build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c', split_fracs=(1, 0, 0))
    assert build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c', split_fracs=(1, 0, 0)) == cdir
    (cdir / 'train_timing.pt').unlink()
    with pytest.raises(StaleCacheError, match=r"missing .*train_timing.pt"):
        build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c', split_fracs=(1, 0, 0))


def test_comma_space_csv_bom_and_stray_file(tmp_path):
    body = "\ufeffclient timestamp, button, state, x, y\n" + "".join(
        f"{i*0.016:.3f}, NoButton, Move, {10+i}, {20+2*i}\n" for i in range(10))
    p = write(tmp_path, body)
    s = read_session_csv(p)
    assert len(s.t) == 10 and (s.state == 0).all() and s.x.tolist()[:2] == [10.0, 11.0]
    (tmp_path / 'data' / 'user1' / 'Thumbs.db').write_bytes(b'\xd0\xcf\x11\xe0\x00\x00binary')
    cdir = build_cache('csv', data_dir=tmp_path / 'data', out=tmp_path / 'c', split_fracs=(1, 0, 0))
    man = load_manifest(cdir)
    assert man['counts']['train']['gestures'] == 1
    assert man['skipped']['not_a_session_file']['count'] == 1
    assert 'Thumbs.db' in man['skipped']['not_a_session_file']['examples'][0]


def test_broken_manifest_names_file_and_rebuild(tmp_path):
    cdir = build_cache('synthetic', out=tmp_path, seed=0)
    (cdir / 'manifest.json').write_text('\n')
    with pytest.raises(StaleCacheError, match=r"manifest.json: corrupt manifest .*rebuild=True"):
        build_cache('synthetic', out=tmp_path, seed=0)
    assert build_cache('synthetic', out=tmp_path, seed=0, rebuild=True) == cdir


def test_a_cache_hit_hashes_the_files_but_does_not_parse_them(tmp_path, monkeypatch):
    "Issue 15 item 2: unchanged files are recognised by their bytes' BLAKE3 stamp; no file is parsed."
    from factored_timing import cache as C
    for u in range(4):
        for s in range(5):
            write(tmp_path, HEADER + GOOD, name=f'session_{s}', user=f'user{u}')
    cdir = build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c')
    calls, real = [], C._read_and_segment

    def counted(*a, **kw):
        calls.append(a[1])
        return real(*a, **kw)
    monkeypatch.setattr(C, '_read_and_segment', counted)
    assert build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c') == cdir
    assert calls == [], f"{len(calls)} of 20 files parsed on a hit"
    write(tmp_path, HEADER + GOOD.replace('100', '101'), name='session_0', user='user0')   # one byte differs
    with pytest.raises(StaleCacheError, match='fingerprint'):                   # refused by its hash alone
        build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c')
    assert calls == []
    build_cache('balabit', data_dir=tmp_path / 'data', out=tmp_path / 'c', rebuild=True)
    assert len(calls) == 20                                                     # a build parses everything
