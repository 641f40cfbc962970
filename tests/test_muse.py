"""MUSE (tinylatent/models/muse.py) and its tools (tinylatent/eval/cross_lingual.py):
Procrustes recovers a rotation and is the closed-form optimum, CSLS against a hand
computation, the orthogonality update, precision@k by hand, the adversarial and refinement
steps on a rotated synthetic space, and (long) the cipher-KJV word translation figures."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent.eval import cross_lingual as xl
from tinylatent.models import MUSE


def _rotation(d, rng):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))                       # Haar-distributed orthogonal


# ---------------------------------------------------------------------- Procrustes
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(2, 12))
def test_procrustes_recovers_a_rotation(seed, d):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((50, d))
    r = _rotation(d, rng)
    w = xl.procrustes(x, x @ r.T)                        # y_i = R x_i
    np.testing.assert_allclose(w, r, atol=1e-8)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_procrustes_is_the_orthogonal_optimum(seed):
    rng = np.random.default_rng(seed)
    d = 5
    x, y = rng.standard_normal((30, d)), rng.standard_normal((30, d))    # unrelated: noisy
    w = xl.procrustes(x, y)
    np.testing.assert_allclose(w @ w.T, np.eye(d), atol=1e-10)

    def err(m):
        return np.linalg.norm(x @ m.T - y)
    # no orthogonal matrix does better: random ones, and W's own neighbourhood on O(d)
    for _ in range(50):
        assert err(w) <= err(_rotation(d, rng)) + 1e-9
    for _ in range(20):
        a = rng.standard_normal((d, d)) * 1e-3
        from scipy.linalg import expm
        assert err(w) <= err(w @ expm(a - a.T)) + 1e-12
    # the closed form: trace(W^T Y^T X) equals the nuclear norm of Y^T X (its maximum)
    np.testing.assert_allclose(np.trace(w.T @ y.T @ x),
                               np.linalg.svd(y.T @ x, compute_uv=False).sum(), rtol=1e-10)


def test_model_fit_supervised_recovers_the_rotation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6))
    muse = MUSE(in_features=6).set_embeddings(x, x @ _rotation(6, rng).T,
                                              [f"a{i}" for i in range(40)],
                                              [f"b{i}" for i in range(40)])
    assert muse.fit_supervised({f"a{i}": f"b{i}" for i in range(30)}) == 30
    assert muse.translate([f"a{i}" for i in range(40)], "nn") == [f"b{i}" for i in range(40)]
    assert muse.evaluate({f"a{i}": f"b{i}" for i in range(40)})["p@1"] == 1.0


# ---------------------------------------------------------------------- CSLS
def test_csls_against_a_hand_computation():
    # unit vectors in 2-D; k = 2
    src = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    tgt = np.array([[1.0, 0.0], [0.6, 0.8], [-0.8, 0.6]])
    cos = np.array([[1, .6, -.8], [0, .8, .6], [.6, 1, 0]])
    np.testing.assert_allclose(src @ tgt.T, cos, atol=1e-15)
    r_t = np.array([(1 + .6) / 2, (.8 + .6) / 2, (1 + .6) / 2])     # per source, top 2
    # per target over the source words: t0 [1, 0, .6], t1 [.6, .8, 1], t2 [-.8, .6, 0]
    r_s = np.array([(1 + .6) / 2, (1 + .8) / 2, (.6 + 0) / 2])
    hand = 2 * cos - r_t[:, None] - r_s[None, :]
    np.testing.assert_allclose(xl.csls(src, tgt, k=2), hand, atol=1e-12)
    np.testing.assert_allclose(hand[1], [-1.5, 0.0, 0.2], atol=1e-12)   # worked out
    # the hub t1 wins source 1 by cosine (.8 > .6); CSLS gives it the lonelier t2
    assert xl.translate_ids(src, tgt, 1, "nn")[:, 0].tolist() == [0, 1, 1]
    assert xl.translate_ids(src, tgt, 1, "csls", csls_k=2)[:, 0].tolist() == [0, 2, 1]
    # scale does not matter: cosines
    np.testing.assert_allclose(xl.csls(3 * src, 0.5 * tgt, k=2), hand, atol=1e-12)


def test_translate_ids_ranks_as_the_full_csls_matrix():
    rng = np.random.default_rng(1)
    q, keys = rng.standard_normal((20, 4)), rng.standard_normal((30, 4))
    full = np.argsort(-xl.csls(q, keys, k=3), axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(xl.translate_ids(q, keys, 4, "csls", csls_k=3, batch=7),
                                  full)


def test_mutual_dictionary_keeps_only_mutual_pairs():
    src = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    tgt = np.array([[1.0, 0.05], [0.05, 1.0]])
    # src 0 and 1 both pick tgt 0; tgt 0 picks src 0 back; src 2 <-> tgt 1
    pairs = xl.mutual_dictionary(src, tgt, method="nn")
    assert pairs.tolist() == [[0, 0], [2, 1]]
    assert xl.mutual_dictionary(src, tgt, max_rank=1, method="nn").tolist() == [[0, 0]]


# ---------------------------------------------------------------------- orthogonality
def test_orthogonality_update_keeps_and_pulls_towards_orthogonal():
    rng = np.random.default_rng(2)
    q = _rotation(8, rng)
    np.testing.assert_allclose(xl.orthogonalize(q, 0.01), q, atol=1e-12)   # fixed point
    w = q @ np.diag(1 + 0.05 * rng.standard_normal(8)) @ _rotation(8, rng)   # s near 1
    gap = [np.linalg.norm(w @ w.T - np.eye(8))]
    for _ in range(5):
        w = xl.orthogonalize(w, 0.01)
        gap.append(np.linalg.norm(w @ w.T - np.eye(8)))
    assert all(b < a for a, b in zip(gap, gap[1:])), gap
    # singular values move as s -> (1 + beta) s - beta s^3
    s = np.linalg.svd(q @ np.diag([0.9, 1.1, 1, 1, 1, 1, 1, 1]), compute_uv=False)
    s2 = np.linalg.svd(xl.orthogonalize(q @ np.diag([0.9, 1.1, 1, 1, 1, 1, 1, 1]), 0.1),
                       compute_uv=False)
    np.testing.assert_allclose(np.sort(s2), np.sort(1.1 * s - 0.1 * s**3), atol=1e-12)


# ---------------------------------------------------------------------- precision@k
def test_translation_precision_by_hand():
    found = {"a": ["x", "y", "z"], "b": ["y", "x", "w"], "c": ["q", "r", "s"],
             "d": ["p", "s", "t"]}
    reference = {"a": "x", "b": "x", "c": "s", "d": {"t", "p"}, "unused": "u"}
    assert xl.translation_precision(found, reference, 1) == 2 / 4        # a, d
    assert xl.translation_precision(found, reference, 2) == 3 / 4        # + b
    assert xl.translation_precision(found, reference, 3) == 4 / 4        # + c
    with pytest.raises(KeyError, match="no reference"):
        xl.translation_precision({"zz": ["x"]}, reference, 1)


# ---------------------------------------------------------------------- the model
def test_steps_and_refinement_find_a_rotated_space():
    """Target = a rotated, noisy copy of clustered source vectors; refinement from the
    adversarial W recovers the words, and each adversarial step keeps W orthogonal."""
    rng = np.random.default_rng(3)
    d, n = 8, 300
    x = rng.standard_normal((n, d)) * np.linspace(3, 0.5, d)          # anisotropic
    y = x @ _rotation(d, rng).T + 0.01 * rng.standard_normal((n, d))
    words = [str(i) for i in range(n)]
    muse = MUSE(in_features=d, hidden_features=32, epoch_size=320, epochs=1,
                max_rank=n, criterion_words=n, most_frequent=n)
    muse.set_embeddings(x, y, words, [f"t{i}" for i in range(n)])
    tl.manual_seed(0)
    before = muse.weight.detach().numpy().copy()
    stats = muse.adversarial_epoch(muse.optimizers(), 0)
    w = muse.weight.detach().numpy()
    assert np.isfinite(stats["d_loss"]) and not np.allclose(w, before)
    np.testing.assert_allclose(w @ w.T, np.eye(d), atol=1e-2)
    # refinement seeded with a few true pairs (as if adversarial training had found them)
    muse.fit_supervised({str(i): f"t{i}" for i in range(10)})
    muse.refine(3)
    assert muse.evaluate({str(i): f"t{i}" for i in range(n)}, n)["p@1"] > 0.95


def test_bad_input_is_named():
    muse = MUSE(in_features=4)
    with pytest.raises(RuntimeError, match="set_embeddings"):
        muse.translate(["a"])
    with pytest.raises(ValueError, match=r"source must be \(n >= 2, 4\)"):
        muse.set_embeddings(np.zeros((5, 3)), np.zeros((5, 4)))
    muse.set_embeddings(np.eye(4), np.eye(4), list("abcd"), list("wxyz"))
    with pytest.raises(KeyError, match="not in the source vocabulary"):
        muse.translate(["q"])
    with pytest.raises(ValueError, match="method must be 'nn' or 'csls'"):
        muse.translate(["a"], method="cos")
    with pytest.raises(ValueError, match=r"procrustes: need \(n, d\)"):
        xl.procrustes(np.zeros((3, 2)), np.zeros((3, 3)))
