"""TextVAE (issue 22 item 4): padding is invisible to the bound, word dropout replaces
exactly the decoder inputs it should, the KL metric is the closed form, free bits floor the
KL term; the example end to end (smoke, exact resume) and (-m long) the README figure."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import TextVAE

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "text_vae_kjv.py"


def _model(**o):
    tl.manual_seed(0)
    return TextVAE(in_features=12, embedding_features=6, hidden_features=7, latent_features=3,
                   **o)


def test_padding_does_not_change_the_bound():
    m = _model()
    m.eval()
    x = np.array([[5, 6, 7, 2, 0], [8, 2, 0, 0, 0]])
    longer = np.concatenate([x, np.zeros((2, 3), np.int64)], 1)
    a, ma = m.loss(tl.tensor(x), generator=tl.Generator(3))
    b, mb = m.loss(tl.tensor(longer), generator=tl.Generator(3))
    assert abs(a.item() - b.item()) < 1e-5 and abs(ma["kl"].item() - mb["kl"].item()) < 1e-6


def test_word_dropout_and_kl_closed_form_and_free_bits():
    m = _model(word_dropout=1.0)
    x = tl.tensor(np.array([[5, 6, 7, 2], [8, 9, 2, 0]]))
    m.train()
    inputs = m._inputs(x).numpy()
    assert (inputs[:, 0] == 1).all() and (inputs[:, 1:] == 3).all()  # bos kept, rest <unk>
    m.eval()
    np.testing.assert_array_equal(m._inputs(x).numpy(), [[1, 5, 6, 7], [1, 8, 9, 2]])
    mu, logvar = (t.detach().numpy() for t in m.encode_posterior(x))
    kl = 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar).sum(1).mean()
    loss, metrics = m.loss(x, kl_weight=0.3)
    assert abs(metrics["kl"].item() - kl) < 1e-5
    assert abs(loss.item() - (metrics["nll"].item() + 0.3 * kl)) < 1e-4
    fb = _model(free_bits=5.0)
    fb.eval()
    loss, metrics = fb.loss(x, kl_weight=1.0)
    assert abs(loss.item() - (metrics["nll"].item() + 3 * 5.0)) < 1e-4  # every dim floored


def test_example_smoke_and_resume(tmp_path):
    spec = importlib.util.spec_from_file_location("text_vae_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = ["--train-verses", "200", "--test-verses", "50", "--vocab", "300",
            "--kl-warmup", "4"]
    full = module.main(args + ["--steps", "6", "--out", str(tmp_path / "a")])
    assert (tmp_path / "a" / "homotopies.txt").stat().st_size > 100
    part = args + ["--out", str(tmp_path / "b")]
    module.main(part + ["--steps", "3"])
    assert module.main(part + ["--steps", "6", "--resume"])["history"] == full["history"]


@pytest.mark.long
def test_readme_figure(tmp_path):
    spec = importlib.util.spec_from_file_location("text_vae_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    r = module.main(["--out", str(tmp_path)])
    assert r["kl"] > 2.0, r["kl"]
    assert r["neg_elbo"] <= r["lm_nll"] + 1.0, (r["neg_elbo"], r["lm_nll"])
