"""RBM / DBN / AIS (tinylatent/models/boltzmann.py, ais.py): free energy and log Z against
enumeration, AIS against the exact log Z, the CD-k gradient against its exact expectation and
the log-likelihood gradient, the DBN's defining identity, and MNIST figures."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent.data import binarize, load_mnist
from tinylatent.eval import linear_probe
from tinylatent.models import DBN, RBM
from tinylatent.models.ais import ais_betas, exact_log_partition
from tinylatent.models.boltzmann import exact_log_prob_dbn


def states(n):
    """All 2^n binary vectors, (2^n, n) float64."""
    idx = np.arange(2 ** n)
    return ((idx[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)


def random_rbm(V, H, scale=1.0, seed=0):
    tl.manual_seed(seed)
    rbm = RBM(in_features=V, hidden_features=H, init_std=scale)
    with tl.no_grad():
        rbm.v_bias.copy_(tl.randn(V) * scale)
        rbm.h_bias.copy_(tl.randn(H) * scale)
    return rbm


def params(rbm):
    return [p.detach().numpy().astype(np.float64) for p in (rbm.weight, rbm.v_bias, rbm.h_bias)]


def lse(a, axis=None):
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def test_free_energy_and_log_z_match_enumeration():
    V, H = 7, 5
    rbm = random_rbm(V, H)
    W, b, c = params(rbm)
    v, h = states(V), states(H)
    neg_e = (v @ b)[:, None] + (h @ c)[None, :] + v @ W.T @ h.T         # (2^V, 2^H)
    F = -lse(neg_e, axis=1)
    np.testing.assert_allclose(rbm.free_energy(tl.tensor(v.astype(np.float32))).detach().numpy(),
                               F, rtol=1e-5, atol=1e-4)
    # energy() agrees with the formula for one (v, h) pair per row
    e = rbm.energy(tl.tensor(v[:2 ** H].astype(np.float32)), tl.tensor(h.astype(np.float32)))
    np.testing.assert_allclose(-e.detach().numpy(), np.diag(neg_e[:2 ** H]), rtol=1e-5, atol=1e-4)
    log_z = lse(neg_e.ravel())
    assert abs(exact_log_partition(W, b, c) - log_z) < 1e-9
    # log_prob is normalised over all 2^V visible vectors
    lp = rbm.log_prob(tl.tensor(v.astype(np.float32))).detach().numpy().astype(np.float64)
    assert abs(lse(lp)) < 1e-4


def test_log_prob_of_a_large_rbm_needs_log_z():
    rbm = RBM(in_features=10, hidden_features=30)
    with pytest.raises(ValueError, match="pass log_z=rbm.ais"):
        rbm.log_prob(tl.zeros(2, 10))
    with pytest.raises(ValueError, match=r"RBM.loss: expected v of shape \(B, 10\), got \(2, 9\)"):
        rbm.loss(tl.zeros(2, 9))


def mnist_binary(split, n=None, seed=0):
    x, y = load_mnist("mnist", split)[:2]
    x, y = (x, y) if n is None else (x[:n], y[:n])
    return binarize(x, np.random.default_rng(seed)), y


def train_rbm(rbm, X, epochs, lr=0.05, batch=100, seed=1):
    opt = tl.optim.SGD(rbm.parameters(), lr=lr, momentum=0.9)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        perm = rng.permutation(len(X))
        for i in range(0, len(X), batch):
            loss, _ = rbm.loss(tl.tensor(X[perm[i:i + batch]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return rbm


def test_ais_matches_exact_log_z_of_an_mnist_rbm():
    """S&M 2008's check, on a 784-16 RBM trained briefly by CD-1 on MNIST (weights far
    from the base model): AIS with 100 chains and 3,000 betas within 0.1 nats."""
    X, _ = mnist_binary("train", 1000)
    rbm = RBM(in_features=784, hidden_features=16)
    rbm.init_visible_bias(tl.tensor(X))
    base = rbm.v_bias.detach().clone()
    train_rbm(rbm, X, epochs=3)
    exact = rbm.log_partition("exact")
    res = rbm.ais(base_v_bias=base, num_chains=100, num_betas=3000, generator=tl.Generator(0))
    assert abs(res.log_z - exact) < 0.1, (res.log_z, exact)
    assert res.log_z_low <= exact + 0.1 and exact - 0.1 <= res.log_z_high


def test_ais_betas_schedule():
    b = ais_betas(14500)
    assert b[0] == 0 and b[-1] == 1 and np.all(np.diff(b) > 0)
    np.testing.assert_allclose(np.diff(b)[[0, 600, -1]], [1e-3, 1e-4, 1e-5], rtol=1e-3)


def cd_statistics(rbm, v):
    """phi(v) = -dF(v)/dtheta per example: (p(h|v) v^T, v, p(h|v)) flattened, (B, HV+V+H)."""
    W, b, c = params(rbm)
    ph = 1 / (1 + np.exp(-(v @ W.T + c)))
    return np.concatenate([(ph[:, :, None] * v[:, None, :]).reshape(len(v), -1), v, ph], 1)


def gibbs_kernel(rbm):
    """T[v0, v1] = sum_h p(h|v0) p(v1|h) over all binary states (exact)."""
    W, b, c = params(rbm)
    V, H = W.shape[1], W.shape[0]
    v, h = states(V), states(H)
    ph = 1 / (1 + np.exp(-(v @ W.T + c)))
    p_h = np.prod(np.where(h[None] == 1, ph[:, None], 1 - ph[:, None]), axis=2)   # (2^V, 2^H)
    pv = 1 / (1 + np.exp(-(h @ W + b)))
    p_v = np.prod(np.where(v[None] == 1, pv[:, None], 1 - pv[:, None]), axis=2)   # (2^H, 2^V)
    return p_h @ p_v


def test_cd1_gradient_matches_its_exact_expectation_and_the_likelihood_gradient():
    """On a 5-3 RBM with an explicit data distribution over the 32 visible states:
    (1) the loss's gradient is minus the mean CD-1 statistic of the same negatives;
    (2) that Monte Carlo mean equals the exact expectation E_data E_{T(v0, v1)}[phi(v0) -
        phi(v1)] within sampling error: every one of the 23 components within 4.5 standard
        errors (N = 20,000; a false failure has probability < 2e-4);
    (3) the exact CD-k expectation tends to the exact log-likelihood gradient
        E_data[phi] - E_model[phi] as k grows (CD-1 itself is biased: Carreira-Perpinan &
        Hinton 2005), and equals it when the data distribution is the model's."""
    V, H, N = 5, 3, 20000
    rbm = random_rbm(V, H, scale=0.8, seed=3)
    v = states(V)
    p_data = np.random.default_rng(0).dirichlet(np.full(2 ** V, 0.5))
    v0 = v[np.random.default_rng(1).choice(2 ** V, size=N, p=p_data)].astype(np.float32)
    x0 = tl.tensor(v0)
    v1 = rbm.negative_sample(x0, generator=tl.Generator(7)).numpy().astype(np.float64)
    g = cd_statistics(rbm, v0.astype(np.float64)) - cd_statistics(rbm, v1)     # (N, 23)
    loss, _ = rbm.loss(x0, generator=tl.Generator(7))                          # same negatives
    loss.backward()
    autograd = np.concatenate([p.grad.numpy().ravel() for p in (rbm.weight, rbm.v_bias,
                                                                rbm.h_bias)])
    np.testing.assert_allclose(autograd, -g.mean(0), atol=1e-4)    # (1), float32 sums of N terms
    T = gibbs_kernel(rbm)
    phi = cd_statistics(rbm, v)
    exact_cd = lambda k, p: p @ phi - p @ np.linalg.matrix_power(T, k) @ phi    # noqa: E731
    z = (g.mean(0) - exact_cd(1, p_data)) / (g.std(0) / np.sqrt(N) + 1e-12)
    assert np.max(np.abs(z)) < 4.5, np.round(z, 2)                                     # (2)
    log_pv = rbm.log_prob(tl.tensor(v.astype(np.float32))).detach().numpy().astype(np.float64)
    p_model = np.exp(log_pv) / np.exp(log_pv).sum()
    exact_ll = p_data @ phi - p_model @ phi
    bias = [np.linalg.norm(exact_cd(k, p_data) - exact_ll) for k in (1, 5, 25, 200)]
    # it decreases until it meets the floor of p_model from a float32 log_prob (~6e-8, at
    # k = 25 already), where two k may swap in the last digits (seen on an AVX2-only CPU)
    assert bias[0] > 1e-3 and bias[-1] < 1e-6, bias
    assert all(a > b or max(a, b) < 1e-6 for a, b in zip(bias, bias[1:])), bias
    np.testing.assert_allclose(exact_cd(1, p_model), p_model @ phi - p_model @ phi,
                               atol=1e-6)                                               # (3)


def test_dbn_with_tied_second_layer_equals_its_rbm_and_bounds_log_p():
    """Hinton et al. 2006, Sec. 4: with W2 = W1^T (and swapped biases) the two-layer DBN's
    p(v) is the first RBM's p(v) exactly, and q(h1|v) = p(h1|v) is the exact posterior, so
    the variational bound is tight; once the top RBM moves away the bound stays below log p."""
    tl.manual_seed(0)
    dbn = DBN(in_features=9, hidden_features=(6, 9), init_std=0.7)
    with tl.no_grad():
        dbn.rbms[0].v_bias.copy_(tl.randn(9) * 0.5)
        dbn.rbms[0].h_bias.copy_(tl.randn(6) * 0.5)
    dbn.next_layer()
    assert dbn.layer == 1
    x = tl.tensor(states(9)[::7].astype(np.float32))
    exact = exact_log_prob_dbn(dbn, x)
    np.testing.assert_allclose(exact, dbn.rbms[0].log_prob(x).detach().numpy(), atol=1e-4)
    bound = dbn.log_prob_lower_bound(x, num_samples=400, generator=tl.Generator(0)).numpy()
    assert np.max(np.abs(bound - exact)) < 0.1, np.abs(bound - exact).max()
    with tl.no_grad():     # untie: the top RBM's weights move, the posterior is no longer exact
        dbn.rbms[1].weight.add_(tl.randn(9, 6) * 0.7)
    exact = exact_log_prob_dbn(dbn, x)
    bound = dbn.log_prob_lower_bound(x, num_samples=400, generator=tl.Generator(0)).numpy()
    assert np.all(bound <= exact + 0.1) and np.mean(exact - bound) > 0.2, exact - bound
    loss, _ = dbn.loss(x)
    loss.backward()
    assert dbn.rbms[0].weight.grad is None and dbn.rbms[1].weight.grad is not None
    with pytest.raises(ValueError, match="layer 1 is the top of 2"):
        dbn.next_layer()


@pytest.mark.slow
def test_rbm_on_mnist_beats_independent_pixels_and_raw_pixel_probe():
    """784-100 CD-1 RBM, 6 epochs on the embedded 4,000 / 1,000 MNIST subset (binarised
    once, seed 0): AIS test log-likelihood above the independent-pixel Bernoulli model's
    (about -207 nats), and its features + logistic regression beat raw pixels on the split."""
    X, y = mnist_binary("train")
    Xt, yt = mnist_binary("test", seed=1)
    tl.manual_seed(0)
    rbm = RBM(in_features=784, hidden_features=100)
    rbm.init_visible_bias(tl.tensor(X))
    base = rbm.v_bias.detach().clone()
    train_rbm(rbm, X, epochs=6)
    p = X.mean(0).clip(1e-3, 1 - 1e-3)
    independent = float((Xt * np.log(p) + (1 - Xt) * np.log(1 - p)).sum(1).mean())
    res = rbm.ais(base_v_bias=base, num_chains=100, num_betas=1000, generator=tl.Generator(0))
    with tl.no_grad():
        ll = float(rbm.log_prob(tl.tensor(Xt), log_z=res.log_z).mean().item())
        f, ft = rbm.encode(tl.tensor(X)).numpy(), rbm.encode(tl.tensor(Xt)).numpy()
    assert ll > independent + 40, (ll, independent)
    acc, raw = linear_probe(f, y, ft, yt), linear_probe(X, y, Xt, yt)
    print(f"RBM-100 CD-1: AIS test LL {ll:.2f} (independent pixels {independent:.2f}), "
          f"probe {acc:.3f} vs pixels {raw:.3f}")
    assert acc > raw + 0.02, (acc, raw)
