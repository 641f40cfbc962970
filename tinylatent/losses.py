"""Loss functions, with PyTorch's signatures and `reduction="mean" | "sum" | "none"`.

Reconstruction: mse_loss, l1_loss, binary_cross_entropy (on probabilities, log clamped at
-100 like PyTorch), binary_cross_entropy_with_logits (stable). Classification: cross_entropy,
nll_loss. Metric learning: triplet_loss (Schroff et al. 2015), n_pair_loss
(Sohn 2016). Contrastive: info_nce and nt_xent are re-exported from tl.ops.contrastive,
where they sit beside their fused kernels.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .autograd import Function
from .ops.contrastive import info_nce, nt_xent
from .tensor import Tensor, is_float_dtype

__all__ = ["mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss", "kl_div",
           "triplet_loss", "triplet_margin_loss", "n_pair_loss", "info_nce", "nt_xent"]

_REDUCTIONS = ("mean", "sum", "none")


def _as_tensor(x, like: Tensor) -> Tensor:
    """A target as a Tensor in the input's floating dtype, so a float64 target never turns
    a float32 model's loss into float64 (PyTorch would refuse the mix)."""
    if not isinstance(x, Tensor):
        return Tensor(x, dtype=like.dtype, device=like.device)
    return x.to(like.dtype) if x.dtype != like.dtype and is_float_dtype(like.dtype) else x


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got '{reduction}'")


def _check_same_shape(x: Tensor, t: Tensor, op: str) -> None:
    if tuple(x.shape) != tuple(t.shape):
        raise ValueError(f"{op}: input shape {tuple(x.shape)} and target shape "
                         f"{tuple(t.shape)} differ (no silent broadcasting in a loss)")


# ---------------------------------------------------------------------- regression
def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    """(x - y)^2, reduced."""
    target = _as_tensor(target, input)
    _check_same_shape(input, target, "mse_loss")
    d = input - target
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    """|x - y|, reduced."""
    target = _as_tensor(target, input)
    _check_same_shape(input, target, "l1_loss")
    return _reduce((input - target).abs(), reduction, "l1_loss")


def smooth_l1_loss(input: Tensor, target, reduction: str = "mean",  # noqa: A002
                   beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (Huber, scaled)."""
    target = _as_tensor(target, input)
    _check_same_shape(input, target, "smooth_l1_loss")
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction, "smooth_l1_loss")
    loss = ops.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


# ---------------------------------------------------------------------- binary
class BinaryCrossEntropy(Function):
    """l = -[t log p + (1 - t) log(1 - p)] with each log clamped at -100 (PyTorch's rule, so
    p = 0 or 1 gives a finite loss);
    dl/dp = (p - t) / max(p (1 - p), 1e-12),   dl/dt = log(1 - p) - log p  (clamped logs).

    A Function rather than a composite because the composite's backward would divide by
    p (1 - p) = 0 when a float32 sigmoid saturates to exactly 1, turning a finite loss into
    a NaN gradient."""

    @staticmethod
    def forward(ctx, p, t):
        xp = ctx.xp
        with np.errstate(divide="ignore"):
            logp = xp.maximum(xp.log(p), -100.0)
            log1mp = xp.maximum(xp.log(1.0 - p), -100.0)
        ctx.save_for_backward(p, t)
        return -(t * logp + (1.0 - t) * log1mp)

    @staticmethod
    def backward(ctx, grad):
        p, t = ctx.saved_tensors
        gp = gt = None
        if ctx.needs_input_grad[0]:
            gp = grad * (p - t) / ops.clamp(p * (1.0 - p), min=1e-12)
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                gt = grad * (ops.clamp((1.0 - p).log(), min=-100.0)
                             - ops.clamp(p.log(), min=-100.0))
        return gp, gt


def binary_cross_entropy(input: Tensor, target, weight=None,  # noqa: A002
                         reduction: str = "mean") -> Tensor:
    """-[t log p + (1 - t) log(1 - p)] on probabilities p in [0, 1]; logs clamped at -100.

    The VAE reconstruction term for Bernoulli pixels (Kingma & Welling 2014, App. C.1)."""
    target = _as_tensor(target, input)
    _check_same_shape(input, target, "binary_cross_entropy")
    if is_float_dtype(input.dtype) and input.numel():
        lo, hi = float(input.array.min()), float(input.array.max())
        if lo < 0.0 or hi > 1.0 or lo != lo:
            raise ValueError(f"binary_cross_entropy: input must be probabilities in [0, 1], "
                             f"got values in [{lo}, {hi}]; use "
                             "binary_cross_entropy_with_logits for logits")
    loss = BinaryCrossEntropy.apply(input, target.to(input.dtype))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None,  # noqa: A002
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """BCE on logits x: softplus(x) - t x = max(x, 0) - t x + log(1 + exp(-|x|)), which never
    overflows. With pos_weight w: (1 - t) x + (1 + (w - 1) t) softplus(-x)."""
    target = _as_tensor(target, input).to(input.dtype)
    _check_same_shape(input, target, "binary_cross_entropy_with_logits")
    if pos_weight is None:
        loss = ops.softplus(input) - input * target
    else:
        log_weight = (pos_weight - 1.0) * target + 1.0
        loss = (1.0 - target) * input + log_weight * ops.softplus(-input)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


# ---------------------------------------------------------------------- categorical
def _check_class_target(target: Tensor, n_classes: int, ignore_index: int, op: str) -> None:
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: class targets must be integers, got dtype {target.dtype}")
    if target.numel():
        valid = target.array[target.array != ignore_index]
        if valid.size and (int(valid.min()) < 0 or int(valid.max()) >= n_classes):
            raise IndexError(f"{op}: target values must be in [0, {n_classes}) (or "
                             f"ignore_index={ignore_index}), got values in "
                             f"[{int(valid.min())}, {int(valid.max())}]")


def nll_loss(input: Tensor, target, weight=None, ignore_index: int = -100,  # noqa: A002
             reduction: str = "mean") -> Tensor:
    """-w[y] * input[n, y] for log-probabilities input of shape (N, C) or (N, C, d1, ...)
    and integer targets (N,) or (N, d1, ...). The mean divides by sum of w[y] over the
    targets that are not ignore_index (PyTorch's weighted mean)."""
    target = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    if input.ndim < 1:
        raise ValueError("nll_loss: input must have a class dimension")
    if input.ndim == 1:  # a single sample (C,) with a scalar target
        out = nll_loss(input.unsqueeze(0), target.reshape(1), weight, ignore_index,
                       reduction)
        return out.reshape(()) if reduction == "none" else out
    n_classes = input.shape[1]
    expected = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"nll_loss: input of shape {tuple(input.shape)} needs a target of "
                         f"shape {expected}, got {tuple(target.shape)}")
    _check_class_target(target, n_classes, ignore_index, "nll_loss")
    xp = input.xp
    keep = target.array != ignore_index
    safe_t = xp.where(keep, target.array, 0)
    picked = ops.take_along_axis(input, Tensor._make(xp.expand_dims(safe_t, 1)), 1)
    picked = picked.squeeze(1)                                   # (N, d1, ...)
    if weight is not None:
        w = weight.array if isinstance(weight, Tensor) else xp.asarray(weight)
        if w.shape != (n_classes,):
            raise ValueError(f"nll_loss: weight must have shape ({n_classes},), got {w.shape}")
        wt = (w[safe_t] * keep).astype(input.dtype)
    else:
        wt = keep.astype(input.dtype)
    loss = -picked * Tensor._make(wt)
    if reduction == "mean":
        return loss.sum() / float(wt.sum())
    return _reduce(loss, reduction, "nll_loss")


def cross_entropy(input: Tensor, target, weight=None, ignore_index: int = -100,  # noqa: A002
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy on logits (N, C) or (N, C, d1, ...).

    Integer targets: nll_loss(log_softmax(input)). With label smoothing eps the target is
    (1 - eps) one_hot(y) + eps / C, computed as PyTorch does:
    (1 - eps) * nll + eps / C * sum_c -w_c log p_c (same reduction and normaliser).
    Float targets of the input's shape are class probabilities: -sum_c w_c t_c log p_c.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got "
                         f"'{reduction}'")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing}")
    target = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    if input.ndim == 1:
        out = cross_entropy(input.unsqueeze(0), target.reshape((1,) + tuple(target.shape)),
                            weight, ignore_index, reduction, label_smoothing)
        return out.reshape(()) if reduction == "none" else out
    logp = ops.log_softmax(input, axis=1)                        # (N, C, ...)
    n_classes = input.shape[1]
    xp = input.xp
    w = None
    if weight is not None:
        w = weight.array if isinstance(weight, Tensor) else xp.asarray(weight)
        if w.shape != (n_classes,):
            raise ValueError(f"cross_entropy: weight must have shape ({n_classes},), got "
                             f"{w.shape}")
        w = w.astype(input.dtype)
    wb = None if w is None else Tensor._make(w.reshape((1, n_classes) + (1,) *
                                                       (input.ndim - 2)))
    if is_float_dtype(target.dtype):  # class probabilities
        _check_same_shape(input, target, "cross_entropy")
        t = target.to(input.dtype)
        if label_smoothing > 0:
            t = t * (1.0 - label_smoothing) + label_smoothing / n_classes
        lp = logp if wb is None else logp * wb
        loss = -(lp * t).sum(axis=1)                              # (N, ...)
        if reduction == "mean":
            return loss.sum() / float(input.numel() // n_classes)
        return _reduce(loss, reduction, "cross_entropy")
    nll = nll_loss(logp, target, w, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    keep = xp.asarray(target.array != ignore_index)
    lp = logp if wb is None else logp * wb
    smooth = -lp.sum(axis=1) * Tensor._make(keep.astype(input.dtype))   # (N, ...)
    if reduction == "none":
        smooth_red = smooth
    elif reduction == "sum":
        smooth_red = smooth.sum()
    elif w is not None:
        smooth_red = smooth.sum() / float(w[target.array[keep]].sum())
    else:
        smooth_red = smooth.sum() / float(keep.sum())
    return (1.0 - label_smoothing) * nll + smooth_red * (label_smoothing / n_classes)


def kl_div(input: Tensor, target, reduction: str = "mean",  # noqa: A002
           log_target: bool = False) -> Tensor:
    """Pointwise KL term t (log t - input) with input = log q (PyTorch's kl_div);
    reduction='batchmean' divides the sum by the batch size (the true KL per sample)."""
    target = _as_tensor(target, input)
    _check_same_shape(input, target, "kl_div")
    if log_target:
        loss = target.exp() * (target - input)
    else:
        # t log t with 0 log 0 = 0; the log is taken through `where` so a target that
        # requires grad gets d/dt = log t + 1 - input (the +1 is d(t log t)/dt - log t)
        positive = target > 0
        safe_log = ops.where(positive, target, 1.0).log()
        loss = target * (safe_log - input)
    if reduction == "batchmean":
        return loss.sum() / float(input.shape[0])
    return _reduce(loss, reduction, "kl_div")


# ---------------------------------------------------------------------- metric learning
def _check_embeddings(op: str, *xs: Tensor) -> None:
    shapes = [tuple(x.shape) for x in xs]
    if len(set(shapes)) != 1 or len(shapes[0]) != 2:
        raise ValueError(f"{op}: expected embeddings of one shape (N, D), got "
                         f"{', '.join(map(str, shapes))}")


def triplet_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0,
                 squared: bool = True, reduction: str = "mean") -> Tensor:
    """max(0, ||f(x) - f(x+)||^2 - ||f(x) - f(x-)||^2 + margin)  (Schroff et al. 2015,
    Sec. 3.1), per row of (N, D) embeddings. squared=False uses plain L2 distances (as
    PyTorch's triplet_margin_loss without its eps)."""
    _check_embeddings("triplet_loss", anchor, positive, negative)
    d_pos = ((anchor - positive) ** 2).sum(axis=1)               # (N,)
    d_neg = ((anchor - negative) ** 2).sum(axis=1)               # (N,)
    if not squared:
        d_pos, d_neg = d_pos.sqrt(), d_neg.sqrt()
    return _reduce(ops.relu(d_pos - d_neg + margin), reduction, "triplet_loss")


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor,
                        margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                        swap: bool = False, reduction: str = "mean") -> Tensor:
    """PyTorch's triplet_margin_loss: max(0, d(a, p) - d(a, n) + margin) with
    d(x, y) = ||x - y + eps||_p; swap uses min(d(a, n), d(p, n)) (Balntas et al. 2016)."""
    _check_embeddings("triplet_margin_loss", anchor, positive, negative)

    def dist(x, y):
        return (((x - y + eps).abs()) ** p).sum(axis=1) ** (1.0 / p)

    d_pos, d_neg = dist(anchor, positive), dist(anchor, negative)
    if swap:
        d_neg = ops.minimum(d_neg, dist(positive, negative))
    return _reduce(ops.relu(d_pos - d_neg + margin), reduction, "triplet_margin_loss")


def n_pair_loss(anchor: Tensor, positive: Tensor, negatives: Tensor | None = None,
                l2_reg: float = 0.0, reduction: str = "mean") -> Tensor:
    """N-pair loss (Sohn 2016, Sec. 3):
        log(1 + sum_i exp(f^T f_i^- - f^T f^+)).
    With `negatives` (N, K, D) each anchor has its own K negatives. Without, the batch is
    Sohn's efficient N-pair construction: the positives of the other N - 1 anchors are the
    negatives, so the loss is cross_entropy(anchor @ positive^T, arange(N)).
    l2_reg adds l2_reg * (||f||^2 + ||f^+||^2) / 2 per pair, Sohn's embedding-norm penalty."""
    _check_embeddings("n_pair_loss", anchor, positive)
    n = anchor.shape[0]
    s_pos = (anchor * positive).sum(axis=1, keepdims=True)       # (N, 1)
    if negatives is None:
        s = anchor @ positive.T                                  # (N, N): f_i^T f_j^+
        logits = s - s_pos                                       # diagonal is 0
        loss = ops.logsumexp(logits, axis=1)                     # log(1 + sum_{j!=i} ...)
    else:
        if negatives.ndim != 3 or negatives.shape[0] != n or \
                negatives.shape[2] != anchor.shape[1]:
            raise ValueError(f"n_pair_loss: negatives must have shape (N, K, D) = ({n}, K, "
                             f"{anchor.shape[1]}), got {tuple(negatives.shape)}")
        s_neg = (negatives @ anchor.unsqueeze(2)).squeeze(2)     # (N, K): f^T f_k^-
        zero = Tensor._make(s_pos.xp.zeros_like(s_pos.array))  # the "1 +" inside the log
        loss = ops.logsumexp(ops.cat([zero, s_neg - s_pos], axis=1), axis=1)
    if l2_reg:
        loss = loss + 0.5 * l2_reg * ((anchor ** 2).sum(axis=1) + (positive ** 2).sum(axis=1))
    return _reduce(loss, reduction, "n_pair_loss")
