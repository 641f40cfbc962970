"""HMM (issue 22 item 2): forward-backward and Viterbi against brute-force enumeration of
all K^T paths, the Numba kernel against its NumPy twin, Baum-Welch monotone, the same EM
path as hmmlearn (a test extra) from the same start, and the tl-ops forward = the NumPy one."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import HMM


def _model(emission, K=3, V=4, seed=0):
    m = HMM(latent_features=K, in_features=V, emission=emission,
            generator=tl.Generator(seed)).double()
    m.start_logits.array[...] = np.random.default_rng(seed).normal(size=K)
    return m


def _data(emission, T, V=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, T) if emission == "categorical" else rng.normal(size=(T, V))


def _brute(model, X):
    """All K^T paths: log p(x) = logsumexp_z log p(x, z), and the argmax path."""
    log_pi, log_a, emis = model._params64()
    log_b = model._log_b(model._check_x(X), emis)
    T, K = log_b.shape
    scores = {}
    for z in itertools.product(range(K), repeat=T):
        s = log_pi[z[0]] + log_b[0, z[0]]
        s += sum(log_a[z[t - 1], z[t]] + log_b[t, z[t]] for t in range(1, T))
        scores[z] = s
    v = np.array(list(scores.values()))
    return np.logaddexp.reduce(v), max(scores, key=scores.get), v.max()


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_likelihood_and_viterbi_equal_brute_force(emission):
    model, X = _model(emission), _data(emission, 6)
    ll, best, best_score = _brute(model, X)
    for use_numba in (True, False):
        assert abs(model.forward_backward(X, use_numba=use_numba)[0] - ll) < 1e-10
    score, path = model.viterbi(X)
    assert tuple(path) == best and abs(score - best_score) < 1e-10
    x = tl.tensor(X[None])  # (1, T) or (1, T, D): the differentiable forward, same value
    assert abs(model.log_prob(x).item() - ll) < 1e-10
    # gamma: marginals of the enumeration
    gamma = model.forward_backward(X)[1]
    np.testing.assert_allclose(gamma.sum(1), 1.0, atol=1e-12)


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_numba_kernel_equals_numpy_twin(emission):
    model, X = _model(emission, K=5, V=6), _data(emission, 300, V=6)
    lengths = [100, 1, 120, 79]
    a = model.forward_backward(X, lengths, use_numba=True)
    b = model.forward_backward(X, lengths, use_numba=False)
    assert abs(a[0] - b[0]) < 1e-8 * abs(b[0])
    np.testing.assert_allclose(a[1], b[1], atol=1e-10)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_baum_welch_never_decreases(emission):
    model, X = _model(emission, K=4, V=5), _data(emission, 400, V=5, seed=3)
    model.fit(X, lengths=[150, 250], n_iter=30, tol=-np.inf)
    ll = np.array(model.log_likelihoods_)
    assert len(ll) == 30 and (np.diff(ll) >= -1e-8).all(), np.diff(ll).min()
    assert ll[-1] - ll[0] > 1.0
    with pytest.raises(ValueError, match="lengths"):
        model.fit(X, lengths=[10, 10])


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_em_matches_hmmlearn(emission):
    hmm = pytest.importorskip("hmmlearn.hmm", reason="hmmlearn (test extra) not installed")
    K, V = 3, 4
    model, X = _model(emission, K, V, seed=2), _data(emission, 500, V, seed=4)
    if emission == "categorical":  # 3 regimes so the fit has structure to find
        X = (X + (np.arange(500) // 60) % 2) % V
    lengths = [200, 300]
    log_pi, log_a, emis = model._params64()
    if emission == "categorical":
        ref = hmm.CategoricalHMM(K, n_iter=15, tol=-np.inf, init_params="", params="ste")
        ref.n_features, ref.emissionprob_ = V, np.exp(emis[0])
        Xr = X[:, None]
    else:
        ref = hmm.GaussianHMM(K, "diag", n_iter=15, tol=-np.inf, init_params="",
                              params="stmc", covars_prior=1e-2)
        ref.means_, ref.covars_ = emis
        Xr = X
    ref.startprob_, ref.transmat_ = np.exp(log_pi), np.exp(log_a)
    assert abs(model.score(X, lengths) - ref.score(Xr, lengths)) < 1e-6
    ref.fit(Xr, lengths)
    model.fit(X, lengths, n_iter=15, tol=-np.inf)
    np.testing.assert_allclose(model.log_likelihoods_, list(ref.monitor_.history), rtol=0,
                               atol=1e-6)
    assert abs(model.score(X, lengths) - ref.score(Xr, lengths)) < 1e-6
    np.testing.assert_allclose(np.exp(model._params64()[1]), ref.transmat_, atol=1e-8)


def test_sample_and_bad_input():
    model = HMM(latent_features=3, in_features=5, sample_length=7)
    a = model.sample(4, generator=tl.Generator(0))
    assert a.shape == (4, 7) and a.dtype.kind in "iu"
    g = HMM(latent_features=3, in_features=2, emission="gaussian").sample(2, length=5)
    assert g.shape == (2, 5, 2)
    with pytest.raises(ValueError, match="emission"):
        HMM(emission="poisson")
    with pytest.raises(ValueError, match="integer ids"):
        model.fit(np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        model.fit(np.array([0, 7]))
