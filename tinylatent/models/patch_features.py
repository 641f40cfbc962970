"""Patch-level PCA and K-means features with a linear classifier: the baseline (seed 003).

Seed 003, TIP #2: "PCA and K-Means (at the patch level) are very often a strong baseline."
The recipe is Coates, Lee & Ng (2011), "An analysis of single-layer networks in unsupervised
feature learning": take small patches, normalise each one's brightness and contrast, whiten
them (ZCA), learn a dictionary (K-means centroids or principal components), encode every
patch of an image against it, sum-pool the codes over the four quadrants, and train a linear
classifier on the pooled vector. Every representation learner in tinylatent is compared with
this.

    feats = PatchFeatures(method="kmeans", n_features=64).fit(train_images)   # (N, H, W)
    clf = LogisticRegression(n_classes=10).fit(feats.transform(train_images), y_train)
    acc = clf.score(feats.transform(test_images), y_test)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.patches import extract_patches
from ..eval.linear_probe import LogisticRegression  # noqa: F401  (moved to tl.eval)
from ..tensor import Tensor
from .classical import PCA, KMeans, squared_distances
from .config import resolve_config

__all__ = ["PatchFeatures", "PatchFeaturesConfig", "LogisticRegression"]


@dataclass(frozen=True)
class PatchFeaturesConfig:
    method: str = "kmeans"        # "kmeans" (triangle code) or "pca" (signed projections)
    n_features: int = 64          # K centroids, or k principal components
    patch_size: int = 6
    stride: int = 2               # stride of the encoding grid
    n_train_patches: int = 20000  # random patches used to fit the dictionary
    contrast_eps: float = 0.01    # variance floor of the per-patch normalisation, [0,1] pixels
    zca_eps: float = 0.01         # added to eigenvalues before whitening
    seed: int = 0


class PatchFeatures:
    """Unsupervised patch dictionary + encoder + 2x2 quadrant sum-pooling.

    Per patch x: normalise x <- (x - mean(x)) / sqrt(var(x) + eps), ZCA-whiten
    x <- U diag(1/sqrt(d + eps_zca)) U^T (x - m). Encode:
      kmeans: triangle activation f_k = max(0, mean_j(d_j) - d_k), d_k = ||x - c_k||
              (Coates et al. 2011, sec. 3.1.3);
      pca:    z = U_k^T x split into max(z, 0) and max(-z, 0).
    Pool each code over the image's four quadrants: 4 * F features per image.
    """

    def __init__(self, config: PatchFeaturesConfig | None = None, **overrides):
        self.config = resolve_config(self, PatchFeaturesConfig, config, overrides)
        if self.config.method not in ("kmeans", "pca"):
            raise ValueError(f"PatchFeatures: method must be 'kmeans' or 'pca', got "
                             f"{self.config.method!r}")

    def _normalise(self, P):
        xp = Tensor._make(P).xp
        P = P - P.mean(-1, keepdims=True)
        return P / xp.sqrt(P.var(-1, keepdims=True) + self.config.contrast_eps)

    def _whiten(self, P):
        return (P - self.mean_) @ self.zca_  # (..., D) @ (D, D)

    def fit(self, images) -> "PatchFeatures":
        cfg = self.config
        A = _as_float(images)
        xp = Tensor._make(A).xp
        rng = np.random.default_rng(cfg.seed)
        A4 = A[:, None] if A.ndim == 3 else A  # (N, C, H, W)
        p = cfg.patch_size
        # a strided view of every patch, (N, C, H-p+1, W-p+1, p, p): no copy until we index
        win = xp.lib.stride_tricks.sliding_window_view(A4, (p, p), axis=(2, 3))
        n, h_pos, w_pos = win.shape[0], win.shape[2], win.shape[3]
        i = xp.asarray(rng.integers(0, n, cfg.n_train_patches))
        r = xp.asarray(rng.integers(0, h_pos, cfg.n_train_patches))
        c = xp.asarray(rng.integers(0, w_pos, cfg.n_train_patches))
        sample = win[i, :, r, c].reshape(cfg.n_train_patches, -1)  # (S, C*p*p)
        sample = self._normalise(sample.astype(np.float64))
        pca = PCA().fit(Tensor._make(sample))
        U, d = pca.components_.array.T, pca.explained_variance_.array  # (D, D), (D,)
        self.mean_ = pca.mean_.array
        self.zca_ = (U / xp.sqrt(d + cfg.zca_eps)) @ U.T  # (D, D) ZCA matrix
        white = self._whiten(sample)
        if cfg.method == "kmeans":
            km = KMeans(cfg.n_features, n_init=1, max_iter=50, seed=cfg.seed)
            self.dictionary_ = km.fit(Tensor._make(white)).cluster_centers_.array  # (K, D)
        else:
            self.dictionary_ = PCA(cfg.n_features).fit(Tensor._make(white)).components_.array
        return self

    def _encode(self, P):
        """(M, D) normalised, whitened patches -> (M, F) codes."""
        xp = Tensor._make(P).xp
        if self.config.method == "kmeans":
            dist = xp.sqrt(squared_distances(P, self.dictionary_))  # (M, K)
            return xp.maximum(dist.mean(1, keepdims=True) - dist, 0.0)
        z = P @ self.dictionary_.T  # (M, D) @ (D, k)
        return xp.concatenate([xp.maximum(z, 0.0), xp.maximum(-z, 0.0)], axis=1)

    def transform(self, images, batch_size: int = 256) -> Tensor:
        """Pooled features (N, 4 * F), float32."""
        if not hasattr(self, "dictionary_"):
            raise RuntimeError("PatchFeatures.transform: call fit first")
        cfg = self.config
        A = _as_float(images)
        xp = Tensor._make(A).xp
        out = []
        for s in range(0, len(A), batch_size):
            P, (ph, pw) = extract_patches(A[s:s + batch_size], cfg.patch_size, cfg.stride)
            b, npos, dim = P.shape
            P = self._whiten(self._normalise(P.reshape(b * npos, dim).astype(np.float64)))
            F = self._encode(P).reshape(b, ph, pw, -1)  # (B, Ph, Pw, F)
            h2, w2 = ph // 2, pw // 2
            quads = [F[:, :h2, :w2], F[:, :h2, w2:], F[:, h2:, :w2], F[:, h2:, w2:]]
            out.append(xp.concatenate([q.sum((1, 2)) for q in quads], axis=1))  # (B, 4F)
        return Tensor._make(xp.concatenate(out).astype(np.float32))


def _as_float(images):
    A = images.array if isinstance(images, Tensor) else np.asarray(images)
    if A.dtype == np.uint8:
        return A.astype(np.float32) / 255.0
    return A
