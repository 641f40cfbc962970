"""Input coercion shared by the evaluation tools: Tensors or array-likes in, raw arrays out."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor


def raw(v):
    """The array behind a Tensor (numpy or cupy), or np.asarray(v)."""
    return v.array if isinstance(v, Tensor) else np.asarray(v)


def host(v) -> np.ndarray:
    """A NumPy array on the host (an explicit copy for CUDA tensors)."""
    return v.numpy_host() if isinstance(v, Tensor) else np.asarray(v)


def rows(v, name: str, op: str):
    """(N, ...) -> (N, D): one row per item."""
    a = raw(v)
    if a.ndim == 0:
        raise ValueError(f"{op}: {name} must have one row per item, got a scalar")
    return a if a.ndim == 2 else a.reshape(len(a), -1)


def labels(v, name: str, op: str, n: int | None = None) -> np.ndarray:
    """(N,) integer labels on the host; n: the number of rows they must match."""
    y = host(v)
    if y.ndim != 1:
        raise ValueError(f"{op}: {name} must be a 1-D array of labels, got shape {y.shape}")
    if n is not None and len(y) != n:
        raise ValueError(f"{op}: {name} has {len(y)} labels for {n} rows")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(y == np.round(y)):
            raise ValueError(f"{op}: {name} must be integer labels, got dtype {y.dtype}")
        y = y.astype(np.int64)
    return y
