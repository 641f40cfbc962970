"""Linear probe on frozen features: multinomial logistic regression.

    clf = LogisticRegression(n_classes=10).fit(z_train, y_train)      # (N, D) features
    acc = clf.score(z_test, y_test)
    acc = linear_probe(z_train, y_train, z_test, y_test)               # the same, one call

The standard yardstick of representation learning: train only a linear softmax classifier
on the frozen codes (e.g. Coates et al. 2011; Oord et al. 2018, CPC sec. 3.1).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from .. import autograd
from ..tensor import Tensor, zeros
from ._arrays import host, labels, rows

__all__ = ["LogisticRegression", "linear_probe", "select_l2"]

SOLVERS = ("lbfgs", "nesterov")


class LogisticRegression:
    """Multinomial logistic regression p(y | x) = softmax(W x + b) minimising

        L(W, b) = (1/N) sum_i -log p(y_i | x_i) + (l2 / 2) ||W||^2      (b is not penalised)

    on features standardised with the training set's mean and std. This is scikit-learn's
    LogisticRegression(C=1 / (l2 * N)) objective on the same standardised features.

    solver "lbfgs": scipy's L-BFGS-B on the exact float64 objective and gradient, on the
      host, to a gradient tolerance (`tol`) or `steps` iterations; converges to the optimum.
    solver "nesterov": full-batch gradient descent with Nesterov momentum written with
      tinylatent autograd, on the features' own device (GPU features stay there), for a fixed
      number of `steps` with step size `lr`.
    """

    def __init__(self, n_classes: int, l2: float = 1e-3, solver: str = "lbfgs",
                 steps: int | None = None, lr: float = 0.5, momentum: float = 0.9,
                 tol: float = 1e-6):
        if solver not in SOLVERS:
            raise ValueError(f"LogisticRegression: solver must be one of {SOLVERS}, got "
                             f"{solver!r}")
        if n_classes < 2 or l2 < 0:
            raise ValueError(f"LogisticRegression: need n_classes >= 2 and l2 >= 0, got "
                             f"n_classes={n_classes}, l2={l2}")
        self.n_classes, self.l2, self.solver = n_classes, l2, solver
        self.steps = steps if steps is not None else (1000 if solver == "lbfgs" else 300)
        self.lr, self.momentum, self.tol = lr, momentum, tol

    def _standardise(self, X: Tensor) -> Tensor:
        return (X - self.mu_) / self.sigma_

    def fit(self, X, y) -> "LogisticRegression":
        X = X if isinstance(X, Tensor) else Tensor(np.asarray(X, dtype=np.float32))
        X = Tensor._make(rows(X, "X", "LogisticRegression.fit"))
        y = labels(y, "y", "LogisticRegression.fit", len(X))
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError(f"LogisticRegression.fit: labels must lie in [0, "
                             f"{self.n_classes}), got min {y.min()} and max {y.max()}")
        self.mu_ = X.mean(0).detach()
        self.sigma_ = X.std(0).detach() + 1e-6
        Xs = self._standardise(X).detach()
        if self.solver == "lbfgs":
            W, b = self._fit_lbfgs(Xs.numpy_host().astype(np.float64), y)
            self.W = Tensor._make(Xs.xp.asarray(W.astype(X.dtype)))
            self.b = Tensor._make(Xs.xp.asarray(b.astype(X.dtype)))
        else:
            self._fit_nesterov(Xs, y)
        return self

    def _fit_lbfgs(self, X: np.ndarray, y: np.ndarray):
        n, d = X.shape
        c = self.n_classes
        onehot = np.eye(c)[y]  # (N, C)

        def objective(theta):
            W, b = theta[:d * c].reshape(d, c), theta[d * c:]
            log_p = log_softmax(X @ W + b, axis=1)  # (N, D) @ (D, C)
            loss = -(onehot * log_p).sum() / n + 0.5 * self.l2 * (W * W).sum()
            residual = (np.exp(log_p) - onehot) / n  # dL/dlogits, (N, C)
            grad_w = X.T @ residual + self.l2 * W  # (D, N) @ (N, C)
            return loss, np.concatenate([grad_w.ravel(), residual.sum(0)])

        res = minimize(objective, np.zeros(d * c + c), jac=True, method="L-BFGS-B",
                       options={"maxiter": self.steps, "gtol": self.tol})
        self.losses_ = [float(res.fun)]
        self.n_iter_ = int(res.nit)
        return res.x[:d * c].reshape(d, c), res.x[d * c:]

    def _fit_nesterov(self, Xs: Tensor, y: np.ndarray) -> None:
        xp = Xs.xp
        onehot = Tensor._make(xp.eye(self.n_classes, dtype=Xs.dtype)[xp.asarray(y)])  # (N, C)
        self.W = zeros(Xs.shape[1], self.n_classes, dtype=Xs.dtype, device=Xs.device,
                       requires_grad=True)
        self.b = zeros(self.n_classes, dtype=Xs.dtype, device=Xs.device, requires_grad=True)
        vel = [xp.zeros_like(self.W.array), xp.zeros_like(self.b.array)]
        losses = []
        for _ in range(self.steps):
            logits = Xs @ self.W + self.b  # (N, D) @ (D, C)
            nll = -(onehot * logits.log_softmax(-1)).sum(-1).mean()
            loss = nll + 0.5 * self.l2 * (self.W * self.W).sum()
            grad_w, grad_b = autograd.grad(loss, [self.W, self.b])
            with autograd.no_grad():  # Nesterov: step from the look-ahead velocity
                for p, g, v in zip((self.W, self.b), (grad_w, grad_b), vel):
                    v *= self.momentum
                    v -= self.lr * g.array
                    p.add_(self.momentum * v - self.lr * g.array)
            losses.append(loss.detach())
        self.losses_ = [float(v) for v in Tensor._make(xp.stack([v.array for v in losses]))
                        .numpy_host()]  # one host sync for the whole curve
        self.n_iter_ = self.steps
        self.W, self.b = self.W.detach(), self.b.detach()

    def _check_fitted(self, X, op: str) -> Tensor:
        if not hasattr(self, "W"):
            raise RuntimeError(f"LogisticRegression.{op}: call fit first")
        X = X if isinstance(X, Tensor) else Tensor(np.asarray(X, dtype=np.float32))
        X = Tensor._make(rows(X, "X", f"LogisticRegression.{op}"))
        if X.shape[1] != self.W.shape[0]:
            raise ValueError(f"LogisticRegression.{op}: X has {X.shape[1]} features, the "
                             f"classifier was fit on {self.W.shape[0]}")
        return X

    def predict_logits(self, X) -> Tensor:
        X = self._check_fitted(X, "predict_logits")
        with autograd.no_grad():
            return self._standardise(X.to(self.W.dtype)) @ self.W + self.b  # (N, C)

    def predict(self, X) -> Tensor:
        return self.predict_logits(X).argmax(-1)

    def score(self, X, y) -> float:
        """Accuracy."""
        pred = self.predict(X).numpy_host()
        return float((pred == labels(y, "y", "LogisticRegression.score", len(pred))).mean())


def linear_probe(train_features, train_labels, test_features, test_labels,
                 n_classes: int | None = None, l2=1e-3, **kwargs) -> float:
    """Test accuracy of a `LogisticRegression` fit on the frozen training features. l2 a
    sequence: the value of best validation accuracy (`select_l2`, whose val_fraction,
    max_fit and seed it passes on), then refit on all the training features."""
    y = host(train_labels)
    if n_classes is None:
        n_classes = int(max(y.max(), host(test_labels).max())) + 1
    split = {k: kwargs.pop(k) for k in ("val_fraction", "max_fit", "seed") if k in kwargs}
    if not np.isscalar(l2):
        l2 = select_l2(train_features, y, l2, n_classes=n_classes, **split, **kwargs)[0]
    clf = LogisticRegression(n_classes, l2=l2, **kwargs).fit(train_features, y)
    return clf.score(test_features, test_labels)


def select_l2(train_features, train_labels, l2s, n_classes: int | None = None,
              val_fraction: float = 0.2, max_fit: int | None = 10000, seed: int = 0,
              **kwargs) -> tuple[float, dict]:
    """(best l2, {l2: validation accuracy}): each l2 fit on a random part of the TRAINING
    rows (at most max_fit of them, for speed; None: all) and scored on a disjoint validation
    part (val_fraction of the rows, at most max_fit); ties go to the stronger penalty. The
    test set is never looked at: the same protocol for every feature set compared."""
    X = rows(train_features, "train_features", "select_l2")
    y = labels(train_labels, "train_labels", "select_l2", len(X))
    l2s = sorted(float(v) for v in l2s)
    if not l2s or not 0 < val_fraction < 1:
        raise ValueError(f"select_l2: need l2 values and 0 < val_fraction < 1, got {l2s}, "
                         f"{val_fraction}")
    n_classes = n_classes or int(y.max()) + 1
    perm = np.random.default_rng(seed).permutation(len(X))
    n_val = max(1, int(val_fraction * len(X)))
    val, fit = perm[:n_val][:max_fit], perm[n_val:][:max_fit]
    scores = {v: LogisticRegression(n_classes, l2=v, **kwargs).fit(X[fit], y[fit])
              .score(X[val], y[val]) for v in l2s}
    best = max(reversed(l2s), key=lambda v: scores[v])        # first max: the largest l2
    return best, scores
