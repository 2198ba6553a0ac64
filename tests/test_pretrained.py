"The shipped pretrained model: a fresh install loads it (weights only), samples from it without data or training, and reproduces its card."
import json, subprocess, sys

import numpy as np
import pytest
import torch

from factored_timing.pretrained import load_pretrained, shipped_models, bundle_path, check_card, sample_pretrained


def test_balabit_and_balabit_large_are_shipped():
    assert {'balabit', 'balabit-large'} <= set(shipped_models())


@pytest.mark.parametrize('name', shipped_models())
def test_shipped_model_is_small_and_weights_only(name):
    path = bundle_path(name)
    assert path.stat().st_size <= 20e6, path.stat().st_size
    ck = torch.load(path, weights_only=True)           # nothing but tensors, numbers, strings, containers
    assert ck['kind'] == 'pretrained' and ck['card']['fingerprint'] == ck['fingerprint']
    assert path.with_suffix('.md').read_text().startswith(f'# Model card: {name}\n')


@pytest.mark.parametrize('name', shipped_models())
def test_shipped_model_reproduces_its_card(name):
    model = load_pretrained(name)
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


@pytest.mark.parametrize('name', shipped_models())
def test_the_card_names_no_machine_path(name):
    "The card says how the model was made in words any machine can run: no absolute path of the machine that made it."
    text = bundle_path(name).with_suffix('.md').read_text() + json.dumps(load_pretrained(name).card)
    for prefix in ('/work/', '/tmp/', '/home/', '/root/', '/Users/'):
        assert prefix not in text, prefix
    assert 'data_dir=$FT_BALABIT_DIR' in text
