"""Row-wise logsumexp and the contrastive losses built on it: InfoNCE and NT-Xent.

InfoNCE (van den Oord et al. 2018, eq. 4; seed 000 "multiview coding"): for a query q_i,
its positive key k_i and negatives, with cosine similarities and temperature tau,

    loss_i = -log( exp(s(q_i, k_i)/tau) / sum_j exp(s(q_i, k_j)/tau) )
           = logsumexp_j(logits_ij) - logits_i,pos

NT-Xent (SimCLR, Chen et al. 2020, eq. 1; seeds 001, 002): the 2N embeddings of two views
z = [z1; z2] are L2-normalised, S = z z^T / tau, the self-similarity S_ii is masked out, and
each row's positive is its other view (i + N mod 2N); the loss is the mean over all 2N rows.

The `*_reference` functions are the Tensor-op oracles (every order of gradient); the
public ones dispatch to fused kernels (one pass per row: max, exp-sum, log, the loss, and
the softmax kept for the backward) when one applies.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .arithmetic import where
from .fast import try_fast
from .reduce import logsumexp as _logsumexp

__all__ = ["logsumexp", "info_nce", "nt_xent", "logsumexp_reference", "info_nce_reference",
           "nt_xent_reference", "normalize"]

_REDUCTIONS = ("mean", "sum", "none")


def normalize(x: Tensor, axis: int = -1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_2, eps) along `axis` (PyTorch's F.normalize).

    max(||x||, eps) is computed as sqrt(max(||x||^2, eps^2)) (the same value): the clamp comes
    before the square root, so a zero vector gets a zero gradient, not 0 * inf = NaN."""
    norm = (x * x).sum(axis=axis, keepdims=True).clamp(min=eps * eps).sqrt()
    return x / norm


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(reduction: str, op: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_temperature(temperature, op: str) -> float:
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"{op}: temperature must be a positive number, got {temperature!r}")
    return float(temperature)


# ---------------------------------------------------------------------- logsumexp
def logsumexp_reference(x: Tensor, axis=-1, keepdims: bool = False) -> Tensor:
    """log sum_j exp(x_j) = m + log sum_j exp(x_j - m), m = max_j x_j (tl.logsumexp)."""
    return _logsumexp(x, axis=axis, keepdims=keepdims)


def logsumexp(x: Tensor, axis=-1, keepdims: bool = False, *, dim=None,
              keepdim=None) -> Tensor:
    """Stable log-sum-exp along `axis` (default: the last). The row-wise case runs a fused
    kernel (one pass per row) when one applies; anything else is tl.logsumexp."""
    axis = dim if dim is not None else axis
    keepdims = keepdim if keepdim is not None else keepdims
    if not isinstance(x, Tensor):
        raise TypeError(f"logsumexp: expected a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"logsumexp: expected a floating tensor, got dtype {x.dtype}")
    if isinstance(axis, int) and x.ndim >= 1 and axis % x.ndim == x.ndim - 1 \
            and x.shape[-1] > 0:
        out = try_fast("logsumexp", x, bool(keepdims))
        if out is not None:
            return out
    return logsumexp_reference(x, axis=axis, keepdims=keepdims)


# ---------------------------------------------------------------------- InfoNCE
def _check_pair(op: str, a: Tensor, b: Tensor, na: str, nb: str) -> None:
    for name, t in ((na, a), (nb, b)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim != 2:
            raise ValueError(f"{op}: {name} must be 2-D (N, D), got shape {t.shape}")
        if t.dtype.kind != "f":
            raise TypeError(f"{op}: {name} must be floating, got dtype {t.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"{op}: {na} {a.shape} and {nb} {b.shape} must have the same shape")
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: {na} dtype {a.dtype} and {nb} dtype {b.dtype} differ")


def _info_nce_args(query, positive_key, negative_keys, temperature, reduction):
    op = "info_nce"
    _check_pair(op, query, positive_key, "query", "positive_key")
    _check_reduction(reduction, op)
    tau = _check_temperature(temperature, op)
    if negative_keys is not None:
        if not isinstance(negative_keys, Tensor):
            raise TypeError(f"{op}: negative_keys must be a Tensor or None")
        n, d = query.shape
        if negative_keys.ndim == 2 and negative_keys.shape[1] == d:
            pass
        elif negative_keys.ndim == 3 and negative_keys.shape[0] == n \
                and negative_keys.shape[2] == d:
            pass
        else:
            raise ValueError(f"{op}: negative_keys must be (M, {d}) (shared) or (N, M, {d}) "
                             f"(per query) for query {query.shape}, got {negative_keys.shape}")
        if negative_keys.dtype != query.dtype:
            raise TypeError(f"{op}: negative_keys dtype {negative_keys.dtype} differs from "
                            f"query dtype {query.dtype}")
    return tau


def info_nce_reference(query: Tensor, positive_key: Tensor, negative_keys=None,
                       temperature: float = 0.1, reduction: str = "mean") -> Tensor:
    """InfoNCE in Tensor ops: cross-entropy of the cosine-similarity logits / tau with the
    positive as target."""
    tau = _info_nce_args(query, positive_key, negative_keys, temperature, reduction)
    q, k = normalize(query), normalize(positive_key)
    if negative_keys is None:
        # In-batch negatives: row i's positive is column i (CPC / CLIP one direction).
        logits = (q @ k.transpose(0, 1)) * (1.0 / tau)                # (N, N)
        pos = logits[np.arange(q.shape[0]), np.arange(q.shape[0])]    # (N,)
    else:
        neg = normalize(negative_keys)
        pos = (q * k).sum(axis=1, keepdims=True)                     # (N, 1)
        if neg.ndim == 2:
            negl = q @ neg.transpose(0, 1)                           # (N, M)
        else:
            negl = (q.unsqueeze(1) * neg).sum(axis=2)                # (N, M)
        from .shape import cat
        logits = cat([pos, negl], axis=1) * (1.0 / tau)              # (N, 1 + M)
        pos = logits[:, 0]
    loss = _logsumexp(logits, axis=1) - pos
    return _reduce(loss, reduction, "info_nce")


def info_nce(query: Tensor, positive_key: Tensor, negative_keys=None,
             temperature: float = 0.1, reduction: str = "mean") -> Tensor:
    """InfoNCE loss (van den Oord et al. 2018) on cosine similarities.

    query, positive_key: (N, D). negative_keys: None (the other rows' positives are the
    negatives), (M, D) shared negatives, or (N, M, D) per-query negatives.
    loss_i = logsumexp_j(logits_ij) - logits_i,pos with logits = cos / temperature.
    """
    tau = _info_nce_args(query, positive_key, negative_keys, temperature, reduction)
    if negative_keys is None:
        out = try_fast("info_nce", query, positive_key, tau, reduction)
        if out is not None:
            return out
    return info_nce_reference(query, positive_key, negative_keys, temperature, reduction)


# ---------------------------------------------------------------------- NT-Xent
def _nt_xent_args(z1, z2, temperature, reduction):
    _check_pair("nt_xent", z1, z2, "z1", "z2")
    _check_reduction(reduction, "nt_xent")
    return _check_temperature(temperature, "nt_xent")


def nt_xent_reference(z1: Tensor, z2: Tensor, temperature: float = 0.5,
                      reduction: str = "mean") -> Tensor:
    """NT-Xent in Tensor ops (SimCLR eq. 1)."""
    tau = _nt_xent_args(z1, z2, temperature, reduction)
    from .shape import cat
    n = z1.shape[0]
    z = normalize(cat([z1, z2], axis=0))                             # (2N, D)
    sim = (z @ z.transpose(0, 1)) * (1.0 / tau)                      # (2N, 2N)
    eye = np.eye(2 * n, dtype=bool)
    if z.xp is not np:
        eye = z.xp.asarray(eye)
    sim = where(Tensor._make(eye), -np.inf, sim)                     # mask self-similarity
    rows = np.arange(2 * n)
    pos = sim[rows, (rows + n) % (2 * n)]                            # (2N,)
    loss = _logsumexp(sim, axis=1) - pos
    return _reduce(loss, reduction, "nt_xent")


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5,
            reduction: str = "mean") -> Tensor:
    """NT-Xent (SimCLR) loss of two views z1, z2 (N, D) of the same N samples.

    z = normalize([z1; z2]), S = z z^T / temperature with S_ii masked out; row i's target
    is its other view; the result is the mean (or sum / per-row 'none') over 2N rows.
    """
    tau = _nt_xent_args(z1, z2, temperature, reduction)
    out = try_fast("nt_xent", z1, z2, tau, reduction)
    if out is not None:
        return out
    return nt_xent_reference(z1, z2, temperature, reduction)
