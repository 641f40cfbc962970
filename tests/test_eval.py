"""tinylatent.eval: each tool against scikit-learn or a hand-computed case.

Linear probe and k-NN on sklearn's digits (real 8x8 images, fast); clustering scores against
sklearn and small tables worked out by hand; the Frechet distance against closed forms for
Gaussians; the sample-quality score on the embedded real MNIST test images."""
from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest
import scipy.linalg

import tinylatent as tl
from tinylatent.data import EMBEDDED_MNIST
from tinylatent.eval import (LogisticRegression, SampleQuality, cluster_accuracy,
                             contingency_matrix, frechet_distance, gaussian_statistics,
                             hit_rate_at_k, knn_accuracy, knn_predict, linear_probe,
                             load_classifier, nearest_neighbours, normalized_mutual_info,
                             precision_at_k, recall_at_k, save_classifier,
                             train_image_classifier)

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLogisticRegression  # noqa: E402
from sklearn.metrics import normalized_mutual_info_score  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order].astype(np.float32) / 16.0, y[order]
    return X[:1200], y[:1200], X[1200:], y[1200:]


@pytest.fixture(scope="module")
def mnist_test():
    with np.load(EMBEDDED_MNIST) as d:
        return d["test_images"].astype(np.float32) / 255.0, d["test_labels"], \
            d["train_images"].astype(np.float32) / 255.0, d["train_labels"]


# ----------------------------------------------------------------------------- linear probe
@pytest.mark.parametrize("solver", ["lbfgs", "nesterov"])
def test_logistic_regression_agrees_with_sklearn(digits, solver):
    """Same objective as sklearn's LogisticRegression(C = 1 / (l2 N)) on the same
    standardised features: test accuracies within 1 point; L-BFGS also gives the same
    weights and probabilities (both solve the convex problem to the optimum)."""
    Xtr, ytr, Xte, yte = digits
    l2 = 1e-2
    clf = LogisticRegression(10, l2=l2, solver=solver).fit(Xtr, ytr)
    mu, sigma = Xtr.mean(0), Xtr.std(0) + 1e-6
    sk = SkLogisticRegression(C=1.0 / (l2 * len(Xtr)), tol=1e-10, max_iter=5000)
    sk.fit((Xtr - mu) / sigma, ytr)
    acc, acc_sk = clf.score(Xte, yte), sk.score((Xte - mu) / sigma, yte)
    assert abs(acc - acc_sk) <= 0.01, (acc, acc_sk)
    assert acc > 0.9
    if solver == "lbfgs":
        p = clf.predict_logits(Xte).softmax(-1).numpy()
        np.testing.assert_allclose(p, sk.predict_proba((Xte - mu) / sigma), atol=2e-3)
        # sklearn's multinomial weights are identified only up to a shift shared by all
        # classes; with an L2 penalty that shift is 0, so they are comparable directly
        np.testing.assert_allclose(clf.W.numpy().T, sk.coef_, atol=5e-3)


def test_linear_probe_and_input_checks(digits):
    Xtr, ytr, Xte, yte = digits
    clf = LogisticRegression(10, l2=1e-2).fit(Xtr, ytr)
    assert linear_probe(tl.tensor(Xtr), tl.tensor(ytr), Xte, yte, l2=1e-2) == \
        clf.score(Xte, yte)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        LogisticRegression(5).fit(Xtr, ytr)
    with pytest.raises(ValueError, match="1200 rows"):
        LogisticRegression(10).fit(Xtr, ytr[:10])
    with pytest.raises(RuntimeError, match="call fit first"):
        LogisticRegression(10).predict(Xte)
    with pytest.raises(ValueError, match="solver"):
        LogisticRegression(10, solver="sgd")
    with pytest.raises(ValueError, match="has 3 features"):
        clf.predict(Xte[:, :3])


def test_linear_probe_chooses_l2_on_a_validation_split_of_the_training_rows(digits):
    """A grid of l2 values: the one with the best accuracy on a held-out 10% of the training
    rows (fixed split, seed 0) is refit on all of them; the test rows choose nothing."""
    Xtr, ytr, Xte, yte = digits
    grid = (1e-4, 1e-2, 10.0)
    order = np.random.default_rng(0).permutation(len(ytr))
    val, fit = order[:len(ytr) // 10], order[len(ytr) // 10:]
    val_acc = [LogisticRegression(10, l2=c).fit(Xtr[fit], ytr[fit]).score(Xtr[val], ytr[val])
               for c in grid]
    best = grid[int(np.argmax(val_acc))]
    assert best != 10.0                                  # the grid's extreme loses
    assert linear_probe(Xtr, ytr, Xte, yte, l2=grid) == linear_probe(Xtr, ytr, Xte, yte,
                                                                     l2=best)
    assert linear_probe(Xtr, ytr, Xte, yte, l2=(best,)) == linear_probe(Xtr, ytr, Xte, yte,
                                                                        l2=best)
    with pytest.raises(ValueError, match="validation"):
        linear_probe(Xtr, ytr, Xte, yte, l2=grid, validation=1.5)


# ----------------------------------------------------------------------------- neighbours
def test_precision_at_k_against_brute_force():
    rng = np.random.default_rng(0)
    D, Q = rng.normal(size=(50, 4)), rng.normal(size=(7, 4))
    yd, yq = rng.integers(0, 3, 50), rng.integers(0, 3, 7)
    dist = ((Q[:, None] - D[None]) ** 2).sum(-1)
    ref_idx = np.argsort(dist, 1)[:, :5]
    np.testing.assert_array_equal(nearest_neighbours(tl.tensor(Q), tl.tensor(D), 5).numpy(),
                                  ref_idx)
    assert precision_at_k(Q, yq, D, yd, 5) == pytest.approx((yd[ref_idx] == yq[:, None]).mean())
    cos = (Q / np.linalg.norm(Q, axis=1, keepdims=True)) @ \
        (D / np.linalg.norm(D, axis=1, keepdims=True)).T
    np.testing.assert_array_equal(nearest_neighbours(Q, D, 5, "cosine").numpy(),
                                  np.argsort(-cos, 1)[:, :5])
    # leave-one-out never returns the query itself
    idx = nearest_neighbours(D, D, 3, exclude_self=True).numpy()
    assert not (idx == np.arange(50)[:, None]).any()
    with pytest.raises(ValueError, match="metric"):
        precision_at_k(Q, yq, D, yd, metric="manhattan")
    with pytest.raises(ValueError, match="k=60 exceeds"):
        nearest_neighbours(Q, D, 60)
    with pytest.raises(ValueError, match="7 labels for 50 rows"):
        precision_at_k(Q, yq, D, yq, 5)


def test_recall_and_hit_rate_by_hand():
    # 1-D database: labels 0 0 0 1 1 at x = 0 1 2 10 11; queries at x = 0.4 (label 0) and
    # 10.6 (label 1). k = 2: query 0 retrieves x=0, 1 (2 of its 3 relevant, both relevant);
    # query 1 retrieves x=11, 10 (2 of 2 relevant).
    D = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    yd = np.array([0, 0, 0, 1, 1])
    Q, yq = np.array([[0.4], [10.6]]), np.array([0, 1])
    assert recall_at_k(Q, yq, D, yd, 2) == pytest.approx((2 / 3 + 2 / 2) / 2)
    assert precision_at_k(Q, yq, D, yd, 2) == pytest.approx(1.0)
    # k = 4: query 0 gets 0 1 2 10 (3/3 relevant found, precision 3/4); query 1 gets
    # 11 10 2 1 (2/2 found, precision 2/4)
    assert recall_at_k(Q, yq, D, yd, 4) == pytest.approx(1.0)
    assert precision_at_k(Q, yq, D, yd, 4) == pytest.approx((3 / 4 + 2 / 4) / 2)
    # a query of label 1 sitting among the 0s: no hit at k = 1 or 3, a hit at k = 4
    Q2, yq2 = np.array([[1.1]]), np.array([1])
    assert hit_rate_at_k(Q2, yq2, D, yd, 3) == 0.0
    assert hit_rate_at_k(Q2, yq2, D, yd, 4) == 1.0
    assert recall_at_k(Q2, yq2, D, yd, 4) == pytest.approx(1 / 2)
    # leave-one-out: the query's own row is neither retrieved nor counted as relevant
    # k = 1: each 0 finds 1 of its 2 other 0s, each 1 finds its 1 other 1
    assert recall_at_k(D, yd, D, yd, 1, exclude_self=True) == pytest.approx(
        np.mean([1 / 2, 1 / 2, 1 / 2, 1 / 1, 1 / 1]))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 5])
def test_knn_majority_matches_sklearn(digits, metric, k):
    """Brute-force k-NN with uniform votes: the same predictions as sklearn wherever the
    vote is not tied (the tie rules differ: sklearn takes the smallest label, we take the
    class ranked nearest)."""
    Xtr, ytr, Xte, yte = digits
    pred = knn_predict(Xtr, ytr, Xte, k=k, metric=metric)
    sk = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute").fit(Xtr, ytr)
    idx = nearest_neighbours(Xte, Xtr, k, metric).numpy()
    votes = np.stack([np.bincount(r, minlength=10) for r in ytr[idx]])
    untied = (votes == votes.max(1, keepdims=True)).sum(1) == 1
    assert untied.mean() > 0.9
    np.testing.assert_array_equal(pred[untied], sk.predict(Xte)[untied])
    acc = knn_accuracy(Xtr, ytr, Xte, yte, k=k, metric=metric)
    assert acc == pytest.approx((pred == yte).mean()) and acc > 0.95


def test_knn_tie_rule_and_weighted_vote_by_hand():
    # points on a line; the query at 0.1: neighbours in order x=0 (label 1), x=1 (label 0),
    # x=2 (label 0), x=3 (label 1)
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([1, 0, 0, 1])
    q = np.array([[0.1]])
    assert knn_predict(X, y, q, k=1, metric="euclidean")[0] == 1
    assert knn_predict(X, y, q, k=2, metric="euclidean")[0] == 1   # 1-1 tie: nearest wins
    assert knn_predict(X, y, q, k=3, metric="euclidean")[0] == 0   # 2 votes to 1
    assert knn_predict(X, y, q, k=4, metric="euclidean")[0] == 1   # 2-2 tie: nearest wins
    # Wu et al. 2018 weighting: w = exp(cos / tau). Unit vectors at angles 0, 60, 70 degrees
    # from the query, labels 1, 0, 0: class 0 wins by count; by weight class 1 wins at
    # tau = 0.5 (e^2 = 7.39 > e^1 + e^0.68 = 4.70), class 0 at tau = 2 (1.65 < 2.47)
    ang = np.radians([0.0, 60.0, 70.0])
    Xc = np.stack([np.cos(ang), np.sin(ang)], 1)
    yc = np.array([1, 0, 0])
    qc = np.array([[1.0, 0.0]])
    assert knn_predict(Xc, yc, qc, k=3, weighting="majority")[0] == 0
    assert knn_predict(Xc, yc, qc, k=3, weighting="exp", temperature=0.5)[0] == 1
    assert knn_predict(Xc, yc, qc, k=3, weighting="exp", temperature=2.0)[0] == 0
    with pytest.raises(ValueError, match="metric='cosine'"):
        knn_predict(X, y, q, weighting="exp", metric="euclidean")


# ----------------------------------------------------------------------------- clustering
def test_cluster_accuracy_by_hand_and_brute_force():
    assert cluster_accuracy([0, 0, 1, 1, 2, 2], [1, 1, 2, 2, 0, 0]) == 1.0
    assert cluster_accuracy([0, 0, 1, 1, 2, 2], [5, 5, 7, 7, 7, 9]) == pytest.approx(5 / 6)
    # 4 clusters for 2 classes: only 2 clusters can be matched
    assert cluster_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == pytest.approx(2 / 4)
    rng = np.random.default_rng(0)
    for _ in range(20):
        yt, yp = rng.integers(0, 4, 30), rng.integers(0, 4, 30)
        table = contingency_matrix(yt, yp)
        best = max(sum(table[i, p[i]] for i in range(table.shape[0]))
                   for p in itertools.permutations(range(table.shape[1]), table.shape[0]))
        assert cluster_accuracy(yt, yp) == pytest.approx(best / 30)


def test_nmi_against_sklearn_and_by_hand():
    # y_true = 0 0 1 1, y_pred = 0 0 0 1: p(0,0) = 1/2, p(1,0) = 1/4, p(1,1) = 1/4
    mi = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    h_true = math.log(2)
    h_pred = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert normalized_mutual_info([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(
        mi / ((h_true + h_pred) / 2))
    assert normalized_mutual_info([0, 0, 1, 1], [3, 3, 1, 1]) == pytest.approx(1.0)
    assert normalized_mutual_info([0, 1, 0, 1], [0, 0, 1, 1]) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(1)
    for n_true, n_pred in [(2, 2), (3, 5), (10, 10), (10, 4)]:
        yt = rng.integers(0, n_true, 200)
        yp = np.where(rng.random(200) < 0.6, yt % n_pred, rng.integers(0, n_pred, 200))
        assert normalized_mutual_info(yt, yp) == pytest.approx(
            normalized_mutual_info_score(yt, yp), abs=1e-10)
    for yt, yp in [([1, 1, 1], [2, 2, 2]), ([1, 1, 1], [0, 1, 2]), ([0, 1, 2], [4, 4, 4])]:
        assert normalized_mutual_info(yt, yp) == pytest.approx(
            normalized_mutual_info_score(yt, yp))
    with pytest.raises(ValueError, match="3 labels for 2 rows"):
        normalized_mutual_info([0, 1], [0, 1, 1])


# ----------------------------------------------------------------------------- Frechet
def _closed_form(mu1, s1, mu2, s2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), square roots by eigh."""
    def psd_sqrt(a):
        w, v = np.linalg.eigh(a)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    r1 = psd_sqrt(s1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * psd_sqrt(r1 @ s2 @ r1)))


def test_frechet_distance_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)
    # diagonal: ||dmu||^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    assert frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b)) == \
        pytest.approx(3 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    # general non-commuting covariances
    rng = np.random.default_rng(0)
    for d in (2, 5, 16):
        A, B = rng.normal(size=(d, d)), rng.normal(size=(d, d))
        s1, s2 = A @ A.T + 0.1 * np.eye(d), B @ B.T + 0.1 * np.eye(d)
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        fd = frechet_distance(mu1, s1, mu2, s2)
        assert fd == pytest.approx(_closed_form(mu1, s1, mu2, s2), rel=1e-8)
        assert fd == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-8)
        assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)
    # statistics of samples converge to the closed form
    x = rng.normal(size=(200000, 2)) @ np.array([[1.0, 0.5], [0.0, 2.0]])
    mu, cov = gaussian_statistics(x)
    np.testing.assert_allclose(cov, [[1.0, 0.5], [0.5, 4.25]], atol=0.05)
    # fewer samples than features: singular covariances, still a finite number
    fd = frechet_distance(*gaussian_statistics(rng.normal(size=(5, 10))),
                          *gaussian_statistics(rng.normal(size=(5, 10))))
    assert np.isfinite(fd) and fd > 0
    assert np.allclose(scipy.linalg.sqrtm(np.eye(2)), np.eye(2))
    with pytest.raises(ValueError, match="shapes disagree"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


# ----------------------------------------------------------------------------- sample quality
def _blur(images):
    """3x3 box blur of (N, 28, 28) images, edges replicated."""
    pad = np.pad(images, ((0, 0), (1, 1), (1, 1)), mode="edge")
    return sum(pad[:, i:i + 28, j:j + 28] for i in range(3) for j in range(3)) / 9.0


def test_sample_quality_on_real_noise_blurred_and_one_class(mnist_test):
    """The shipped MNIST classifier: real held-out images score far below noise; blurred
    images and a single repeated digit score worse than real; the histogram shows the
    missing modes."""
    x_test, y_test, x_train, _ = mnist_test
    sq = SampleQuality()
    assert sq.info["test_accuracy"] > 0.95
    assert (sq.predict(x_test) == y_test).mean() == pytest.approx(sq.info["test_accuracy"])
    real = x_train[:1000]  # held-out test images vs 1,000 training images, equal N
    fd_real = sq.frechet_distance(real, x_test)
    fd_noise = sq.frechet_distance(real, np.random.default_rng(0).random((1000, 28, 28)))
    fd_blur = sq.frechet_distance(real, _blur(x_test))
    ones = x_test[y_test == 1]
    single = ones[np.arange(1000) % len(ones)]
    fd_single = sq.frechet_distance(real, single)
    print(f"\nFIGURE Frechet distance vs 1,000 train images: real test {fd_real:.2f}, "
          f"blurred {fd_blur:.2f}, one digit {fd_single:.2f}, uniform noise {fd_noise:.2f}")
    assert fd_real < 0.05 * fd_noise
    assert fd_blur > 3 * fd_real and fd_single > 3 * fd_real
    hist = sq.class_histogram(x_test)
    np.testing.assert_allclose(hist, np.bincount(y_test, minlength=10) / len(y_test),
                               atol=0.03)
    assert sq.mode_coverage(x_test) == 1.0
    assert sq.class_histogram(single)[1] > 0.9 and sq.mode_coverage(single) == 0.1
    # uint8 and (N, 1, 28, 28) inputs mean the same images
    as_uint8 = np.round(x_test[:50] * 255).astype(np.uint8)
    np.testing.assert_allclose(sq.features(as_uint8), sq.features(x_test[:50, None]),
                               atol=1e-5)
    with pytest.raises(ValueError, match="got shape"):
        sq.features(np.zeros((3, 27, 27)))


def test_train_image_classifier_is_seeded_and_round_trips(mnist_test, tmp_path):
    x_test, y_test, x_train, y_train = mnist_test
    a = train_image_classifier(x_train[:300], y_train[:300], epochs=2, seed=3)
    b = train_image_classifier(x_train[:300], y_train[:300], epochs=2, seed=3)
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
    path = tmp_path / "clf.npz"
    save_classifier(a, str(path), data="test")
    loaded, info = load_classifier(str(path))
    assert info == {"data": "test"}
    np.testing.assert_array_equal(SampleQuality(loaded).features(x_test[:20]),
                                  SampleQuality(str(path)).features(x_test[:20]))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 10\)"):
        train_image_classifier(x_train[:10], y_train[:10] + 10, epochs=1)
    with pytest.raises(FileNotFoundError, match="train_eval_classifier"):
        load_classifier(str(tmp_path / "missing.npz"))


def test_one_implementation_reexported_by_the_old_modules():
    from tinylatent.models import patch_features, retrieval
    assert patch_features.LogisticRegression is tl.eval.LogisticRegression
    assert retrieval.precision_at_k is tl.eval.precision_at_k
    assert retrieval.nearest_neighbours is tl.eval.nearest_neighbours
    assert tl.train.Trainer.__module__ == "tinylatent.train"


def test_classifier_script_trains_on_any_labelled_npz(mnist_test, tmp_path):
    """scripts/train_eval_classifier.py --npz: a user's own 28x28 labelled set (here 5
    classes of uint8 images) gives a classifier file that SampleQuality loads."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts",
                        "train_eval_classifier.py")
    spec = importlib.util.spec_from_file_location("train_eval_classifier", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    x_test, y_test, x_train, y_train = mnist_test
    keep_tr, keep_te = y_train < 5, y_test < 5
    data = tmp_path / "mine.npz"
    u8 = lambda a: np.round(a * 255).astype(np.uint8)  # noqa: E731
    np.savez(data, train_images=u8(x_train[keep_tr][:400]), train_labels=y_train[keep_tr][:400],
             test_images=u8(x_test[keep_te]), test_labels=y_test[keep_te])
    out = tmp_path / "mine_classifier.npz"
    script.main(["--npz", str(data), "--epochs", "3", "--out", str(out)])
    sq = SampleQuality(str(out))
    assert sq.model.config.n_classes == 5 and sq.info["data"] == str(data)
    assert sq.info["test_accuracy"] > 0.8
    assert sq.class_histogram(x_test[keep_te]).shape == (5,)
