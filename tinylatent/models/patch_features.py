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

from .. import autograd
from ..tensor import Tensor, zeros
from .classical import PCA, KMeans, squared_distances

__all__ = ["PatchFeatures", "PatchFeaturesConfig", "LogisticRegression", "extract_patches"]


def extract_patches(images, patch_size: int, stride: int = 1):
    """All p x p patches of (N, H, W) or (N, C, H, W) images as a (N, P, C*p*p) array on the
    images' own array module, P = number of positions on the stride grid."""
    A = images.array if isinstance(images, Tensor) else np.asarray(images)
    xp = Tensor._make(A).xp
    if A.ndim == 3:
        A = A[:, None]  # (N, 1, H, W)
    if A.ndim != 4:
        raise ValueError(f"extract_patches: expected (N, H, W) or (N, C, H, W) images, got "
                         f"shape {A.shape}")
    n, c, h, w = A.shape
    if patch_size > min(h, w):
        raise ValueError(f"extract_patches: patch_size={patch_size} exceeds image size "
                         f"{h}x{w}")
    win = xp.lib.stride_tricks.sliding_window_view(A, (patch_size, patch_size), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (N, C, Ph, Pw, p, p)
    ph, pw = win.shape[2], win.shape[3]
    win = win.transpose(0, 2, 3, 1, 4, 5)  # (N, Ph, Pw, C, p, p)
    return win.reshape(n, ph * pw, c * patch_size * patch_size), (ph, pw)


@dataclass
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
        cfg = config or PatchFeaturesConfig()
        self.config = PatchFeaturesConfig(**{**cfg.__dict__, **overrides})
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


class LogisticRegression:
    """Multinomial logistic regression p(y | x) = softmax(W x + b), trained with tinylatent
    autograd by full-batch gradient descent with Nesterov momentum on the mean cross-entropy
    + (l2 / 2) ||W||^2. Features are standardised with the training set's mean and std."""

    def __init__(self, n_classes: int, l2: float = 1e-3, lr: float = 0.5,
                 momentum: float = 0.9, steps: int = 300):
        self.n_classes, self.l2, self.lr, self.momentum, self.steps = \
            n_classes, l2, lr, momentum, steps

    def _standardise(self, X: Tensor) -> Tensor:
        return (X - self.mu_) / self.sigma_

    def fit(self, X: Tensor, y) -> "LogisticRegression":
        X = X if isinstance(X, Tensor) else Tensor(np.asarray(X, dtype=np.float32))
        y = y.array if isinstance(y, Tensor) else np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"LogisticRegression.fit: X must be (N, D) and y (N,), got "
                             f"{X.shape} and {y.shape}")
        xp = X.xp
        self.mu_ = X.mean(0).detach()
        self.sigma_ = X.std(0).detach() + 1e-6
        Xs = self._standardise(X).detach()
        onehot = Tensor._make(xp.eye(self.n_classes, dtype=X.dtype)[xp.asarray(y)])  # (N, C)
        self.W = zeros(X.shape[1], self.n_classes, dtype=X.dtype, device=X.device,
                       requires_grad=True)
        self.b = zeros(self.n_classes, dtype=X.dtype, device=X.device, requires_grad=True)
        vel = [xp.zeros_like(self.W.array), xp.zeros_like(self.b.array)]
        self.losses_ = []
        for _ in range(self.steps):
            logits = Xs @ self.W + self.b  # (N, D) @ (D, C)
            nll = -(onehot * logits.log_softmax(-1)).sum(-1).mean()
            loss = nll + 0.5 * self.l2 * (self.W * self.W).sum()
            gW, gb = autograd.grad(loss, [self.W, self.b])
            with autograd.no_grad():  # Nesterov: step from the look-ahead velocity
                for p, g, v in zip((self.W, self.b), (gW, gb), vel):
                    v *= self.momentum
                    v -= self.lr * g.array
                    p.add_(self.momentum * v - self.lr * g.array)
            self.losses_.append(float(loss.item()))
        return self

    def predict_logits(self, X: Tensor) -> Tensor:
        with autograd.no_grad():
            return self._standardise(X.to(self.W.dtype)) @ self.W + self.b

    def predict(self, X: Tensor) -> Tensor:
        return self.predict_logits(X).argmax(-1)

    def score(self, X: Tensor, y) -> float:
        """Accuracy."""
        y = y.array if isinstance(y, Tensor) else np.asarray(y)
        pred = self.predict(X).array
        return float((pred == Tensor._make(pred).xp.asarray(y)).mean())

