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


def _isometric_pair(seed, n=80, d=6):
    """x (n, d) anisotropic and z = x[perm] R^T: target row k is source perm[k], so source i
    is target truth[i]."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.linspace(2, 0.5, d)
    perm = rng.permutation(n)
    r = _rotation(d, rng)
    return x, x[perm] @ r.T, r, perm, np.argsort(perm)


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
    # the dictionary word-by-word translation starts from: every source word, or the
    # mutual nearest neighbours among the most frequent
    assert muse.induce_dictionary() == {f"a{i}": f"b{i}" for i in range(40)}
    assert muse.induce_dictionary(mutual=True, max_rank=10) == \
        {f"a{i}": f"b{i}" for i in range(10)}


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
                max_rank=n, criterion_words=n, most_frequent=n, normalize="renorm")
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


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_similarity_init_recovers_a_permuted_rotated_copy(seed):
    """Artetxe et al. 2018's seed dictionary is exact on an isometric pair: Z = P X R^T has
    sqrt(Z Z^T) = P sqrt(X X^T) P^T, whose sorted rows are X's, permuted; both directions of
    the seed are the hidden permutation and deterministic self-learning keeps the rotation.
    With dropout it follows the paper's schedule exactly."""
    from tinylatent.models.muse_similarity import self_learning, similarity_seed
    x, z, r, perm, truth = _isometric_pair(seed)
    n, d = x.shape
    pairs = similarity_seed(x, z, n=n, csls_k=3)
    np.testing.assert_array_equal(pairs[:n, 1], truth)       # forward: every source word
    np.testing.assert_array_equal(pairs[n:, 0], perm)        # backward: every target word
    # without dropout the exact seed is a fixed point: W is the rotation itself
    w, _ = self_learning(x, z, pairs, csls_k=3, keep_prob=1.0, interval=2)
    np.testing.assert_allclose(w, r, atol=1e-8)
    # with it: the first W is exact (objective 1, which no cosine can better), so p = .1, .2,
    # .4, .8, 1 each last `interval` + 1 iterations without improvement, then the loop ends:
    # 1 + 5 x 3. W is orthogonal whatever dictionary it ends on.
    w, iterations = self_learning(x, z, pairs, csls_k=3, interval=2)
    assert iterations == 16
    np.testing.assert_allclose(w @ w.T, np.eye(d), atol=1e-12)


def test_stochastic_self_learning_mostly_keeps_the_exact_start():
    """Stochastic dictionary induction is a randomized search and, like vecmap, returns the
    last W, not the best: from the exact seed it can wander into another optimum. Measured on
    data seeds 0-99: self-learning ends translating every word on 98 (seed 18: 68 of 80,
    seed 75: 55), MUSE.fit(init="similarity") on 98 (18: p@1 0.84, 75: 0.69); seed 428183564
    (found by hypothesis) ends on 64 of 80. The test allows one more failure each."""
    from tinylatent.models.muse_similarity import self_learning, similarity_seed
    lost_self_learning, lost_muse = [], []
    for seed in range(100):
        x, z, r, perm, truth = _isometric_pair(seed)
        n, d = x.shape
        pairs = similarity_seed(x, z, n=n, csls_k=3)
        w, _ = self_learning(x, z, pairs, csls_k=3, interval=2)
        xn, zn = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (x, z))
        if not np.array_equal((xn @ w.T @ zn.T).argmax(axis=1), truth):
            lost_self_learning.append(seed)
        muse = MUSE(in_features=d, init="similarity", similarity_words=n,
                    stochastic_interval=2, csls_k=3, normalize="renorm")
        muse.set_embeddings(x, z, [f"a{i}" for i in range(n)], [f"b{k}" for k in range(n)])
        muse.fit()
        reference = {f"a{i}": f"b{truth[i]}" for i in range(n)}
        # nearest neighbours: with W exact every word's own image is at cosine 1 (CSLS may
        # still prefer a near-duplicate word with a less crowded neighbourhood)
        if muse.evaluate(reference, n, (1,), method="nn")["p@1"] < 1.0:
            lost_muse.append(seed)
    assert len(lost_self_learning) <= 3, lost_self_learning
    assert len(lost_muse) <= 3, lost_muse


def test_learning_rates_follow_muse_update_lr(monkeypatch):
    """facebookresearch/MUSE's update_lr: W's lr decays by 0.98 per epoch and halves each
    time the criterion is below the best, except the first time; D's lr never changes."""
    muse = MUSE(in_features=4, epochs=5).set_embeddings(np.eye(4), np.eye(4))
    values = iter([0.5, 0.4, 0.45, 0.6, 0.3])
    monkeypatch.setattr(muse, "adversarial_epoch", lambda *a, **k: {})
    monkeypatch.setattr(muse, "criterion", lambda: next(values))
    optimizers = muse.optimizers()
    muse.fit(optimizers=optimizers, refine=False)
    # epochs: best, first drop (kept), drop (halved), best, drop (halved)
    assert optimizers["mapping"].param_groups[0]["lr"] == pytest.approx(0.1 * 0.98**5 / 4)
    assert optimizers["discriminator"].param_groups[0]["lr"] == 0.1
    assert float(muse.best_criterion.array) == pytest.approx(0.6)


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
    with pytest.raises(ValueError, match="init must be 'adversarial' or 'similarity'"):
        MUSE(in_features=4, init="random")
    with pytest.raises(RuntimeError, match="set_embeddings"):
        MUSE(in_features=4, init="similarity").fit()
    with pytest.raises(ValueError, match=r"procrustes: need \(n, d\)"):
        xl.procrustes(np.zeros((3, 2)), np.zeros((3, 3)))


# ---------------------------------------------------------------------- the cipher KJV
@pytest.fixture(scope="module")
def kjv_spaces():
    """Two word2vec spaces (D = 100, 15 epochs) on the A and B halves of the cipher KJV."""
    pair = tl.data.cipher_pair(seed=0)
    spaces = []
    for sentences, seed in ((pair.a_train, 1), (pair.b_train, 2)):
        tl.manual_seed(seed)
        w2v = tl.models.Word2Vec.from_sentences(sentences, min_count=5, latent_features=100,
                                                epochs=15)
        w2v.seed = seed
        w2v.fit(sentences)
        spaces += [w2v.itos, w2v.vectors(normalized=False)]
    return pair.cipher.dictionary, spaces


@pytest.mark.long
def test_cipher_kjv_procrustes_csls_and_refinement(kjv_spaces):
    """On the 5,000 most frequent A words (the ~2,800 of them whose translation is in B's
    vocabulary): Procrustes on the true dictionary (upper bound) reaches CSLS p@1 >= 45%
    (measured 50.8) and CSLS beats NN (measured 44.9); the refinement of Sec. 2.2, started
    from Procrustes on only the 100 most frequent true word pairs (measured 26.1), climbs
    to >= 40% (measured 45.0) with its own mutual-CSLS dictionaries (as
    examples/muse_kjv.py's rows)."""
    reference, (a_words, a, b_words, b) = kjv_spaces
    config = dict(normalize="renorm,center,renorm")
    upper = MUSE(**config).set_embeddings(a, b, a_words, b_words)
    in_b = set(b_words)
    upper.fit_supervised({w: reference[w] for w in a_words if reference[w] in in_b})
    csls, nn = upper.evaluate(reference), upper.evaluate(reference, method="nn")
    assert csls["words"] > 2500
    assert csls["p@1"] >= 0.45 and csls["p@1"] > nn["p@1"] + 0.02, (csls, nn)
    muse = MUSE(**config).set_embeddings(a, b, a_words, b_words)
    seed = [w for w in a_words if reference[w] in in_b][:100]
    muse.fit_supervised({w: reference[w] for w in seed})
    start = muse.evaluate(reference)["p@1"]
    muse.refine(5)
    end = muse.evaluate(reference)["p@1"]
    assert start < 0.35 and end >= 0.40, (start, end)


@pytest.mark.long
def test_cipher_kjv_true_map_is_an_adversarial_equilibrium(kjv_spaces):
    """Started at Procrustes on the true dictionary, 20,000 words of the adversarial game
    leave D at chance (L_D ~ log 2 = 0.693, measured 0.693) and W where it was (CSLS p@1
    measured 50.8 -> 50.8%): the right W is a fixed point of eqs. 3-4 here. (From W = I
    the game does not reach it at this scale; see the README row.)"""
    reference, (a_words, a, b_words, b) = kjv_spaces
    muse = MUSE(hidden_features=256, epoch_size=20000, normalize="renorm,center,renorm")
    muse.set_embeddings(a, b, a_words, b_words)
    in_b = set(b_words)
    muse.fit_supervised({w: reference[w] for w in a_words if reference[w] in in_b})
    before = muse.evaluate(reference)["p@1"]
    tl.manual_seed(0)
    stats = muse.adversarial_epoch(muse.optimizers(), 0)
    after = muse.evaluate(reference)["p@1"]
    assert stats["d_loss"] > 0.68 and after >= before - 0.02, (stats, before, after)


@pytest.mark.long
def test_cipher_kjv_similarity_init_without_any_dictionary(kjv_spaces):
    """MUSE with init="similarity" (Artetxe et al. 2018: seed dictionary from the sorted
    similarity rows, stochastic self-learning), no true pair used: CSLS p@1 on the same
    2,803 words >= 40% (measured 45.2, p@5 62.0, after 519 self-learning iterations),
    against the upper bound's 50.8% and adversarial MUSE's 0.7% (README); the refinement
    after it keeps it (the criterion keeps the best W)."""
    reference, (a_words, a, b_words, b) = kjv_spaces
    muse = MUSE(normalize="renorm,center,renorm", init="similarity")
    muse.set_embeddings(a, b, a_words, b_words)
    stats = muse.fit(refine=False)
    found = muse.evaluate(reference)
    muse.refine()
    refined = muse.evaluate(reference)
    print("similarity init", stats, found, "refined", refined)
    assert found["words"] == 2803 and found["p@1"] >= 0.40, found
    assert refined["p@1"] >= found["p@1"] - 0.02, refined


def _rotated_copy_game(kjv_spaces, rotation):
    """Adversarial MUSE (hidden 256, 3 epochs of 20,000 words) from W = I, with target
    = A's own space rotated by `rotation`: (p@1, |W - R| before, after)."""
    _, (a_words, a, _, _) = kjv_spaces
    muse = MUSE(hidden_features=256, epoch_size=20000, epochs=3,
                normalize="renorm,center,renorm")
    muse.set_embeddings(a, a @ rotation.T, a_words, ["b_" + w for w in a_words])
    tl.manual_seed(0)
    before = np.linalg.norm(np.eye(100) - rotation)
    muse.fit(refine=False)
    p1 = muse.evaluate({w: "b_" + w for w in a_words}, ks=(1,))["p@1"]
    after = np.linalg.norm(muse.weight.array - rotation)
    print("rotated copy: p@1", p1, "|I - R|", before, "|W - R|", after)
    return p1, before, after


@pytest.mark.long
def test_cipher_kjv_adversarial_game_converges_from_a_nearby_rotation(kjv_spaces):
    """The game's gradients point the right way: against A's space rotated by
    R = expm(0.06 (G - G^T)) (|R - I| = 7.88), W moves towards R (measured |W - R| 5.96
    after 3 epochs) and translates every word."""
    from scipy.linalg import expm
    g = np.random.default_rng(0).standard_normal((100, 100))
    p1, before, after = _rotated_copy_game(kjv_spaces, expm(0.06 * (g - g.T)))
    assert p1 == 1.0 and after < before - 1.0, (p1, before, after)


@pytest.mark.long
@pytest.mark.xfail(reason="not met: from W = I the game does not find a random rotation of "
                   "A's own space (measured p@1 0.0%, |W - R| 14.23 -> 14.15); MUSE's own "
                   "runs take ~80x more W steps, D 2048 wide, on 75k words", strict=True,
                   raises=AssertionError)
def test_cipher_kjv_adversarial_game_finds_a_random_rotation(kjv_spaces):
    p1, before, after = _rotated_copy_game(kjv_spaces, _rotation(100, np.random.default_rng(0)))
    assert p1 >= 0.5, (p1, before, after)
