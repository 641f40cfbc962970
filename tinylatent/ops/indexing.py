"""Indexing, gathering and scattering.

The backward of reading (`x[idx]`, gather) is scatter-adding into zeros, and the backward
of scatter-adding is reading again: the pair is closed under differentiation, so gradients
of every order exist. Repeated indices accumulate (np.add.at), as they must: an entry read
twice gets both gradients.
"""
from __future__ import annotations

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor
from .axis_check import check_axis
from .fast import fast_backend


def normalize_index(index):
    """Replace Tensors inside an index by their arrays; check index dtypes."""
    if isinstance(index, tuple):
        return tuple(_norm_one(i) for i in index)
    return _norm_one(index)


def _norm_one(i):
    if isinstance(i, Tensor):
        if i.dtype.kind not in "iub":
            raise IndexError(f"getitem: tensors used as indices must be integer or bool, got "
                             f"dtype {i.dtype}")
        return i.array
    if isinstance(i, list):
        return i if not i or not isinstance(i[0], Tensor) else [int(v) for v in i]
    return i


def _may_repeat(index) -> bool:
    """True when the index holds integer arrays, which may pick one element twice."""
    items = index if isinstance(index, tuple) else (index,)
    for i in items:
        if isinstance(i, list) or (hasattr(i, "dtype") and i.dtype.kind in "iu"
                                   and getattr(i, "ndim", 0) > 0):
            return True
    return False


def _scatter_add(xp, target, index, values) -> None:
    if xp.__name__ == "numpy":
        xp.add.at(target, index, values)
    else:  # pragma: no cover - GPU
        import cupyx
        cupyx.scatter_add(target, index, values)


class GetItem(Function):
    """y = x[index];  dL/dx = zeros with dL/dy scatter-added at index"""

    @staticmethod
    def forward(ctx, x, *, index):
        ctx.shape, ctx.index = x.shape, index
        try:
            return x[index]
        except IndexError as e:
            raise IndexError(f"getitem: {e} (tensor of shape {x.shape})") from None

    @staticmethod
    def backward(ctx, grad):
        return IndexAddZeros.apply(grad, index=ctx.index, shape=ctx.shape)


class IndexAddZeros(Function):
    """y = zeros(shape) with g added at index (the backward of GetItem);  dL/dg = dL/dy[index]"""

    @staticmethod
    def forward(ctx, g, *, index, shape):
        ctx.index = index
        out = ctx.xp.zeros(shape, dtype=g.dtype)
        if _may_repeat(index):
            _scatter_add(ctx.xp, out, index, g)
        else:
            out[index] = g
        return out

    @staticmethod
    def backward(ctx, grad):
        return GetItem.apply(grad, index=ctx.index)


def _along_axis(xp, idx, axis):
    """Fancy-index tuple that picks idx[..., k, ...] along `axis` (like take_along_axis)."""
    nd = idx.ndim
    out = []
    for d in range(nd):
        if d == axis:
            out.append(idx)
        else:
            shape = [1] * nd
            shape[d] = idx.shape[d]
            out.append(xp.arange(idx.shape[d]).reshape(shape))
    return tuple(out)


class TakeAlongAxis(Function):
    """y = take_along_axis(x, idx, axis) (gather);  dL/dx = scatter-add of dL/dy at idx"""

    @staticmethod
    def forward(ctx, x, idx, *, axis):
        ctx.shape, ctx.axis = x.shape, axis
        ctx.save_for_backward(idx)
        return ctx.xp.take_along_axis(x, idx, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        (idx,) = ctx.saved_tensors
        base = Tensor._make(grad.xp.zeros(ctx.shape, dtype=grad.dtype))
        return ScatterAdd.apply(base, idx, grad, axis=ctx.axis), None


class ScatterAdd(Function):
    """y = x with src added at idx along axis (y[..idx[i]..] += src[i]);
    dL/dx = dL/dy,  dL/dsrc = take_along_axis(dL/dy, idx)"""

    @staticmethod
    def forward(ctx, x, idx, src, *, axis):
        ctx.axis = axis
        ctx.save_for_backward(idx)
        out = x.copy()
        _scatter_add(ctx.xp, out, _along_axis(ctx.xp, idx, axis), src)
        return out

    @staticmethod
    def backward(ctx, grad):
        (idx,) = ctx.saved_tensors
        need_src = ctx.needs_input_grad[2]
        gsrc = TakeAlongAxis.apply(grad, idx, axis=ctx.axis) if need_src else None
        return grad, None, gsrc


class IndexAdd(Function):
    """y = x;  y[index[i]] += src[i] along axis;  dL/dx = dL/dy, dL/dsrc = dL/dy[index]"""

    @staticmethod
    def forward(ctx, x, index, src, *, axis):
        ctx.sel = (slice(None),) * axis + (index,)
        out = x.copy()
        _scatter_add(ctx.xp, out, ctx.sel, src)
        return out

    @staticmethod
    def backward(ctx, grad):
        gsrc = GetItem.apply(grad, index=ctx.sel) if ctx.needs_input_grad[2] else None
        return grad, None, gsrc


# ---------------------------------------------------------------------- public functions
def getitem(x: Tensor, index) -> Tensor:
    return GetItem.apply(x, index=normalize_index(index))


def _index_array(x: Tensor, idx, op: str, size: int | None = None):
    """The index array; with `size`, every index must lie in [0, size) (PyTorch raises where
    NumPy would wrap a negative index around)."""
    arr = idx.array if isinstance(idx, Tensor) else x.xp.asarray(idx)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"{op}: indices must be integers, got dtype {arr.dtype}")
    if size is not None and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= size:
            raise IndexError(f"{op}: index {lo if lo < 0 else hi} is out of range for an axis "
                             f"of size {size} (indices must lie in [0, {size}))")
    return arr


def take_along_axis(x: Tensor, indices, axis: int) -> Tensor:
    axis = check_axis("take_along_axis", axis, x.ndim)
    idx = _index_array(x, indices, "take_along_axis", x.shape[axis] if x.ndim else 1)
    if idx.ndim != x.ndim:
        raise ValueError(f"take_along_axis: indices of shape {idx.shape} must have as many "
                         f"dimensions as the input {x.shape}")
    return TakeAlongAxis.apply(x, idx, axis=axis)


def gather(x: Tensor, axis: int, index, *, dim=None) -> Tensor:
    """PyTorch's gather(input, dim, index): out[i][j] = x[i][index[i][j]] along `axis`."""
    return take_along_axis(x, index, dim if dim is not None else axis)


def scatter_add(x: Tensor, axis: int, index, src: Tensor) -> Tensor:
    """PyTorch's scatter_add(input, dim, index, src), out of place; repeats accumulate."""
    axis = check_axis("scatter_add", axis, x.ndim)
    idx = _index_array(x, index, "scatter_add", x.shape[axis] if x.ndim else 1)
    if idx.shape != src.shape:
        raise ValueError(f"scatter_add: index shape {idx.shape} must equal src shape "
                         f"{src.shape}")
    return ScatterAdd.apply(x, idx, src, axis=axis)


def index_add(x: Tensor, axis: int, index, src: Tensor) -> Tensor:
    """out = x; out[..., index[i], ...] += src[..., i, ...] along `axis`; repeats accumulate."""
    axis = check_axis("index_add", axis, x.ndim)
    idx = _index_array(x, index, "index_add", x.shape[axis] if x.ndim else 1)
    if idx.ndim != 1:
        raise ValueError(f"index_add: index must be 1-D, got shape {idx.shape}")
    return IndexAdd.apply(x, idx, src, axis=axis)


def index_select(x: Tensor, axis: int, index) -> Tensor:
    axis = check_axis("index_select", axis, x.ndim)
    idx = _index_array(x, index, "index_select", x.shape[axis] if x.ndim else 1)
    return getitem(x, (slice(None),) * axis + (idx,))


def one_hot(indices, num_classes: int, dtype=None) -> Tensor:
    """one_hot(i)[..., c] = [i == c] (no gradient); float32 by default."""
    from ..tensor import get_default_dtype
    idx = indices.array if isinstance(indices, Tensor) else indices
    xp = indices.xp if isinstance(indices, Tensor) else __import__("numpy")
    idx = xp.asarray(idx)
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        raise ValueError(f"one_hot: indices must lie in [0, {num_classes}), got range "
                         f"[{int(idx.min())}, {int(idx.max())}]")
    eye = xp.eye(num_classes, dtype=dtype or get_default_dtype())
    return Tensor._make(eye[idx])


# ---------------------------------------------------------------------- embedding lookup
class _Lookup(Function):
    """y = weight[idx];  dL/dweight = rows of dL/dy scatter-added at idx, with the row
    padding_idx left at zero (it is a fixed "no token" vector, never trained)."""

    @staticmethod
    def forward(ctx, weight, *, idx, padding_idx):
        ctx.idx, ctx.shape, ctx.padding_idx = idx, weight.shape, padding_idx
        return weight[idx]

    @staticmethod
    def backward(ctx, grad):
        be = None if is_grad_enabled() else fast_backend(grad, op="embedding")
        if be is not None:
            # the scatter-add as one pass of whole rows (a Numba loop, or atomics on the
            # GPU) instead of np.add.at's element-at-a-time ufunc loop
            return Tensor._make(be.embedding_backward(ctx.idx, be.c(grad.array), ctx.shape[0],
                                                      ctx.padding_idx))
        g = IndexAddZeros.apply(grad, index=ctx.idx, shape=ctx.shape)          # (V, D)
        if ctx.padding_idx is not None:
            keep = grad.xp.ones((ctx.shape[0], 1), dtype=grad.dtype)
            keep[ctx.padding_idx] = 0
            g = g * Tensor._make(keep)
        return g


def embedding(idx, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` (V, D) picked by integer `idx` of any shape -> idx.shape + (D,)."""
    idx_arr = idx.array if isinstance(idx, Tensor) else weight.xp.asarray(idx)
    if idx_arr.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx_arr.dtype}")
    v = weight.shape[0]
    if idx_arr.size and (int(idx_arr.min()) < 0 or int(idx_arr.max()) >= v):
        lo, hi = int(idx_arr.min()), int(idx_arr.max())
        raise IndexError(f"embedding: index {lo if lo < 0 else hi} is out of range; indices "
                         f"must be in [0, {v}), got values in [{lo}, {hi}]")
    return _Lookup.apply(weight, idx=idx_arr, padding_idx=padding_idx)
