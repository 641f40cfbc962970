"""The contrastive losses InfoNCE and NT-Xent, built on logsumexp (ops/reduce.py).

InfoNCE (van den Oord et al. 2018, eq. 4): for a query q_i, its positive key k_i and
negatives, with cosine similarities and temperature tau,

    loss_i = -log( exp(s(q_i, k_i)/tau) / sum_j exp(s(q_i, k_j)/tau) )
           = logsumexp_j(logits_ij) - logits_i,pos

NT-Xent (SimCLR, Chen et al. 2020, eq. 1): the 2N embeddings of two views
z = [z1; z2] are L2-normalised, S = z z^T / tau, the self-similarity S_ii is masked out, and
each row's positive is its other view (i + N mod 2N); the loss is the mean over all 2N rows.

The `*_reference` functions are the Tensor-op oracles (every order of gradient);
`InfoNCEFn` / `NTXentFn` are the fused ops (a kernel backend's row normalisation and one
pass per row: max, exp-sum, log, the loss, and the softmax kept for the backward); the
public functions run them when a backend applies (float32/64, in-batch negatives for
InfoNCE, the reference not forced).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, is_float_dtype
from .arithmetic import where
from .fast import fast_backend, reference_vjp
from .linalg import normalize
from .reduce import logsumexp, logsumexp_reference

__all__ = ["logsumexp", "info_nce", "nt_xent", "logsumexp_reference", "info_nce_reference",
           "nt_xent_reference", "normalize", "InfoNCEFn", "NTXentFn"]

_REDUCTIONS = ("mean", "sum", "none")


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


# ---------------------------------------------------------------------- InfoNCE
def _check_pair(op: str, a: Tensor, b: Tensor, na: str, nb: str) -> None:
    for name, t in ((na, a), (nb, b)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim != 2:
            raise ValueError(f"{op}: {name} must be 2-D (N, D), got shape {t.shape}")
        if not is_float_dtype(t.dtype):
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
    return _info_nce(query, positive_key, negative_keys, tau, reduction)


def _info_nce(query, positive_key, negative_keys, tau: float, reduction: str) -> Tensor:
    """info_nce_reference on checked arguments."""
    q, k = normalize(query, dim=-1), normalize(positive_key, dim=-1)
    if negative_keys is None:
        # In-batch negatives: row i's positive is column i (CPC / CLIP one direction).
        logits = (q @ k.transpose(0, 1)) * (1.0 / tau)                # (N, N)
        pos = logits[np.arange(q.shape[0]), np.arange(q.shape[0])]    # (N,)
    else:
        neg = normalize(negative_keys, dim=-1)
        pos = (q * k).sum(axis=1, keepdims=True)                     # (N, 1)
        if neg.ndim == 2:
            negl = q @ neg.transpose(0, 1)                           # (N, M)
        else:
            negl = (q.unsqueeze(1) * neg).sum(axis=2)                # (N, M)
        from .shape import cat
        logits = cat([pos, negl], axis=1) * (1.0 / tau)              # (N, 1 + M)
        pos = logits[:, 0]
    loss = logsumexp(logits, axis=1) - pos
    return _reduce(loss, reduction, "info_nce")


def info_nce(query: Tensor, positive_key: Tensor, negative_keys=None,
             temperature: float = 0.1, reduction: str = "mean") -> Tensor:
    """InfoNCE loss (van den Oord et al. 2018) on cosine similarities.

    query, positive_key: (N, D). negative_keys: None (the other rows' positives are the
    negatives), (M, D) shared negatives, or (N, M, D) per-query negatives.
    loss_i = logsumexp_j(logits_ij) - logits_i,pos with logits = cos / temperature.
    """
    tau = _info_nce_args(query, positive_key, negative_keys, temperature, reduction)
    be = fast_backend(query, positive_key, op="info_nce") if negative_keys is None else None
    if be is None:
        return _info_nce(query, positive_key, negative_keys, tau, reduction)
    return InfoNCEFn.apply(query, positive_key, tau=tau, reduction=reduction, be=be,
                           reference=lambda q, k: _info_nce(q, k, None, tau, reduction))


# ---------------------------------------------------------------------- NT-Xent
def _nt_xent_args(z1, z2, temperature, reduction):
    _check_pair("nt_xent", z1, z2, "z1", "z2")
    _check_reduction(reduction, "nt_xent")
    return _check_temperature(temperature, "nt_xent")


def nt_xent_reference(z1: Tensor, z2: Tensor, temperature: float = 0.5,
                      reduction: str = "mean") -> Tensor:
    """NT-Xent in Tensor ops (SimCLR eq. 1)."""
    tau = _nt_xent_args(z1, z2, temperature, reduction)
    return _nt_xent(z1, z2, tau, reduction)


def _nt_xent(z1: Tensor, z2: Tensor, tau: float, reduction: str) -> Tensor:
    """nt_xent_reference on checked arguments."""
    from .shape import cat
    n = z1.shape[0]
    z = normalize(cat([z1, z2], axis=0), dim=-1)                     # (2N, D)
    sim = (z @ z.transpose(0, 1)) * (1.0 / tau)                      # (2N, 2N)
    eye = np.eye(2 * n, dtype=bool)
    if z.xp is not np:
        eye = z.xp.asarray(eye)
    sim = where(Tensor._make(eye), -np.inf, sim)                     # mask self-similarity
    rows = np.arange(2 * n)
    pos = sim[rows, (rows + n) % (2 * n)]                            # (2N,)
    loss = logsumexp(sim, axis=1) - pos
    return _reduce(loss, reduction, "nt_xent")


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5,
            reduction: str = "mean") -> Tensor:
    """NT-Xent (SimCLR) loss of two views z1, z2 (N, D) of the same N samples.

    z = normalize([z1; z2]), S = z z^T / temperature with S_ii masked out; row i's target
    is its other view; the result is the mean (or sum / per-row 'none') over 2N rows.
    """
    tau = _nt_xent_args(z1, z2, temperature, reduction)
    be = fast_backend(z1, z2, op="nt_xent")
    if be is None:
        return _nt_xent(z1, z2, tau, reduction)
    return NTXentFn.apply(z1, z2, tau=tau, reduction=reduction, be=be,
                          reference=lambda a, b: _nt_xent(a, b, tau, reduction))


# ---------------------------------------------------------------------- fast Functions
def _row_weights(xp, grad: Tensor, n_rows: int, reduction: str, dtype):
    """Upstream gradient of each row's loss for mean / sum / none."""
    g = grad.array
    if reduction == "none":
        return xp.ascontiguousarray(g, dtype=dtype)
    scale = g.reshape(()) / n_rows if reduction == "mean" else g.reshape(())
    return xp.ones(n_rows, dtype=dtype) * scale.astype(dtype)     # 0-d array, numpy or cupy


def _reduce_rows(xp, loss, reduction: str):
    # 16-bit rows are summed in float32 and rounded once (as the Sum / Mean ops do)
    acc = np.float32 if loss.dtype.itemsize == 2 else loss.dtype
    if reduction == "mean":
        return xp.asarray(loss.mean(dtype=acc).astype(loss.dtype))
    if reduction == "sum":
        return xp.asarray(loss.sum(dtype=acc).astype(loss.dtype))
    return loss



class NTXentFn(Function):
    """SimCLR NT-Xent: z = normalize([z1; z2]), S = z z^T / tau (diag masked), row CE with
    target i + N mod 2N.  dS = G + G^T with G_ij = w_i (P_ij - [j = pos i]) / tau,
    dz_hat = dS z_hat, dz = (dz_hat - z_hat <dz_hat, z_hat>) / ||z||."""

    @staticmethod
    def forward(ctx, z1, z2, *, tau, reduction, be, reference):
        xp = be.xp
        n = z1.shape[0]
        zn, norm = be.normalize_rows(xp.concatenate([z1, z2], axis=0))  # (2N, D)
        # A @ A.T would take BLAS's syrk path, which is slower here than a plain GEMM on a
        # transposed copy (measured on OpenBLAS: syrk is the slower path here).
        s = be.matmul(zn, be.c(zn.T))                                    # (2N, 2N)
        loss = be.row_cross_entropy(s, 1.0 / tau, n, True)               # s is now P
        ctx.be, ctx.reference, ctx.tau, ctx.reduction = be, reference, tau, reduction
        ctx.zn, ctx.norm, ctx.p = zn, norm, s
        ctx.save_for_backward(z1, z2)
        return _reduce_rows(xp, loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        z1, z2 = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (z1, z2), grad)
        be = ctx.be
        n2 = ctx.p.shape[0]
        w = _row_weights(be.xp, grad, n2, ctx.reduction, ctx.p.dtype)
        h = be.cross_entropy_grad(ctx.p, w, 1.0 / ctx.tau, n2 // 2, True)  # (2N, 2N) sym.
        gzn = be.matmul(h, ctx.zn)                                        # (2N, D)
        gz = be.normalize_rows_backward(gzn, ctx.zn, ctx.norm)
        n = n2 // 2
        return Tensor._make(gz[:n]), Tensor._make(gz[n:])


class InfoNCEFn(Function):
    """InfoNCE with in-batch negatives: S = q_hat k_hat^T / tau, row CE with target i.
    G = w (P - I) / tau,  dq_hat = G k_hat,  dk_hat = G^T q_hat, then the normalisations."""

    @staticmethod
    def forward(ctx, q, k, *, tau, reduction, be, reference):
        qn, nq = be.normalize_rows(q)
        kn, nk = be.normalize_rows(k)
        s = be.matmul(qn, be.c(kn.T))                                # (N, N)
        loss = be.row_cross_entropy(s, 1.0 / tau, 0, False)          # s is now P
        ctx.be, ctx.reference, ctx.tau, ctx.reduction = be, reference, tau, reduction
        ctx.qn, ctx.nq, ctx.kn, ctx.nk, ctx.p = qn, nq, kn, nk, s
        ctx.save_for_backward(q, k)
        return _reduce_rows(be.xp, loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        q, k = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (q, k), grad)
        be, need = ctx.be, ctx.needs_input_grad
        n = ctx.p.shape[0]
        w = _row_weights(be.xp, grad, n, ctx.reduction, ctx.p.dtype)
        g = be.cross_entropy_grad(ctx.p, w, 1.0 / ctx.tau, 0, False)    # (N, N)
        gq = gk = None
        if need[0]:
            gq = Tensor._make(be.normalize_rows_backward(be.matmul(g, ctx.kn), ctx.qn, ctx.nq))
        if need[1]:
            gk = Tensor._make(be.normalize_rows_backward(be.matmul(g.T, ctx.qn), ctx.kn, ctx.nk))
        return gq, gk
