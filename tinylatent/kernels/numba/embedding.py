"""Numba CPU kernel for the backward of an embedding lookup (a scatter-add), and its NumPy
reference twin.

    y[n] = W[idx[n]]        =>      gW[v] = sum_{n : idx[n] = v} gy[n]

np.add.at does this one element at a time through a generic ufunc loop; the kernel adds
whole rows (contiguous, vectorized). Rows whose index is `padding_idx` add nothing (that
row is a fixed "no token" vector and gets no gradient). Indices may be negative (from the
end, as in the lookup); they are checked by the caller.
"""
from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["embedding_backward", "embedding_backward_reference"]


@nb.jit(nopython=True, cache=True, nogil=True)
def _scatter_add(idx, gy, padding_idx, out):  # pragma: no cover - compiled
    n, d = gy.shape
    v_count = out.shape[0]
    for i in range(n):
        v = idx[i]
        if v < 0:
            v += v_count
        if v == padding_idx:
            continue
        row, g = out[v], gy[i]
        for j in range(d):
            row[j] += g[j]


def embedding_backward(idx: np.ndarray, gy: np.ndarray, num_embeddings: int,
                       padding_idx: int | None = None) -> np.ndarray:
    """gW (num_embeddings, D) for integer `idx` (any shape) and gy (idx.shape + (D,))."""
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding_backward: indices must be integers, got {idx.dtype}")
    d = gy.shape[-1]
    if gy.shape != idx.shape + (d,):
        raise ValueError(f"embedding_backward: grad {gy.shape} must be indices {idx.shape} "
                         f"+ (D,)")
    out = np.zeros((num_embeddings, d), dtype=gy.dtype)
    pad = -1 if padding_idx is None else padding_idx % num_embeddings
    _scatter_add(np.ascontiguousarray(idx).reshape(-1).astype(np.int64, copy=False),
                 np.ascontiguousarray(gy).reshape(-1, d), pad, out)
    return out


def embedding_backward_reference(idx, gy, num_embeddings: int, padding_idx=None):
    """The same gW with np.add.at."""
    d = gy.shape[-1]
    out = np.zeros((num_embeddings, d), dtype=gy.dtype)
    np.add.at(out, idx.reshape(-1), gy.reshape(-1, d))
    if padding_idx is not None:
        out[padding_idx] = 0
    return out
