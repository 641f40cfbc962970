"""Deep metric learning, the batch side: the pairs / triplets / N-pair partners of a labelled
batch, mined exactly on the host from detached distances (index arrays, so the losses in
metric_learning.py are plain gathers of rows of f(x)), and the contrastive loss of Hadsell
et al. 2006. The equations and references: the docstring of metric_learning.py."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..tensor import Tensor

__all__ = ["pair_indices", "batch_hard_triplets", "semi_hard_triplets", "switch_negatives",
           "n_pair_partners", "contrastive_loss"]


def _labels(y, n: int, op: str) -> np.ndarray:
    y = np.asarray(y.numpy_host() if isinstance(y, Tensor) else y).reshape(-1)
    if len(y) != n:
        raise ValueError(f"{op}: {len(y)} labels for {n} embeddings")
    return y


def pair_indices(y) -> tuple:
    """All pairs i < j of a labelled batch -> (i, j, similar) index / bool arrays."""
    y = np.asarray(y)
    i, j = np.triu_indices(len(y), k=1)
    return i, j, y[i] == y[j]


def batch_hard_triplets(d: np.ndarray, y) -> tuple:
    """(anchor, positive, negative) indices: per anchor with a positive and a negative, the
    positive with the largest d[a, p] and the negative with the smallest d[a, n]."""
    y = np.asarray(y)
    same = y[:, None] == y[None, :]
    pos = same & ~np.eye(len(y), dtype=bool)
    keep = pos.any(1) & (~same).any(1)
    a = np.flatnonzero(keep)
    p = np.where(pos, d, -np.inf)[a].argmax(1)
    n = np.where(~same, d, np.inf)[a].argmin(1)
    return a, p, n


def semi_hard_triplets(d: np.ndarray, y) -> tuple:
    """(anchor, positive, negative) indices: every anchor-positive pair (a != p), with the
    negative of smallest d[a, n] among d[a, n] > d[a, p]; if none, the largest d[a, n]."""
    y = np.asarray(y)
    same = y[:, None] == y[None, :]
    a, p = np.nonzero(same & ~np.eye(len(y), dtype=bool))
    keep = (~same[a]).any(1)                           # anchors with at least one negative
    a, p = a[keep], p[keep]
    neg = ~same[a]                                     # (T, B) negatives of each anchor
    da = d[a]                                          # (T, B)
    outside = neg & (da > d[a, p][:, None])            # semi-hard: farther than the positive
    n_semi = np.where(outside, da, np.inf).argmin(1)
    n_hard = np.where(neg, da, -np.inf).argmax(1)
    return a, p, np.where(outside.any(1), n_semi, n_hard)


def switch_negatives(a, p, n, y, rho: float, rng) -> np.ndarray:
    """rho-regularisation: n with each entry, with probability rho, replaced by a random index
    of the anchor's class other than a and p (kept where the class has no third image)."""
    y, n = np.asarray(y), np.array(n, copy=True)
    t = np.flatnonzero(rng.random(len(a)) < rho)
    idx = np.arange(len(y))
    cand = (y[None] == y[a[t]][:, None]) & (idx != a[t][:, None]) & (idx != p[t][:, None])
    score = np.where(cand, rng.random(cand.shape), -1.0)       # argmax: a uniform candidate
    ok = cand.any(1)
    n[t[ok]] = score[ok].argmax(1)
    return n


def n_pair_partners(y) -> tuple:
    """(anchor, positive) indices: each image whose class appears again in the batch, paired
    with the next image of its class (cyclically); plus the (T, T) mask of valid negatives,
    mask[s, t] = y[anchor t] != y[anchor s] or s == t (the positive itself, logit 0)."""
    y = np.asarray(y)
    a, p = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) > 1:
            a.extend(idx)
            p.extend(np.roll(idx, -1))
    a, p = np.asarray(a, dtype=np.int64), np.asarray(p, dtype=np.int64)
    mask = (y[a][:, None] != y[a][None, :]) | np.eye(len(a), dtype=bool)
    return a, p, mask


def contrastive_loss(z1: Tensor, z2: Tensor, similar, margin: float = 1.0) -> Tensor:
    """Hadsell et al. 2006 eq. 4 on pairs of rows: 1/2 D^2 for similar pairs,
    1/2 max(0, m - D)^2 for dissimilar ones, each kind averaged, then summed."""
    similar = np.asarray(similar, dtype=bool)
    d = (((z1 - z2) ** 2).sum(axis=1) + 1e-12).sqrt()           # (P,) Euclidean distances
    loss = None
    for sel, term in ((similar, lambda d: 0.5 * d ** 2),
                      (~similar, lambda d: 0.5 * ops.relu(margin - d) ** 2)):
        if sel.any():
            part = term(d[np.flatnonzero(sel)]).mean()
            loss = part if loss is None else loss + part
    if loss is None:
        raise ValueError("contrastive_loss: no pairs")
    return loss
