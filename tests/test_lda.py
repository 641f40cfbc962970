"""LDA (issue 22 item 3): the same variational EM as scikit-learn's batch
LatentDirichletAllocation (same seed -> same start -> same topics and perplexity), a
non-decreasing ELBO, and (-m long) held-out perplexity on KJV chapters within 5% of
scikit-learn's from an independent start with the same K, priors and iterations."""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import LDA

sklearn = pytest.importorskip("sklearn")
from sklearn.decomposition import LatentDirichletAllocation  # noqa: E402


@pytest.fixture(scope="module")
def kjv():
    counts, _, meta = tl.data.load_kjv_bow()
    X = counts.numpy().astype(np.float64)  # (1189 chapters, 2000 words)
    test = np.arange(len(X)) % 10 == 9  # every 10th chapter held out
    return X[~test], X[test]


def test_same_updates_as_sklearn_from_the_same_start(kjv):
    train, test = kjv[0][:250], kjv[1][:40]
    ours = LDA(6, max_iter=4, seed=3).fit(train)
    ref = LatentDirichletAllocation(6, max_iter=4, learning_method="batch",
                                    random_state=3).fit(train)
    np.testing.assert_allclose(ours.components_, ref.components_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.transform(test), ref.transform(test), atol=1e-6)
    assert abs(ours.perplexity(test) / ref.perplexity(test) - 1) < 1e-7
    # E[log p] bound on training data never decreases over the EM passes
    assert (np.diff(ours.bounds_) >= -1e-6 * abs(ours.bounds_[-1])).all(), ours.bounds_


def test_topics_are_proper_and_bad_input(kjv):
    lda = LDA(4, max_iter=2, seed=0).fit(kjv[0][:100])
    theta = lda.transform(kjv[1][:10])
    assert theta.shape == (10, 4) and np.allclose(theta.sum(1), 1)
    assert len(lda.top_words([str(i) for i in range(2000)], 5)[0]) == 5
    with pytest.raises(ValueError, match="non-negative word counts"):
        lda.fit(-np.ones((3, 4)))
    with pytest.raises(ValueError, match="2000"):
        lda.perplexity(np.ones((3, 5)))


@pytest.mark.long
def test_heldout_perplexity_within_5_percent_of_sklearn(kjv):
    train, test = kjv
    for K in (10, 20):  # independent starts: our seed 1, scikit-learn's seed 0
        ours = LDA(K, max_iter=20, seed=1).fit(train).perplexity(test)
        ref = LatentDirichletAllocation(K, max_iter=20, learning_method="batch",
                                        random_state=0).fit(train).perplexity(test)
        assert abs(ours / ref - 1) < 0.05, (K, ours, ref)


def test_numba_e_step_equals_numpy_twin(kjv):
    X = kjv[0][:120]
    lam = np.random.default_rng(0).gamma(100.0, 0.01, (5, X.shape[1]))
    a = LDA(5, seed=1, use_numba=True)._e_step(X, lam)
    b = LDA(5, seed=1, use_numba=False)._e_step(X, lam)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-9)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-9, atol=1e-12)
