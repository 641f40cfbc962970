"""Clustering quality against ground-truth labels: accuracy under the best one-to-one
matching of clusters to classes, and normalized mutual information.

    acc = cluster_accuracy(y_true, assignments)       # Hungarian matching
    nmi = normalized_mutual_info(y_true, assignments) # arithmetic-mean normalisation
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._arrays import labels

__all__ = ["contingency_matrix", "cluster_accuracy", "normalized_mutual_info"]


def contingency_matrix(y_true, y_pred) -> np.ndarray:
    """Counts (n_classes, n_clusters): entry (i, j) = #{items of class i in cluster j}, over
    the distinct values of each labelling (labels need not be 0..n-1)."""
    a = labels(y_true, "y_true", "contingency_matrix")
    b = labels(y_pred, "y_pred", "contingency_matrix", len(a))
    if len(a) == 0:
        raise ValueError("contingency_matrix: empty labellings")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    return table


def cluster_accuracy(y_true, y_pred) -> float:
    """max over one-to-one maps m from clusters to classes of mean(y_true == m(y_pred)),
    solved exactly as an assignment problem (Hungarian method; the usual unsupervised
    clustering accuracy of Xie et al. 2016, "Unsupervised deep embedding for clustering
    analysis", eq. 10). With more clusters than classes the surplus clusters count as
    wrong."""
    table = contingency_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def normalized_mutual_info(y_true, y_pred) -> float:
    """NMI = I(Y; C) / ((H(Y) + H(C)) / 2), in [0, 1], natural logs (the arithmetic-mean
    normalisation, scikit-learn's default). Two labellings with a single class each count
    as identical (1.0); one constant labelling against a varied one gives 0.0."""
    table = contingency_matrix(y_true, y_pred).astype(np.float64)
    n = table.sum()
    p_ij = table / n
    p_i, p_j = p_ij.sum(1), p_ij.sum(0)
    nz = p_ij > 0
    mi = float((p_ij[nz] * np.log(p_ij[nz] / np.outer(p_i, p_j)[nz])).sum())
    h_i = float(-(p_i * np.log(p_i)).sum())
    h_j = float(-(p_j * np.log(p_j)).sum())
    if h_i == 0.0 and h_j == 0.0:
        return 1.0
    if h_i == 0.0 or h_j == 0.0:
        return 0.0
    return float(np.clip(mi / ((h_i + h_j) / 2.0), 0.0, 1.0))
