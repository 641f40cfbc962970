"""DeepCluster (models/deepcluster.py): empty clusters are re-seeded, sampling is uniform over
pseudo-classes, the classifier is re-initialised at each clustering, and training on the
embedded MNIST subset clusters better than k-means on raw pixels (encoder frozen)."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent.eval import cluster_accuracy, normalized_mutual_info
from tinylatent.models import DeepCluster, KMeans
from tinylatent.models.deepcluster import kmeans_reseeding, pca_whiten, uniform_cluster_sampler


def test_empty_clusters_are_reseeded_from_a_non_empty_one():
    # three copies of one point and one other: two of k = 3 random starts coincide, one of
    # them must go empty at the first assignment
    f = np.array([[0.0, 0.0]] * 3 + [[1.0, 1.0]])
    for seed in range(10):
        labels, c, reseeded = kmeans_reseeding(f, 3, np.random.default_rng(seed), iters=5)
        assert np.all(np.bincount(labels, minlength=3) > 0), (seed, labels)
        np.testing.assert_allclose(c, np.stack([f[labels == j].mean(0) for j in range(3)]))
    # with distinct clumps nothing is ever empty and nothing is re-seeded
    g = np.concatenate([np.random.default_rng(0).normal(m, 0.01, (20, 2)) for m in (0, 5, 9)])
    labels, _, reseeded = kmeans_reseeding(g, 3, np.random.default_rng(0))
    assert sorted(np.bincount(labels)) == [20, 20, 20]
    with pytest.raises(ValueError, match="need 1 <= k <= N"):
        kmeans_reseeding(f, 5, np.random.default_rng(0))


def test_sampling_is_uniform_over_pseudo_classes():
    labels = np.array([0] * 900 + [1] * 90 + [3] * 10)      # cluster 2 is empty
    idx = uniform_cluster_sampler(labels, 60000, np.random.default_rng(0))
    freq = np.bincount(labels[idx], minlength=4) / len(idx)
    np.testing.assert_allclose(freq, [1 / 3, 1 / 3, 0, 1 / 3], atol=0.01)


def test_clustering_reinitialises_the_classifier_and_whitens():
    tl.manual_seed(0)
    model = DeepCluster(image_size=8, hidden_channels=(2,), hidden_features=6,
                        latent_features=3, n_clusters=3)
    w = model.classifier.weight
    before = w.detach().numpy().copy()
    feats = np.random.default_rng(0).standard_normal((30, 6))
    labels = model.cluster(feats, np.random.default_rng(0))
    assert model.classifier.weight is w                      # the optimizer's Parameter
    assert not np.allclose(before, w.detach().numpy())       # with fresh values
    assert labels.shape == (30,) and set(labels) <= {0, 1, 2}
    f, _ = pca_whiten(feats, 3)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0)
    x = tl.tensor(np.random.default_rng(1).random((4, 1, 8, 8)).astype(np.float32))
    assert model.pseudo_labels(x).shape == (4,)
    with pytest.raises(ValueError, match="n_clusters must be >= 2"):
        DeepCluster(n_clusters=1)


def _frozen(model, x):
    with tl.no_grad():
        return np.concatenate([model.encode(tl.tensor(x[i:i + 1000])).numpy()
                               for i in range(0, len(x), 1000)])


@pytest.mark.long
def test_deepcluster_beats_kmeans_on_raw_pixels():
    """examples/contrastive.py --model deepcluster, shortened: 6 epochs on the embedded
    4,000 training images; k-means (k = 10) on the frozen features vs on the pixels."""
    x, y = tl.data.load_mnist("mnist", "train", download=False)
    x = x.astype(np.float32)[:, None] / 255.0                           # (N, 1, 28, 28)
    tl.manual_seed(0)
    model = DeepCluster()
    opt = tl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-5)
    rng = np.random.default_rng(0)
    for _ in range(6):
        model.eval()
        labels = model.cluster(_frozen(model, x), rng)
        for p in model.classifier.parameters():
            opt.state.pop(p, None)
        model.train()
        idx = uniform_cluster_sampler(labels, len(x), rng)
        for b in range(0, len(idx) - 63, 64):
            loss, _ = model.loss((tl.tensor(x[idx[b:b + 64]]), labels[idx[b:b + 64]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    scores = {}
    for name, v in (("raw", x.reshape(len(x), -1)), ("deepcluster", _frozen(model, x))):
        pred = np.asarray(KMeans(10, n_init=3, seed=0).fit(v).predict(v))
        scores[name] = (cluster_accuracy(y, pred), normalized_mutual_info(y, pred))
    print(scores)
    assert scores["deepcluster"][0] > scores["raw"][0], scores
    assert scores["deepcluster"][1] > scores["raw"][1], scores
