"""Nearest-neighbour evaluation of representations: retrieval precision@k / recall@k and
k-NN classification accuracy.

    idx = nearest_neighbours(z_query, z_database, k=10, metric="cosine")    # (Q, k)
    p = precision_at_k(z_test, y_test, z_train, y_train, k=10)
    acc = knn_accuracy(z_train, y_train, z_test, y_test, k=20, metric="cosine")

Relevance is by label: a retrieved item is relevant when it shares the query's label.
Distances are computed in float64 on the arrays' own device, in blocks of queries.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from ._arrays import labels, raw, rows

__all__ = ["nearest_neighbours", "precision_at_k", "recall_at_k", "hit_rate_at_k",
           "knn_predict", "knn_accuracy"]

METRICS = ("euclidean", "cosine")


def _prepared(query, database, metric: str, op: str):
    if metric not in METRICS:
        raise ValueError(f"{op}: metric must be 'euclidean' or 'cosine', got {metric!r}")
    Q = rows(query, "query", op).astype(np.float64)
    D = rows(database, "database", op).astype(np.float64)
    if Q.shape[1] != D.shape[1]:
        raise ValueError(f"{op}: query has {Q.shape[1]} features, database {D.shape[1]}")
    if metric == "cosine":
        xp = Tensor._make(Q).xp
        Q = Q / xp.maximum(xp.linalg.norm(Q, axis=1, keepdims=True), 1e-12)
        D = D / xp.maximum(xp.linalg.norm(D, axis=1, keepdims=True), 1e-12)
    return Q, D


def _neighbours(query, database, k: int, metric: str, exclude_self: bool, batch_size: int,
                op: str):
    """(indices (Q, k), distances (Q, k)) on the arrays' device; cosine distance = 1 - cos."""
    Q, D = _prepared(query, database, metric, op)
    if exclude_self and len(Q) != len(D):
        raise ValueError(f"{op}: exclude_self needs the query to be the database, got "
                         f"{len(Q)} queries and {len(D)} database rows")
    if k < 1:
        raise ValueError(f"{op}: k must be >= 1, got {k}")
    if k > len(D) - int(exclude_self):
        raise ValueError(f"{op}: k={k} exceeds the database size {len(D)}"
                         + (" minus the query itself" if exclude_self else ""))
    xp = Tensor._make(Q).xp
    d_sq = (D * D).sum(1)
    idx, dist = [], []
    for s in range(0, len(Q), batch_size):
        q = Q[s:s + batch_size]
        # ||q - d||^2 = ||q||^2 - 2 q.d + ||d||^2; for unit vectors this is 2 (1 - cos)
        d2 = (q * q).sum(1)[:, None] - 2.0 * q @ D.T + d_sq[None, :]  # (B, N)
        if exclude_self:
            d2[xp.arange(len(q)), xp.arange(s, s + len(q))] = xp.inf
        order = xp.argsort(d2, axis=1, kind="stable")[:, :k]  # ties: lower database index
        idx.append(order)
        dist.append(xp.take_along_axis(d2, order, axis=1))
    idx, d2 = xp.concatenate(idx), xp.maximum(xp.concatenate(dist), 0.0)
    return idx, (d2 / 2.0 if metric == "cosine" else xp.sqrt(d2))


def nearest_neighbours(query, database, k: int = 10, metric: str = "euclidean",
                       exclude_self: bool = False, batch_size: int = 1024) -> Tensor:
    """Indices (Q, k) of each query's k nearest database rows, nearest first (equal
    distances: the lower database index first), on the tensors' own device, in float64.
    metric "cosine" ranks by 1 - cos(q, d). exclude_self: query i is database row i
    (leave-one-out retrieval)."""
    idx, _ = _neighbours(query, database, k, metric, exclude_self, batch_size,
                         "nearest_neighbours")
    return Tensor._make(idx)


def _relevant(query, query_labels, database, database_labels, k, metric, exclude_self, op):
    """(Q, k) bool: retrieved item j is relevant to query i (same label); and the labels."""
    n_q, n_d = len(raw(query)), len(raw(database))
    yq = labels(query_labels, "query_labels", op, n_q)
    yd = labels(database_labels, "database_labels", op, n_d)
    idx, _ = _neighbours(query, database, k, metric, exclude_self, 1024, op)
    xp = Tensor._make(idx).xp
    return xp.asarray(yd)[idx] == xp.asarray(yq)[:, None], yq, yd


def precision_at_k(query, query_labels, database, database_labels, k: int = 10,
                   metric: str = "euclidean", exclude_self: bool = False) -> float:
    """Mean over queries of |{retrieved j among the k nearest : y_j == y_query}| / k."""
    hit, _, _ = _relevant(query, query_labels, database, database_labels, k, metric,
                          exclude_self, "precision_at_k")
    return float(hit.mean())


def recall_at_k(query, query_labels, database, database_labels, k: int = 10,
                metric: str = "euclidean", exclude_self: bool = False) -> float:
    """Mean over queries of |relevant among the k nearest| / |relevant in the database| (the
    information-retrieval recall; queries with no relevant item are left out). For the
    metric-learning "Recall@K" of Song et al. (2016), see `hit_rate_at_k`."""
    hit, yq, yd = _relevant(query, query_labels, database, database_labels, k, metric,
                            exclude_self, "recall_at_k")
    classes, counts = np.unique(yd, return_counts=True)
    n_rel = np.zeros(len(yq), dtype=np.float64)
    known = np.isin(yq, classes)
    n_rel[known] = counts[np.searchsorted(classes, yq[known])]
    if exclude_self:
        n_rel -= 1  # the query itself is in the database with its own label
    retrieved = Tensor._make(hit.sum(1)).numpy_host().astype(np.float64)
    keep = n_rel > 0
    if not keep.any():
        raise ValueError("recall_at_k: no query has a relevant item in the database")
    return float((retrieved[keep] / n_rel[keep]).mean())


def hit_rate_at_k(query, query_labels, database, database_labels, k: int = 10,
                  metric: str = "euclidean", exclude_self: bool = False) -> float:
    """Fraction of queries with at least one same-label item among their k nearest: the
    "Recall@K" of deep metric learning (Song et al. 2016, sec. 5; Sohn 2016)."""
    hit, _, _ = _relevant(query, query_labels, database, database_labels, k, metric,
                          exclude_self, "hit_rate_at_k")
    return float(hit.any(1).mean())


def knn_predict(train_features, train_labels, features, k: int = 20,
                metric: str = "cosine", weighting: str = "majority",
                temperature: float = 0.07, n_classes: int | None = None) -> np.ndarray:
    """Predicted labels (N,) of `features` from their k nearest training rows, on the host.

    weighting "majority": one vote per neighbour. Ties between classes with equally many
      votes go to the class whose nearest member ranks first (so k=1 behaviour is kept and
      the prediction never depends on label order).
    weighting "exp": neighbour j votes with weight exp(s_j / temperature), s_j = cos(x, x_j)
      (Wu et al. 2018, "Unsupervised feature learning via non-parametric instance
      discrimination", sec. 3.4: k=200, temperature 0.07); needs metric="cosine".
    """
    op = "knn_predict"
    if weighting not in ("majority", "exp"):
        raise ValueError(f"{op}: weighting must be 'majority' or 'exp', got {weighting!r}")
    if weighting == "exp" and metric != "cosine":
        raise ValueError(f"{op}: weighting='exp' weights by cosine similarity; use "
                         f"metric='cosine' (got {metric!r})")
    y = labels(train_labels, "train_labels", op, len(raw(train_features)))
    if y.min() < 0:
        raise ValueError(f"{op}: train_labels must be >= 0, got {y.min()}")
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    idx, dist = _neighbours(features, train_features, k, metric, False, 1024, op)
    idx, dist = Tensor._make(idx).numpy_host(), Tensor._make(dist).numpy_host()
    neigh = y[idx]  # (N, k) labels of the neighbours, nearest first
    if weighting == "exp":
        weight = np.exp((1.0 - dist) / temperature)  # cosine distance = 1 - s
    else:
        weight = np.ones_like(dist)
    rows_ = np.repeat(np.arange(len(idx)), k)
    votes = np.zeros((len(idx), n_classes))
    np.add.at(votes, (rows_, neigh.ravel()), weight.ravel())  # (N, C)
    # tie-break: the class seen first in the ranked list wins among the best-voted
    first = np.full((len(idx), n_classes), k)
    np.minimum.at(first, (rows_, neigh.ravel()), np.tile(np.arange(k), len(idx)))
    best = votes >= votes.max(1, keepdims=True) * (1 - 1e-12)
    return np.where(best, first, k + 1).argmin(1)


def knn_accuracy(train_features, train_labels, test_features, test_labels, k: int = 20,
                 metric: str = "cosine", weighting: str = "majority",
                 temperature: float = 0.07) -> float:
    """Accuracy of `knn_predict` on (test_features, test_labels)."""
    yt = labels(test_labels, "test_labels", "knn_accuracy", len(raw(test_features)))
    y = labels(train_labels, "train_labels", "knn_accuracy")
    n_classes = int(max(y.max(), yt.max())) + 1
    pred = knn_predict(train_features, train_labels, test_features, k, metric, weighting,
                       temperature, n_classes)
    return float((pred == yt).mean())
