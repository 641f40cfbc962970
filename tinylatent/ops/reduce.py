"""Reductions: sum, mean, max/min, var/std, logsumexp, softmax, cumsum, sort and friends.

Every reduction takes `axis` (an int, a tuple, or None for all) and `keepdims`; PyTorch's
`dim` / `keepdim` spellings are accepted too so ported code runs unchanged.
"""
from __future__ import annotations

import builtins
import warnings
from typing import NamedTuple

import numpy as np

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, is_float_dtype
from .axis_check import check_axes, check_axis
from .fast import fast_backend, reference_vjp


def _axes(axis, ndim: int, op: str) -> tuple:
    """Normalise an axis argument to a sorted tuple of non-negative ints."""
    if isinstance(axis, int) and 0 <= axis < ndim:   # the common case, answered at once
        return (axis,)
    return check_axes(op, axis, ndim)


def _pick(axis, dim, keepdims, keepdim):
    return (dim if axis is None else axis), (keepdim if keepdim is not None else keepdims)


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Unreduce(Function):
    """y = g broadcast back over the axes a reduction removed, to `shape` (the adjoint of
    Sum, which is the backward of sum and mean);  dL/dg = sum of dL/dy over those axes.
    Sum and Unreduce are each other's backward, so derivatives of every order exist."""

    @staticmethod
    def forward(ctx, g, *, shape, axes, keepdims):
        ctx.axes, ctx.keepdims = axes, keepdims
        if not keepdims:   # put the reduced axes back as size 1, then broadcast
            g = g.reshape(_kept_shape(shape, axes))
        return broadcast_array(ctx.xp, g, shape)

    @staticmethod
    def backward(ctx, grad):
        return Sum.apply(grad, axes=ctx.axes, keepdims=ctx.keepdims)


class Sum(Function):
    """y = sum of x over axes;  dy/dx = 1 (the gradient is broadcast back)"""

    @staticmethod
    def forward(ctx, x, *, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        if x.dtype.itemsize == 2:   # float16 / bfloat16: accumulate in float32, round once
            # (bfloat16's 8 bits would stop 10,000 ones at 256; PyTorch accumulates in float)
            return x.sum(axis=axes, keepdims=keepdims, dtype=np.float32).astype(x.dtype)
        return x.sum(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return Unreduce.apply(grad, shape=ctx.shape, axes=ctx.axes, keepdims=ctx.keepdims)


class Mean(Function):
    """y = mean of x over axes (n elements);  dy/dx = 1/n"""

    @staticmethod
    def forward(ctx, x, *, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        n = 1
        for a in axes:
            n *= x.shape[a]
        ctx.n = n
        if x.dtype.itemsize == 2:   # float16 / bfloat16: accumulate in float32, round once
            return x.mean(axis=axes, keepdims=keepdims, dtype=np.float32).astype(x.dtype)
        # (what ndarray.mean computes, without its Python-level overhead)
        return x.sum(axis=axes, keepdims=keepdims) / n

    @staticmethod
    def backward(ctx, grad):
        return Unreduce.apply(grad * (1.0 / ctx.n), shape=ctx.shape, axes=ctx.axes,
                              keepdims=ctx.keepdims)


class _Extremum(Function):
    """y = max (or min) of x over axes;  dy/dx = [x == y] / (number of ties)"""

    reduce = "max"

    @classmethod
    def forward(cls, ctx, x, *, axes, keepdims):
        y = getattr(x, cls.reduce)(axis=axes, keepdims=True)
        hit = (x == y)
        count = hit.sum(axis=axes, keepdims=True)
        ctx.save_for_backward(hit / count.astype(x.dtype))
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return y if keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    @staticmethod
    def backward(ctx, grad):
        (share,) = ctx.saved_tensors
        if not ctx.keepdims:
            grad = grad.reshape(_kept_shape(ctx.shape, ctx.axes))
        return grad * share


class Max(_Extremum):
    reduce = "max"


class Min(_Extremum):
    reduce = "min"


class Cumsum(Function):
    """y_i = sum_{j<=i} x_j along an axis;  dL/dx_j = sum_{i>=j} dL/dy_i (a reversed cumsum)"""

    @staticmethod
    def forward(ctx, x, *, axis):
        ctx.axis = axis
        return ctx.xp.cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return grad.flip(ctx.axis).cumsum(ctx.axis).flip(ctx.axis)


# ---------------------------------------------------------------------- public functions
def sum(x: Tensor, axis=None, keepdims: bool = False, *, dim=None,  # noqa: A001
        keepdim=None) -> Tensor:
    axis, keepdims = _pick(axis, dim, keepdims, keepdim)
    return Sum.apply(x, axes=_axes(axis, x.ndim, "sum"), keepdims=bool(keepdims))


def mean(x: Tensor, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    axis, keepdims = _pick(axis, dim, keepdims, keepdim)
    if not is_float_dtype(x.dtype):
        raise TypeError(f"mean: expected a floating tensor, got dtype {x.dtype}")
    return Mean.apply(x, axes=_axes(axis, x.ndim, "mean"), keepdims=bool(keepdims))


class ValuesIndices(NamedTuple):
    """(values, indices): what max/min with a dim, sort and topk return (PyTorch's
    torch.return_types), so both `x.max(1)[1]` and `x.max(1).indices` are the argmax."""
    values: Tensor
    indices: Tensor


def amax(x: Tensor, axis=None, keepdims: bool = False, *, dim=None,
         keepdim=None) -> Tensor:
    """Largest value over axes (an int, a tuple or None); ties share the gradient equally."""
    axis, keepdims = _pick(axis, dim, keepdims, keepdim)
    return Max.apply(x, axes=_axes(axis, x.ndim, "max"), keepdims=bool(keepdims))


def amin(x: Tensor, axis=None, keepdims: bool = False, *, dim=None,
         keepdim=None) -> Tensor:
    """Smallest value over axes (an int, a tuple or None); ties share the gradient equally."""
    axis, keepdims = _pick(axis, dim, keepdims, keepdim)
    return Min.apply(x, axes=_axes(axis, x.ndim, "min"), keepdims=bool(keepdims))


def _extremum(name: str, x: Tensor, axis, keepdims, dim, keepdim):
    """PyTorch's three forms: max(x) -> a tensor; max(x, dim) -> (values, indices);
    max(x, other_tensor) -> the elementwise maximum."""
    if isinstance(axis, Tensor) or isinstance(dim, Tensor):
        other = axis if isinstance(axis, Tensor) else dim
        return (maximum if name == "max" else minimum)(x, other)
    axis, keepdims = _pick(axis, dim, keepdims, keepdim)
    reduce_all = amax if name == "max" else amin
    if axis is None:
        return reduce_all(x)
    if not isinstance(axis, int):
        raise TypeError(f"{name}: dim must be one int (the values and indices along it), "
                        f"got {axis!r}; use tl.a{name}(x, dims) to reduce several dims")
    values = reduce_all(x, axis, bool(keepdims))
    pick = argmax if name == "max" else argmin
    return ValuesIndices(values, pick(x, axis, bool(keepdims)))


def max(x: Tensor, axis=None, keepdims: bool = False, *, dim=None,  # noqa: A001
        keepdim=None):
    """max(x) -> the largest value; max(x, dim) -> (values, indices) along dim, a named
    tuple as in PyTorch; max(x, other) -> elementwise maximum. Use amax for several dims."""
    return _extremum("max", x, axis, keepdims, dim, keepdim)


def min(x: Tensor, axis=None, keepdims: bool = False, *, dim=None,  # noqa: A001
        keepdim=None):
    """min(x) -> the smallest value; min(x, dim) -> (values, indices) along dim (a named
    tuple); min(x, other) -> elementwise minimum. Use amin for several dims."""
    return _extremum("min", x, axis, keepdims, dim, keepdim)


def var(x: Tensor, axis=None, keepdims: bool = False, correction: int = 1, *, dim=None,
        keepdim=None, unbiased=None) -> Tensor:
    """Variance, sum((x - mean)^2) / (n - correction); correction=1 (Bessel) by default."""
    axis, keepdims = _pick(axis, dim, keepdims, keepdim)
    if unbiased is not None:
        correction = int(unbiased)
    axes = _axes(axis, x.ndim, "var")
    n = 1
    for a in axes:
        n *= x.shape[a]
    d = x - Mean.apply(x, axes=axes, keepdims=True)
    dof = n - correction
    if dof <= 0:   # the estimate is undefined (one sample, unbiased): NaN, as in PyTorch
        warnings.warn(f"var: degrees of freedom n - correction = {n} - {correction} <= 0 for "
                      f"shape {x.shape} over axes {axes}; the result is NaN",
                      RuntimeWarning, stacklevel=2)
    return Sum.apply(d * d, axes=axes, keepdims=bool(keepdims)) * \
        (1.0 / dof if dof > 0 else float("nan"))


def std(x: Tensor, axis=None, keepdims: bool = False, correction: int = 1, *, dim=None,
        keepdim=None, unbiased=None) -> Tensor:
    return var(x, axis, keepdims, correction, dim=dim, keepdim=keepdim,
               unbiased=unbiased).sqrt()


def logsumexp(x: Tensor, axis=None, keepdims: bool = False, *, dim=None,
              keepdim=None) -> Tensor:
    """log sum exp(x) over `axis` (None: all axes), stably. The one logsumexp: tl.logsumexp,
    x.logsumexp(), log_softmax and the losses all come here. Over the last axis of a
    float32/64 tensor it runs LogsumexpFn (one fused pass per row) when a kernel backend
    applies; otherwise, and as the oracle, `logsumexp_reference`."""
    axis, keepdims = _pick(axis, dim, keepdims, keepdim)
    if not isinstance(x, Tensor):
        raise TypeError(f"logsumexp: expected a Tensor, got {type(x).__name__}")
    if not is_float_dtype(x.dtype):
        raise TypeError(f"logsumexp: expected a floating tensor, got dtype {x.dtype}")
    axes = _axes(axis, x.ndim, "logsumexp")
    keepdims = bool(keepdims)
    if axes == (x.ndim - 1,) and x.shape[-1] > 0:
        be = fast_backend(x, op="logsumexp")
        if be is not None:
            return LogsumexpFn.apply(x, keepdims=keepdims, be=be,
                                     reference=lambda z: _logsumexp(z, axes, keepdims))
    return _logsumexp(x, axes, keepdims)


def logsumexp_reference(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """log sum exp(x) in Tensor ops: the test oracle of logsumexp."""
    return _logsumexp(x, _axes(axis, x.ndim, "logsumexp"), bool(keepdims))


def _logsumexp(x: Tensor, axes: tuple, keepdims: bool) -> Tensor:
    """m + log sum exp(x - m) with m = max(x) held constant.

    m is detached: the result does not depend on it, so no gradient needs to flow through it
    (and a tie in the max would otherwise split the gradient for nothing).
    """
    xp = x.xp
    m = x.array.max(axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0).astype(x.dtype, copy=False)
    mt = Tensor._make(m)
    out = Sum.apply((x - mt).exp(), axes=axes, keepdims=True).log() + mt
    return out if keepdims else out.reshape([n for i, n in enumerate(x.shape) if i not in axes])


class LogsumexpFn(Function):
    """lse_i = log sum_j exp(x_ij) per row;  dx_ij = g_i exp(x_ij - m_i) / sum_j exp(x_ij - m_i)"""

    @staticmethod
    def forward(ctx, x, *, keepdims, be, reference):
        x2 = be.c(x).reshape(-1, x.shape[-1])                        # (R, K)
        lse, saved = be.row_logsumexp(x2)                            # (R,), row max and sum
        ctx.be, ctx.reference, ctx.lse_saved, ctx.keepdims = be, reference, saved, keepdims
        ctx.save_for_backward(x)
        shape = x.shape[:-1] + ((1,) if keepdims else ())
        return lse.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (x,), grad)
        be = ctx.be
        x2 = be.c(x.array).reshape(-1, x.shape[-1])
        gx = be.row_logsumexp_backward(x2, ctx.lse_saved, be.c(grad.array).reshape(-1))
        return Tensor._make(gx.reshape(x.shape))


def softmax(x: Tensor, axis: int = -1, *, dim=None) -> Tensor:
    """exp(x) / sum exp(x) along `axis`, with the max subtracted first for stability."""
    axis = check_axis("softmax", dim if dim is not None else axis, x.ndim)
    m = Tensor._make(x.array.max(axis=axis, keepdims=True))
    e = (x - m).exp()
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x: Tensor, axis: int = -1, *, dim=None) -> Tensor:
    """x - logsumexp(x) along `axis`."""
    axis = check_axis("log_softmax", dim if dim is not None else axis, x.ndim)
    return x - logsumexp(x, axis=axis, keepdims=True)


def cumsum(x: Tensor, axis: int = 0, *, dim=None) -> Tensor:
    axis = dim if dim is not None else axis
    return Cumsum.apply(x, axis=check_axis("cumsum", axis, x.ndim))


def argmax(x: Tensor, axis=None, keepdims: bool = False, *, dim=None,
           keepdim=None) -> Tensor:
    """Index of the largest value (no gradient)."""
    axis, keepdims = _pick(axis, dim, keepdims, keepdim)
    axis = None if axis is None else check_axis("argmax", axis, x.ndim)
    return Tensor._make(x.xp.asarray(x.xp.argmax(x.array, axis=axis, keepdims=bool(keepdims))))


def argmin(x: Tensor, axis=None, keepdims: bool = False, *, dim=None,
           keepdim=None) -> Tensor:
    axis, keepdims = _pick(axis, dim, keepdims, keepdim)
    axis = None if axis is None else check_axis("argmin", axis, x.ndim)
    return Tensor._make(x.xp.asarray(x.xp.argmin(x.array, axis=axis, keepdims=bool(keepdims))))


def argsort(x: Tensor, axis: int = -1, descending: bool = False) -> Tensor:
    xp = x.xp
    axis = check_axis("argsort", axis, x.ndim)
    idx = xp.argsort(-x.array if descending else x.array, axis=axis, kind="stable")
    return Tensor._make(idx)


def sort(x: Tensor, axis: int = -1, descending: bool = False, *, dim=None):
    """(values, indices) sorted along `axis`; values carry the gradient back by gather."""
    axis = check_axis("sort", dim if dim is not None else axis, x.ndim)
    idx = argsort(x, axis, descending)
    return ValuesIndices(take_along_axis(x, idx, axis), idx)


def topk(x: Tensor, k: int, axis: int = -1, largest: bool = True, *, dim=None):
    """(values, indices) of the k largest (or smallest) entries along `axis`, sorted."""
    axis = check_axis("topk", dim if dim is not None else axis, x.ndim)
    if not 0 < k <= x.shape[axis]:
        raise ValueError(f"topk: k={k} is out of range for axis {axis} of shape {x.shape}")
    idx = argsort(x, axis, descending=largest)
    idx = Tensor._make(x.xp.take(idx.array, x.xp.arange(k), axis=axis))
    return ValuesIndices(take_along_axis(x, idx, axis), idx)


def all(x: Tensor, axis=None) -> Tensor:  # noqa: A001
    axis = None if axis is None else check_axes("all", axis, x.ndim)
    return Tensor._make(x.xp.asarray(x.array.all(axis=axis)))


def any(x: Tensor, axis=None) -> Tensor:  # noqa: A001
    axis = None if axis is None else check_axes("any", axis, x.ndim)
    return Tensor._make(x.xp.asarray(x.array.any(axis=axis)))


from .indexing import take_along_axis  # noqa: E402
from .arithmetic import maximum, minimum  # noqa: E402
from .shape import broadcast_array  # noqa: E402


def prod(x: Tensor, axis=None, keepdims: bool = False, *, dim=None, keepdim=None,
         dtype=None) -> Tensor:
    """The product of the entries along `axis` (all of them when None). A pairwise tree of
    multiplications (log2 n of them), so every derivative, zeros in x included, is exact
    and of every order: d prod / d x_i = the product of the others."""
    import numpy as np
    axis = dim if dim is not None else axis
    keepdims = keepdim if keepdim is not None else keepdims
    if dtype is not None:
        x = x.to(dtype)
    if axis is None:
        y = prod(x.reshape(-1), 0)
        return y.reshape((1,) * x.ndim) if keepdims else y
    axis = check_axis("prod", axis, x.ndim)
    before = (slice(None),) * axis
    while x.shape[axis] > 1:
        if x.shape[axis] % 2:                # an odd count: the last one waits a round
            pad_shape = list(x.shape)
            pad_shape[axis] = 1
            from .shape import cat
            x = cat([x, Tensor._make(x.xp.ones(pad_shape, dtype=x.dtype))], axis)
        x = x[before + (slice(0, None, 2),)] * x[before + (slice(1, None, 2),)]
    if x.shape[axis] == 0:
        shape = list(x.shape)
        shape[axis] = 1
        x = Tensor._make(x.xp.ones(shape, dtype=x.dtype))
    return x if keepdims else x.squeeze(axis)


def median(x: Tensor, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
    """The lower median (PyTorch's: the ((n - 1) // 2)-th smallest, no averaging). Without
    an axis a 0-d tensor; with one, (values, indices) as PyTorch returns."""
    axis = dim if dim is not None else axis
    keepdims = keepdim if keepdim is not None else keepdims
    if axis is None:
        values, _ = sort(x.reshape(-1))
        return values[(x.numel() - 1) // 2]
    axis = check_axis("median", axis, x.ndim)
    values, indices = sort(x, axis)
    k = (x.shape[axis] - 1) // 2
    sel = (slice(None),) * axis + (slice(k, k + 1),)
    v, i = values[sel], Tensor._make(indices.array[sel])
    return ValuesIndices(v if keepdims else v.squeeze(axis), i if keepdims else i.squeeze(axis))


def unique(x: Tensor, sorted: bool = True, return_inverse: bool = False,  # noqa: A002
           return_counts: bool = False, dim=None):
    """The distinct values, sorted (no gradient, as in PyTorch); optionally the inverse
    indices (x == unique[inverse]) and the counts. dim=None only (the flattened tensor)."""
    if dim is not None:
        raise NotImplementedError("unique: dim= is not supported; unique over the flattened "
                                  "tensor (dim=None) is")
    xp = x.xp
    values, inverse, counts = xp.unique(x.array, return_inverse=True, return_counts=True)
    out = [Tensor._make(values)]
    if return_inverse:
        out.append(Tensor._make(inverse.reshape(x.shape).astype("int64")))
    if return_counts:
        out.append(Tensor._make(counts.astype("int64")))
    return out[0] if len(out) == 1 else tuple(out)


def unique_consecutive(x: Tensor, return_inverse: bool = False, return_counts: bool = False,
                       dim=None):
    """Collapse runs of equal consecutive values of the flattened tensor (no gradient), with
    optionally the run index of each entry and the run lengths (PyTorch's)."""
    if dim is not None:
        raise NotImplementedError("unique_consecutive: dim= is not supported; it works on "
                                  "the flattened tensor (dim=None)")
    xp = x.xp
    flat = x.array.reshape(-1)
    starts = xp.ones(flat.shape, dtype=bool)
    starts[1:] = flat[1:] != flat[:-1]                     # True where a run begins
    out = [Tensor._make(flat[starts])]
    if return_inverse:
        out.append(Tensor._make((xp.cumsum(starts) - 1).reshape(x.shape).astype("int64")))
    if return_counts:
        edges = xp.concatenate([xp.flatnonzero(starts), xp.asarray([flat.size])])
        out.append(Tensor._make(xp.diff(edges).astype("int64")))
    return out[0] if len(out) == 1 else tuple(out)
