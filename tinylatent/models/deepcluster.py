"""DeepCluster (Caron, Bojanowski, Joulin & Douze 2018, "Deep Clustering for Unsupervised
Learning of Visual Features").

Alternate, once per epoch (sec. 3.2, eq. 2-3):

  1. cluster: features f_theta(x_n) of the whole training set, PCA-reduced, whitened and
     L2-normalised (sec. 4, "Implementation details"), are clustered by k-means,
         min_C sum_n min_{y_n in {0,1}^k} ||f_theta(x_n) - C y_n||^2,   y_n^T 1 = 1   (eq. 2)
     and the assignments y_n become pseudo-labels;
  2. learn: the conv net and a classifier g_W, RE-INITIALISED every epoch (the previous
     epoch's W classified a different partition), minimise the cross-entropy
         min_{theta, W} 1/N sum_n l(g_W(f_theta(x_n)), y_n)                          (eq. 1)
     over images sampled uniformly over the pseudo-classes (sec. 3.3: large clusters would
     otherwise dominate and the net would collapse to few clusters).

Empty clusters (sec. 3.3): a cluster that loses all its points gets the centroid of a
randomly chosen non-empty cluster plus a small random perturbation, and the points of that
cluster are split between the two. The model's `loss((x, pseudo_labels))` is eq. 1; given
images alone, the pseudo-labels are their nearest centroids of the last clustering.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn
from ..losses import cross_entropy
from ..tensor import Tensor
from .config import resolve_config
from .simclr import conv_trunk, simclr_augmentation

__all__ = ["DeepCluster", "DeepClusterConfig", "ClusterLoader", "kmeans_reseeding",
           "uniform_cluster_sampler", "pca_whiten"]


def pca_whiten(f: np.ndarray, dim: int, eps: float = 1e-5) -> tuple:
    """Centre, project on the top `dim` principal axes, divide by their std, L2-normalise
    rows -> (features (N, dim), (mean, projection)) so new rows can be mapped the same way."""
    mean = f.mean(0)
    _, s, vt = np.linalg.svd(f - mean, full_matrices=False)
    dim = min(dim, len(s))
    proj = vt[:dim].T / (s[:dim] / np.sqrt(len(f)) + eps)            # (D, dim)
    return _apply(f, (mean, proj)), (mean, proj)


def _apply(f: np.ndarray, pca: tuple) -> np.ndarray:
    g = (f - pca[0]) @ pca[1]
    return g / (np.linalg.norm(g, axis=1, keepdims=True) + 1e-12)


def kmeans_reseeding(f: np.ndarray, k: int, rng: np.random.Generator, iters: int = 20,
                     perturbation: float = 1e-4) -> tuple:
    """Lloyd's k-means from k random points, with DeepCluster's empty-cluster rule: an empty
    cluster takes the centroid of a random cluster of two or more points (times
    1 +- perturbation; the original centroid moves the other way) and the donor's points
    are split between the two. -> (labels (N,), centroids (k, D), reseeded count)."""
    if not 1 <= k <= len(f):
        raise ValueError(f"kmeans_reseeding: need 1 <= k <= N, got k={k}, N={len(f)}")
    c = f[rng.choice(len(f), k, replace=False)].astype(np.float64)
    reseeded = 0
    for _ in range(iters):
        d = (f ** 2).sum(1)[:, None] - 2 * f @ c.T + (c ** 2).sum(1)[None]   # (N, k)
        labels = d.argmin(1)
        counts = np.bincount(labels, minlength=k)
        for j in np.flatnonzero(counts == 0):
            donor = rng.choice(np.flatnonzero(counts > 1))   # k <= N: one has two points
            eps = perturbation * rng.standard_normal(c.shape[1])
            c[j], c[donor] = c[donor] * (1 + eps), c[donor] * (1 - eps)
            # give the new centroid the donor's points that are now closer to it
            idx = np.flatnonzero(labels == donor)
            closer = ((f[idx] - c[j]) ** 2).sum(1) < ((f[idx] - c[donor]) ** 2).sum(1)
            if not closer.any() or closer.all():      # an exact tie: split the donor in two
                closer = np.arange(len(idx)) % 2 == 1
            labels[idx[closer]] = j
            counts = np.bincount(labels, minlength=k)
            reseeded += 1
        c = np.stack([f[labels == j].mean(0) for j in range(k)])
    return labels, c, reseeded


def uniform_cluster_sampler(labels, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices drawn with replacement so that every non-empty pseudo-class is equally
    likely: P(i) = 1 / (K' * |cluster of i|), K' the number of non-empty clusters."""
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    p = 1.0 / (np.count_nonzero(counts) * counts[labels])
    return rng.choice(len(labels), n, replace=True, p=p / p.sum())


@dataclass(frozen=True)
class DeepClusterConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_channels: tuple = (32, 64)
    hidden_features: int = 128     # width of f(x), the clustered representation
    latent_features: int = 32      # PCA dimension before k-means (the paper: 256 of 4096)
    n_clusters: int = 10           # k (the paper over-segments ImageNet with k = 10,000)
    augment: bool = True           # random resized crops + rotations in training (sec. 4)


class DeepCluster(nn.Module):
    """Conv net f_theta, per-epoch k-means pseudo-labels, re-initialised linear classifier."""

    def __init__(self, config: DeepClusterConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = cfg = resolve_config(self, DeepClusterConfig, config, overrides)
        if cfg.n_clusters < 2:
            raise ValueError(f"DeepCluster: n_clusters must be >= 2, got {cfg.n_clusters}")
        trunk, width = conv_trunk(cfg.in_channels, cfg.image_size, cfg.hidden_channels)
        self.encoder = nn.Sequential(trunk, nn.Linear(width, cfg.hidden_features), nn.ReLU())
        self.classifier = nn.Linear(cfg.hidden_features, cfg.n_clusters)
        self.centroids = None          # (k, latent) of the last clustering, with its PCA
        self.pca = None
        self.augment = simclr_augmentation(cfg.image_size, crop_scale=0.6, noise=0.0) \
            if cfg.augment else None

    def encode(self, x: Tensor) -> Tensor:
        """f_theta(x), (B, hidden_features)."""
        c, s = self.config.in_channels, self.config.image_size
        if x.ndim == 2 and x.shape[1] == c * s * s:
            x = x.reshape(x.shape[0], c, s, s)                     # (B, C, S, S)
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"DeepCluster: expected images (B, {c}, {s}, {s}), got "
                             f"{tuple(x.shape)}")
        return self.encoder(x)

    def cluster(self, features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Step 1 on the whole set's features: PCA-whiten + L2, k-means; re-initialise the
        classifier (sec. 3.2). Returns the pseudo-labels (N,)."""
        f, self.pca = pca_whiten(np.asarray(features, dtype=np.float64),
                                 self.config.latent_features)
        labels, self.centroids, self.reseeded = kmeans_reseeding(f, self.config.n_clusters,
                                                                 rng)
        fresh = nn.Linear(self.config.hidden_features, self.config.n_clusters)
        self.classifier.load_state_dict(fresh.state_dict())   # same Parameters: the optimizer
        return labels                                          # keeps them (moments reset below)

    def evaluate(self, x, y, seed: int = 0) -> dict:
        """Clustering accuracy and NMI of k-means (k = 10, 3 restarts) on the FROZEN
        features f(x) of images x (N, C, S, S), next to k-means on their raw pixels."""
        from ..eval import cluster_accuracy, frozen_features, normalized_mutual_info
        from .classical import KMeans
        res = {}
        for name, v in (("raw pixels", x.reshape(len(x), -1)),
                        ("DeepCluster f(x)", frozen_features(self.encode, x, module=self))):
            pred = np.asarray(KMeans(10, n_init=3, seed=seed).fit(v).predict(v))
            res[name] = (cluster_accuracy(y, pred), normalized_mutual_info(y, pred))
        return res

    def pseudo_labels(self, x: Tensor) -> np.ndarray:
        """The nearest centroid of the last clustering (run `cluster` first)."""
        if self.centroids is None:
            raise ValueError("DeepCluster: no clustering yet; call cluster(features) first "
                             "or pass (images, pseudo_labels) to loss")
        f = _apply(self.encode(x).detach().numpy_host().astype(np.float64), self.pca)
        return ((f[:, None] - self.centroids[None]) ** 2).sum(-1).argmin(1)

    def loss(self, batch) -> tuple[Tensor, dict]:
        """Eq. 1: cross-entropy of g_W(f(x)) against the pseudo-labels; batch is
        (images, pseudo_labels) or images alone (then their nearest centroids)."""
        if isinstance(batch, (tuple, list)):
            x, y = batch
        else:
            x = batch
            if self.centroids is None:   # a first clustering of this batch only
                self.cluster(self.encode(x).detach().numpy_host(), np.random.default_rng(0))
            y = self.pseudo_labels(x)
        if self.augment is not None and self.training:
            x = self.augment(x.detach())
        logits = self.classifier(self.encode(x))                   # (B, k)
        y = y if isinstance(y, Tensor) else Tensor._make(logits.xp.asarray(np.asarray(y)))
        loss = cross_entropy(logits, y)
        return loss, {"loss": loss.detach()}


class ClusterLoader:
    """DeepCluster's epoch as a loader (sec. 3.2): cluster the FROZEN features of all images
    x (N, C, S, S) (eval mode, no_grad), reset the re-initialised classifier's optimizer
    moments, then yield (images, pseudo-labels) batches drawn uniformly over the clusters."""

    def __init__(self, model: DeepCluster, optimizer, x, batch_size: int, generator) -> None:
        self.model, self.optimizer, self.x = model, optimizer, x
        self.batch_size, self.generator, self.dataset = batch_size, generator, x

    def __len__(self) -> int:
        return len(self.x) // self.batch_size

    def __iter__(self):
        from ..data.transforms import as_numpy_generator
        from ..eval import frozen_features
        rng = as_numpy_generator(self.generator)
        labels = self.model.cluster(frozen_features(self.model.encode, self.x,
                                                    module=self.model), rng)
        for p in self.model.classifier.parameters():       # a new classifier: no old moments
            self.optimizer.state.pop(p, None)
        self.model.train()
        idx = uniform_cluster_sampler(labels, len(self) * self.batch_size, rng)
        for b in range(len(self)):
            i = idx[b * self.batch_size:(b + 1) * self.batch_size]
            yield Tensor._make(self.x[i]), Tensor._make(labels[i])
