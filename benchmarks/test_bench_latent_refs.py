"""The heaviest steps of issue 22's classical latent models next to their reference
libraries (not PyTorch: neither has a PyTorch twin): HMM forward-backward next to hmmlearn's
(log implementation, compiled C++), one LDA variational-EM pass next to scikit-learn's batch
LatentDirichletAllocation. Values are checked first (those asserts can fail); the time ratio
tinylatent / reference is printed, never asserted. hmmlearn comes with the bench extra.

    python -m pytest -q -s benchmarks/test_bench_latent_refs.py [--quick]
"""
from __future__ import annotations

import time

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import HMM, LDA


def _alternate(a, b, repeats):
    """Median seconds per call of a and b, timed in alternating calls after a warm-up."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return float(np.median(ta)), float(np.median(tb))


def test_hmm_forward_backward_vs_hmmlearn(request):
    hmm = pytest.importorskip("hmmlearn.hmm", reason="hmmlearn (bench extra) not installed")
    quick = request.config.getoption("--quick")
    K, V, T = 32, 40, 20_000 if quick else 200_000
    rng = np.random.default_rng(0)
    X = rng.integers(0, V, T)
    model = HMM(latent_features=K, in_features=V, generator=tl.Generator(0)).double()
    log_pi, log_a, (log_e,) = model._params64()
    ref = hmm.CategoricalHMM(K, init_params="", params="")
    ref.n_features, ref.startprob_, ref.transmat_ = V, np.exp(log_pi), np.exp(log_a)
    ref.emissionprob_ = np.exp(log_e)
    ll, gamma, _ = model.forward_backward(X)
    ll_ref, post = ref.score_samples(X[:, None])
    assert abs(ll - ll_ref) < 1e-8 * abs(ll_ref), (ll, ll_ref)
    # log alpha reaches ~1e6 nats over T steps: rounding of ~1e-16 relative per step leaves
    # ~1e-7 in gamma in either library
    np.testing.assert_allclose(gamma, post, atol=1e-6)
    t_tl, t_ref = _alternate(lambda: model.forward_backward(X),
                             lambda: ref.score_samples(X[:, None]), 3 if quick else 5)
    print(f"\nHMM forward-backward, K={K}, V={V}, T={T}: tinylatent {t_tl * 1e3:.1f} ms, "
          f"hmmlearn {t_ref * 1e3:.1f} ms, ratio tl/hmmlearn {t_tl / t_ref:.2f}")


def test_lda_em_pass_vs_sklearn(request):
    pytest.importorskip("sklearn")
    from sklearn.decomposition import LatentDirichletAllocation
    quick = request.config.getoption("--quick")
    counts, _, _ = tl.data.load_kjv_bow()
    X = counts.numpy().astype(np.float64)[:300 if quick else None]  # KJV chapters
    K = 20
    ours = LDA(K, max_iter=2, seed=0).fit(X)
    ref = LatentDirichletAllocation(K, max_iter=2, learning_method="batch",
                                    random_state=0).fit(X)
    np.testing.assert_allclose(ours.components_, ref.components_, rtol=1e-6, atol=1e-6)

    def tl_pass():
        LDA(K, max_iter=1, seed=0).fit(X)

    def ref_pass():
        LatentDirichletAllocation(K, max_iter=1, learning_method="batch",
                                  random_state=0).fit(X)
    t_tl, t_ref = _alternate(tl_pass, ref_pass, 2 if quick else 3)
    print(f"\nLDA one batch VB pass, K={K}, {len(X)} KJV chapters x 2000 words: tinylatent "
          f"{t_tl:.2f} s, scikit-learn {t_ref:.2f} s, ratio tl/sklearn {t_tl / t_ref:.2f}")
