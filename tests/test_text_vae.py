"""TextVAE (issue 22 item 4): padding is invisible to the bound, word dropout replaces
exactly the decoder inputs it should, the KL metric is the closed form, free bits floor the
KL term; the example end to end (smoke, exact resume) and (-m long) the README figure."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.distributions import Categorical, Normal
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


def test_bn_vae_floors_the_batch_kl_and_keeps_gamma_fixed():
    m = _model(mu_batchnorm=0.6)
    x = tl.tensor(np.random.default_rng(0).integers(4, 12, (16, 5)))
    opt = tl.optim.Adam(m.parameters(), lr=0.1)
    for _ in range(3):
        loss, metrics = m.loss(x)
        # 1/2 sum_j mean_b mu_bj^2 = Z (gamma^2 var / (var + eps) + beta^2) / 2 >= Z gamma^2 / 2
        assert metrics["kl"].item() >= 3 * 0.6 ** 2 / 2 - 1e-4, metrics["kl"].item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    np.testing.assert_array_equal(m.mu_norm.weight.numpy(), np.full(3, 0.6, np.float32))
    assert np.abs(m.mu_norm.bias.detach().numpy()).max() > 0  # beta: learnt


def _one_latent_model():
    """Z = 1, so log p(x) = log int p(x | z) N(z; 0, 1) dz is a quadrature; p(x | z) made to
    vary with z, and q(z | x) wider than the posterior and off-centre (bounded weights)."""
    tl.manual_seed(0)
    m = TextVAE(in_features=12, embedding_features=6, hidden_features=7, latent_features=1)
    m.eval()
    m.to_state.weight.array[...] *= 4.0
    m.to_posterior.bias.array[...] = [0.5, 0.5]  # (mu, logvar) shifted
    return m


def _quadrature(m, x, grid):
    """Per sentence (B,): log p(x) and E_q log p(x | z) by the rectangle rule on `grid`."""
    G, B = len(grid), x.shape[0]
    with tl.no_grad():
        z = tl.tensor(np.repeat(grid, B)[:, None].astype(np.float32))  # (G * B, 1): g * B + b
        logits = m.decode_logits(m._inputs(x).repeat(G, 1), z)
        lp = Categorical(logits=logits).log_prob(x.repeat(G, 1)) * m._mask(x).repeat(G, 1)
        log_px_z = lp.sum(1).numpy().reshape(G, B)
        mu, logvar = (t.numpy()[:, 0].astype(np.float64) for t in m.encode_posterior(x))
    dz = grid[1] - grid[0]
    f = log_px_z - 0.5 * grid[:, None] ** 2 - 0.5 * np.log(2 * np.pi)  # log p(x, z)
    log_px = np.log(np.exp(f - f.max(0)).sum(0) * dz) + f.max(0)
    q = np.exp(-0.5 * (grid[:, None] - mu) ** 2 / np.exp(logvar) - 0.5 * logvar
               - 0.5 * np.log(2 * np.pi))
    kl = 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar)
    return log_px, (q * log_px_z).sum(0) * dz - kl


def test_log_prob_is_the_iwae_bound_and_tends_to_the_quadrature():
    m = _one_latent_model()
    x = tl.tensor(np.array([[5, 6, 7, 2, 0], [8, 2, 0, 0, 0]]))
    log_px, elbo = _quadrature(m, x, np.linspace(-10, 10, 4001))
    assert (elbo < log_px - 0.1).all()  # a real gap for the importance weights to close
    # k = 1: the log weight of one draw, by hand with the same draw
    with tl.no_grad():
        mu, logvar = m.encode_posterior(x)
        q = Normal(mu, (0.5 * logvar).exp())
        z = q.sample((1,), generator=tl.Generator(7))[0]
        lp = Categorical(logits=m.decode_logits(m._inputs(x), z)).log_prob(x) * m._mask(x)
        log_w = lp.sum(1) + Normal(0.0, 1.0).log_prob(z).sum(1) - q.log_prob(z).sum(1)
    np.testing.assert_allclose(m.log_prob(x, k=1, generator=tl.Generator(7)).numpy(),
                               log_w.numpy(), atol=1e-5)
    # chunking only splits the same draws
    np.testing.assert_allclose(m.log_prob(x, k=6, chunk=6, generator=tl.Generator(1)).numpy(),
                               m.log_prob(x, k=6, chunk=4, generator=tl.Generator(1)).numpy(),
                               atol=1e-5)
    # E[L_1] = ELBO < E[L_10] < E[L_4000] = log p(x): means over many independent copies
    reps = {1: 2000, 10: 400, 4000: 1}
    est = {k: m.log_prob(x.repeat(r, 1), k=k, chunk=min(k, 1000), generator=tl.Generator(k))
           .numpy().reshape(r, 2).mean(0) for k, r in reps.items()}
    np.testing.assert_allclose(est[1], elbo, atol=0.1)
    assert (est[1] < est[10]).all() and (est[10] < est[4000]).all()
    np.testing.assert_allclose(est[4000], log_px, atol=0.03)
    with pytest.raises(ValueError, match="k and chunk"):
        m.log_prob(x, k=0)


def _example():
    spec = importlib.util.spec_from_file_location("text_vae_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_smoke_and_resume(tmp_path):
    module = _example()
    args = ["--train-verses", "200", "--test-verses", "50", "--vocab", "300",
            "--kl-warmup", "4", "--iw-samples", "3", "--bn-gamma", "0.4"]
    full = module.main(args + ["--steps", "6", "--out", str(tmp_path / "a")])
    assert (tmp_path / "a" / "homotopies.txt").stat().st_size > 100
    assert all(np.isfinite(full[k]) for k in ("neg_elbo", "kl", "iw_nll", "lm_nll"))
    part = args + ["--out", str(tmp_path / "b")]
    module.main(part + ["--steps", "3"])
    assert module.main(part + ["--steps", "6", "--resume"]) == full  # history and test figures


README_ARGS = ["--bn-gamma", "0.4"]  # the README row: python examples/text_vae_kjv.py + these


@pytest.mark.long
def test_readme_figure(tmp_path):
    r = _example().main(README_ARGS + ["--out", str(tmp_path)])
    assert r["kl"] > 2.0, r["kl"]  # no posterior collapse
    assert r["iw_nll"] <= r["lm_nll"] + 1.0, (r["iw_nll"], r["lm_nll"])
