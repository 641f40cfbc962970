"""Frozen features and the two properties of contrastive representations of Wang & Isola
2020 ("Understanding Contrastive Representation Learning through Alignment and Uniformity
on the Hypersphere", eq. 4-5).

    feats = frozen_features(model.encode, x)       # no_grad, eval mode, in batches
    alignment(z, z_pos)    L_align = E_(x,y)~p_pos || f(x) - f(y) ||_2^alpha        (alpha = 2)
    uniformity(z)          L_unif  = log E_(x,y)~p_data exp(-t || f(x) - f(y) ||_2^2)   (t = 2)

Both take the embeddings as given (the paper's f is already unit-norm; pass
normalize=True to project rows to the sphere first). uniformity averages over the
n (n - 1) / 2 distinct pairs, as the paper's code (torch.pdist). Lower is better for both.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from ._arrays import host, rows

__all__ = ["frozen_features", "alignment", "uniformity"]


def frozen_features(fn, x, batch_size: int = 1000, module=None) -> np.ndarray:
    """np.concatenate of fn(x[i:i + batch_size]) under no_grad: the features of a FROZEN
    encoder (no gradient, so no update can reach it). `module` (e.g. the model) is put in
    eval mode for the call (dropout off) and restored to its mode afterwards."""
    from ..autograd import no_grad
    if batch_size < 1:
        raise ValueError(f"frozen_features: batch_size must be >= 1, got {batch_size}")
    was = module.training if module is not None else None
    if module is not None:
        module.eval()
    try:
        with no_grad():
            out = [host(fn(Tensor._make(np.asarray(x[i:i + batch_size]))))
                   for i in range(0, len(x), batch_size)]
    finally:
        if module is not None:
            module.train(was)
    return np.concatenate(out)


def _unit(z, normalize: bool, name: str, op: str) -> np.ndarray:
    z = host(rows(z, name, op)).astype(np.float64)
    if normalize:
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return z


def alignment(z, z_pos, alpha: float = 2.0, normalize: bool = False) -> float:
    """L_align (eq. 4): mean over the positive pairs (z_i, z_pos_i) of ||z_i - z_pos_i||^alpha."""
    a = _unit(z, normalize, "z", "alignment")
    b = _unit(z_pos, normalize, "z_pos", "alignment")
    if a.shape != b.shape:
        raise ValueError(f"alignment: z {a.shape} and z_pos {b.shape} must have the same "
                         "shape (row i of each is one positive pair)")
    if not alpha > 0:
        raise ValueError(f"alignment: alpha must be > 0, got {alpha}")
    return float((np.linalg.norm(a - b, axis=1) ** alpha).mean())


def uniformity(z, t: float = 2.0, normalize: bool = False, max_rows: int = 4096) -> float:
    """L_unif (eq. 5): log of the mean over distinct pairs i < j of exp(-t ||z_i - z_j||^2)
    (a log-sum-exp in float64). At most max_rows rows (the first ones) are used."""
    a = _unit(z, normalize, "z", "uniformity")[:max_rows]
    if len(a) < 2:
        raise ValueError(f"uniformity: needs at least 2 rows, got {len(a)}")
    if not t > 0:
        raise ValueError(f"uniformity: t must be > 0, got {t}")
    sq = (a * a).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * a @ a.T, 0.0)     # (n, n)
    e = -t * d2[np.triu_indices(len(a), k=1)]                           # (n (n - 1) / 2,)
    m = e.max()
    return float(m + np.log(np.exp(e - m).mean()))
