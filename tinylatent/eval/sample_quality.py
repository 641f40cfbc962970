"""Sample quality of 28x28 image generators: the Frechet distance between real and generated
images in the feature space of a small classifier trained by tinylatent, and the class
histogram of the generated images under that classifier (mode coverage).

    sq = SampleQuality()                          # the shipped MNIST classifier
    fd = sq.frechet_distance(real_images, samples)  # (N, 784) or (N, 28, 28), in [0, 1]
    hist = sq.class_histogram(samples)            # fraction of samples per class
    cover = sq.mode_coverage(samples)             # fraction of classes with >= 5% of samples

This is the FID recipe of Heusel et al. (2017), "GANs trained by a two time-scale update rule
converge to a local Nash equilibrium", eq. 6, with the Inception network replaced by an MLP
trained on MNIST (the same substitution as e.g. the "Frechet LeNet distance"); its numbers
are comparable only with numbers computed by the same classifier. The shipped weights
(mnist_classifier.npz, ~0.4 MB) are made by scripts/train_eval_classifier.py, which also
trains a classifier for any other 28x28 labelled set (Fashion-MNIST, a folder of IDX files,
an .npz) to pass as SampleQuality(classifier=path).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg

from .. import nn
from ..autograd import no_grad
from ..tensor import Tensor
from ._arrays import host, labels

__all__ = ["ClassifierConfig", "ImageClassifier", "train_image_classifier", "save_classifier",
           "load_classifier", "gaussian_statistics", "frechet_distance", "SampleQuality",
           "MNIST_CLASSIFIER"]

MNIST_CLASSIFIER = os.path.join(os.path.dirname(__file__), "weights", "mnist_classifier.npz")


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int = 28
    hidden: int = 128
    feature_dim: int = 64     # the penultimate layer: the feature space of the distance
    n_classes: int = 10


class ImageClassifier(nn.Module):
    """MLP x (784) -> 128 -> ReLU -> 64 -> ReLU (features) -> 10 (logits)."""

    def __init__(self, config: ClassifierConfig | None = None, **overrides):
        super().__init__()
        cfg = ClassifierConfig(**{**asdict(config or ClassifierConfig()), **overrides})
        self.config = cfg
        self.body = nn.Sequential(nn.Linear(cfg.image_size ** 2, cfg.hidden), nn.ReLU(),
                                  nn.Linear(cfg.hidden, cfg.feature_dim), nn.ReLU())
        self.head = nn.Linear(cfg.feature_dim, cfg.n_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)  # (B, 784) -> (B, feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, n_classes) logits

    def loss(self, batch) -> tuple:
        x, y = batch
        nll = nn.functional.cross_entropy(self(x), y)
        return nll, {"loss": nll}


def _images(images, size: int, op: str) -> np.ndarray:
    """(N, size*size) float32 in [0, 1] from (N, size*size), (N, size, size) or
    (N, 1, size, size) images, uint8 in [0, 255] or floats in [0, 1]."""
    a = host(images)
    if a.ndim < 2 or int(np.prod(a.shape[1:])) != size * size:
        raise ValueError(f"{op}: expected (N, {size * size}), (N, {size}, {size}) or "
                         f"(N, 1, {size}, {size}) images, got shape {a.shape}")
    a = a.reshape(len(a), size * size)
    return (a.astype(np.float32) / 255.0) if a.dtype == np.uint8 else a.astype(np.float32)


def _shifted(x: np.ndarray, size: int, max_shift: int, rng: np.random.Generator):
    """Each image translated by a random (dy, dx) in [-max_shift, max_shift]^2, zero fill."""
    n = len(x)
    pad = np.pad(x.reshape(n, size, size), ((0, 0), (max_shift, max_shift),
                                            (max_shift, max_shift)))
    dy, dx = rng.integers(0, 2 * max_shift + 1, (2, n))
    rows = dy[:, None] + np.arange(size)[None, :]  # (N, size)
    cols = dx[:, None] + np.arange(size)[None, :]
    out = pad[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.reshape(n, size * size)


def train_image_classifier(images, targets, epochs: int = 30, batch_size: int = 64,
                           lr: float = 1e-3, max_shift: int = 2, seed: int = 0,
                           config: ClassifierConfig | None = None,
                           log=None) -> ImageClassifier:
    """Train an `ImageClassifier` with Adam on (images, targets), each batch translated by up
    to `max_shift` pixels (so the features do not hinge on exact pixel positions). Seeded:
    the same inputs and seed give the same weights on the same machine."""
    from .. import optim
    from ..random import manual_seed
    cfg = config or ClassifierConfig()
    x = _images(images, cfg.image_size, "train_image_classifier")
    y = labels(targets, "targets", "train_image_classifier", len(x))
    if y.min() < 0 or y.max() >= cfg.n_classes:
        raise ValueError(f"train_image_classifier: targets must lie in [0, {cfg.n_classes}), "
                         f"got {y.min()} ... {y.max()}")
    manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ImageClassifier(cfg)
    opt = optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        total = 0.0
        for s in range(0, len(x), batch_size):
            i = order[s:s + batch_size]
            xb = Tensor._make(_shifted(x[i], cfg.image_size, max_shift, rng))
            loss, _ = model.loss((xb, Tensor._make(y[i])))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.item()) * len(i)
        if log is not None:
            log(epoch + 1, total / len(x))
    return model.eval()


def save_classifier(model: ImageClassifier, path: str, **info) -> None:
    """Weights, config and `info` (e.g. dataset, test accuracy) to an npz via tl.save."""
    from ..serialization import save
    save({"state": model.state_dict(), "config": asdict(model.config), "info": info}, path)


def load_classifier(path: str | None = None) -> tuple:
    """(model in eval mode, info dict) from `path` (default: the shipped MNIST classifier)."""
    from ..serialization import load
    path = path or MNIST_CLASSIFIER
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_classifier: no classifier at {path}; make one with "
                                "scripts/train_eval_classifier.py")
    ckpt = load(path)
    if not isinstance(ckpt, dict) or not {"state", "config"} <= set(ckpt):
        raise ValueError(f"load_classifier: {path} is not a classifier file (needs 'state' "
                         "and 'config', as written by save_classifier)")
    model = ImageClassifier(ClassifierConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state"])
    return model.eval(), dict(ckpt.get("info", {}))


def gaussian_statistics(features) -> tuple:
    """(mean (D,), covariance (D, D)) of (N, D) features in float64, covariance with 1/(N-1)."""
    f = host(features).astype(np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"gaussian_statistics: need (N >= 2, D) features, got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _sqrtm(product: np.ndarray):
    """scipy.linalg.sqrtm(product), or None when it is not finite or its square misses
    `product` by more than 1e-3 relative (a singular product: dead ReLU features, N < D).
    scipy's LinAlgWarning is silenced because this check replaces it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(product)
    if not np.isfinite(root).all():
        return None
    scale = max(np.linalg.norm(product), 1e-30)
    if np.linalg.norm(root @ root - product) > 1e-3 * scale:
        return None
    return root


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):

        d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))

    (Dowson & Landau 1982; Heusel et al. 2017, eq. 6). The matrix square root is
    scipy.linalg.sqrtm; when that root is inaccurate (a singular product: fewer samples than
    features, or features that never fire) it is retried with eps * I added to both
    covariances, as pytorch-fid does."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2,
                                                                                    np.float64))
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), \
        np.atleast_2d(sigma2).astype(np.float64)
    d = len(mu1)
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"frechet_distance: shapes disagree: mu1 {mu1.shape}, sigma1 "
                         f"{sigma1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}")
    covmean = _sqrtm(sigma1 @ sigma2)
    if covmean is None:
        offset = eps * np.eye(d)
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if covmean is None:
            raise ValueError(f"frechet_distance: no accurate square root of sigma1 sigma2 "
                             f"even with {eps} * I added; are the covariances finite PSD?")
    if np.iscomplexobj(covmean):
        # sigma1 sigma2 has real non-negative eigenvalues; imaginary parts are round-off
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance: the matrix square root has imaginary part "
                             f"{np.abs(covmean.imag).max():.3g}; covariances not PSD?")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


class SampleQuality:
    """Frechet distance and class histogram of 28x28 images under a trained classifier.

    classifier: an `ImageClassifier`, a path written by `save_classifier`, or None for the
    shipped MNIST classifier. Images: (N, 784), (N, 28, 28) or (N, 1, 28, 28), uint8 or
    floats in [0, 1] (generated images are clipped to [0, 1]).
    """

    def __init__(self, classifier: "ImageClassifier | str | None" = None,
                 batch_size: int = 1000):
        if isinstance(classifier, ImageClassifier):
            self.model, self.info = classifier.eval(), {}
        else:
            self.model, self.info = load_classifier(classifier)
        self.batch_size = batch_size
        self._real_stats: dict = {}

    def _forward(self, images, op: str) -> tuple:
        size = self.model.config.image_size
        x = np.clip(_images(images, size, f"SampleQuality.{op}"), 0.0, 1.0)
        feats, logits = [], []
        with no_grad():
            for s in range(0, len(x), self.batch_size):
                h = self.model.features(Tensor._make(x[s:s + self.batch_size]))
                feats.append(h.numpy_host())
                logits.append(self.model.head(h).numpy_host())
        return np.concatenate(feats), np.concatenate(logits)

    def features(self, images) -> np.ndarray:
        """(N, feature_dim) penultimate-layer activations."""
        return self._forward(images, "features")[0]

    def predict(self, images) -> np.ndarray:
        """(N,) predicted classes."""
        return self._forward(images, "predict")[1].argmax(1)

    def frechet_distance(self, real, generated) -> float:
        """Frechet distance between the feature Gaussians of `real` and `generated` images.
        It grows with the sample size's bias: compare numbers made with equal N."""
        return frechet_distance(*gaussian_statistics(self.features(real)),
                                *gaussian_statistics(self.features(generated)))

    def class_histogram(self, images) -> np.ndarray:
        """(n_classes,) fraction of the images assigned to each class."""
        pred = self.predict(images)
        return np.bincount(pred, minlength=self.model.config.n_classes) / len(pred)

    def mode_coverage(self, images, threshold: float = 0.05) -> float:
        """Fraction of classes that receive at least `threshold` of the images (1.0 for a
        generator that covers every mode, 0.1 for one that draws a single digit)."""
        return float((self.class_histogram(images) >= threshold).mean())
