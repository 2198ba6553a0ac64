"The shipped pretrained model: a fresh install loads it (weights only), samples from it without data or training, and reproduces its card."
import json, subprocess, sys

import numpy as np
import pytest
import torch

from factored_timing.pretrained import load_pretrained, shipped_models, bundle_path, check_card, sample_pretrained


def test_balabit_is_shipped_small_and_weights_only():
    assert 'balabit' in shipped_models()
    path = bundle_path('balabit')
    assert path.stat().st_size <= 20e6, path.stat().st_size
    ck = torch.load(path, weights_only=True)           # nothing but tensors, numbers, strings, containers
    assert ck['kind'] == 'pretrained' and ck['card']['fingerprint'] == ck['fingerprint']
    assert path.with_suffix('.md').read_text().startswith('# Model card: balabit')


def test_balabit_reproduces_its_card():
    model = load_pretrained('balabit')
    assert check_card(model) == [], check_card(model)


def test_balabit_samples_on_target_for_given_targets():
    model = load_pretrained('balabit')
    net = np.array([[300.0, -40.0], [-12.0, 250.0], [5.0, 3.0]])
    st = model.generate(net, [20, 12, 4], seed=1)
    np.testing.assert_allclose(st.dxdy.astype(np.float64).sum(1), net, atol=1e-2)
    assert list(st.lengths) == [20, 12, 4] and (st.dt[st.mask] >= 0).all() and (st.duration > 0).all()
    assert np.array_equal(sample_pretrained(5, seed=2).dt, model.sample(5, seed=2).dt)   # one call, seeded


def test_ft_sample_pretrained_from_an_empty_directory(tmp_path):
    out = tmp_path / 'g.npz'
    r = subprocess.run([sys.executable, '-c', 'from factored_timing.pipeline import ft_sample; ft_sample()',
                        '--pretrained', 'balabit', '--n', '30', '--out', str(out)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.splitlines()[-1])['n'] == 30 and out.stat().st_size > 0
