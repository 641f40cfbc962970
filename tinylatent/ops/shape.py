"""Shape ops: views and rearrangements; each backward is the inverse rearrangement."""
from __future__ import annotations

import builtins
import math

from ..autograd import Function
from ..tensor import Tensor
from .axis_check import check_axes, check_axis


_SMALL_EXPAND = 4096   # elements; see Expand


def broadcast_array(xp, x, shape: tuple):
    """x broadcast to `shape`: a read-only view, or for a small result a new array (see
    Expand)."""
    if math.prod(shape) <= _SMALL_EXPAND:
        out = xp.empty(shape, dtype=x.dtype)
        out[...] = x
        return out
    return xp.broadcast_to(x, shape)


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


class Reshape(Function):
    """y = x viewed with a new shape;  the gradient is reshaped back"""

    @staticmethod
    def forward(ctx, x, *, shape):
        ctx.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into shape {tuple(shape)}") from None

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


class Permute(Function):
    """y = x with axes reordered by `perm`;  the gradient is permuted by the inverse"""

    @staticmethod
    def forward(ctx, x, *, perm):
        ctx.perm = perm
        return x.transpose(perm)

    @staticmethod
    def backward(ctx, grad):
        inv = [0] * len(ctx.perm)
        for i, p in enumerate(ctx.perm):
            inv[p] = i
        return grad.permute(tuple(inv))


class Expand(Function):
    """y = x broadcast to `shape`;  the engine's unbroadcast sums back

    A large result is a read-only view (no copy). A small one is filled into a new array:
    NumPy's broadcast_to spends ~3 us in Python, more than copying a few thousand numbers,
    and Sum's backward expands on every call.
    """

    @staticmethod
    def forward(ctx, x, *, shape):
        try:
            if len(shape) < x.ndim:
                raise ValueError
            return broadcast_array(ctx.xp, x, shape)
        except ValueError:
            raise ValueError(f"expand: cannot broadcast shape {x.shape} to {tuple(shape)}") \
                from None

    @staticmethod
    def backward(ctx, grad):
        return grad


class Cat(Function):
    """y = concatenation of inputs along an axis;  each input gets its slice of the gradient"""

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        ctx.sizes = [x.shape[axis] for x in xs]
        return ctx.xp.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        out, start = [], 0
        lead = (slice(None),) * ctx.axis
        for n, need in zip(ctx.sizes, ctx.needs_input_grad):
            out.append(grad[lead + (slice(start, start + n),)] if need else None)
            start += n
        return tuple(out)


class Pad(Function):
    """y = x padded with a constant;  the gradient is the interior slice"""

    @staticmethod
    def forward(ctx, x, *, widths, value):
        ctx.widths = widths
        return ctx.xp.pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, grad):
        sl = tuple(slice(lo, grad.shape[i] - hi) for i, (lo, hi) in enumerate(ctx.widths))
        return grad[sl]


class Flip(Function):
    """y = x reversed along axes;  the gradient is reversed back"""

    @staticmethod
    def forward(ctx, x, *, axes):
        ctx.axes = axes
        return ctx.xp.flip(x, axis=axes)

    @staticmethod
    def backward(ctx, grad):
        return grad.flip(ctx.axes)


class Roll(Function):
    """y = x rolled by `shift` along `axis`;  the gradient is rolled by -shift"""

    @staticmethod
    def forward(ctx, x, *, shift, axis):
        ctx.shift, ctx.axis = shift, axis
        return ctx.xp.roll(x, shift, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        neg = tuple(-s for s in ctx.shift) if isinstance(ctx.shift, tuple) else -ctx.shift
        return grad.roll(neg, ctx.axis)


class TriMask(Function):
    """y = lower (tril) or upper (triu) triangle of the last two axes;  the same mask on
    the gradient"""

    @staticmethod
    def forward(ctx, x, *, k, lower):
        ctx.k, ctx.lower = k, lower
        return ctx.xp.tril(x, k) if lower else ctx.xp.triu(x, k)

    @staticmethod
    def backward(ctx, grad):
        return TriMask.apply(grad, k=ctx.k, lower=ctx.lower)


# ---------------------------------------------------------------------- public functions
def reshape(x: Tensor, *shape) -> Tensor:
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    return Reshape.apply(x, shape=shape)


def view(x: Tensor, *shape) -> Tensor:
    """reshape that never copies: the result shares x's memory, so writes through it reach x.
    Where that is impossible (a non-contiguous x, e.g. a transpose) it raises, as PyTorch
    does; reshape() copies instead."""
    y = reshape(x, *shape)
    if y is not x and y.array.size and not x.xp.may_share_memory(y.array, x.array):
        raise RuntimeError(f"view: a tensor of shape {x.shape} with strides "
                           f"{x.array.strides} cannot be viewed as shape {tuple(y.shape)} "
                           "without copying (it is not contiguous); use .reshape(...), "
                           "which copies, or call .contiguous() first")
    return y


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = check_axis("flatten", start_dim, x.ndim), check_axis("flatten", end_dim, x.ndim)
    n = 1
    for d in x.shape[s:e + 1]:
        n *= d
    return reshape(x, x.shape[:s] + (n,) + x.shape[e + 1:])


def permute(x: Tensor, *perm) -> Tensor:
    perm = tuple(check_axis("permute", p, x.ndim) for p in _shape_arg(perm))
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"permute: {perm} is not a permutation of the {x.ndim} axes of "
                         f"shape {x.shape}")
    return Permute.apply(x, perm=perm)


def transpose(x: Tensor, dim0: int = -2, dim1: int = -1) -> Tensor:
    """Swap two axes (the last two by default)."""
    dim0, dim1 = check_axis("transpose", dim0, x.ndim), check_axis("transpose", dim1, x.ndim)
    perm = list(range(x.ndim))
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return Permute.apply(x, perm=tuple(perm))


swapaxes = transpose


def expand(x: Tensor, *shape) -> Tensor:
    """Broadcast to `shape`; -1 keeps a dimension (PyTorch's expand)."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    shape = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
    if shape == x.shape:
        return x
    return Expand.apply(x, shape=shape)


def broadcast_to(x: Tensor, shape) -> Tensor:
    return expand(x, tuple(shape))


def squeeze(x: Tensor, axis=None, *, dim=None) -> Tensor:
    axis = dim if dim is not None else axis
    if axis is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    axes = set(check_axes("squeeze", axis, x.ndim))
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1)))


def unsqueeze(x: Tensor, axis: int, *, dim=None) -> Tensor:
    axis = dim if dim is not None else axis
    axis = check_axis("unsqueeze", axis, x.ndim, extra=1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def cat(tensors, axis: int = 0, *, dim=None) -> Tensor:
    axis = dim if dim is not None else axis
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    nd = tensors[0].ndim
    axis = check_axis("cat", axis, nd)
    for i, t in enumerate(tensors):
        if t.ndim != nd or any(a != b for j, (a, b) in enumerate(zip(t.shape, tensors[0].shape))
                               if j != axis):
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, incompatible with "
                             f"{tensors[0].shape} along axis {axis}")
    if len(tensors) == 1:
        return tensors[0]
    from .arithmetic import cast
    dt = tensors[0].xp.result_type(*[t.dtype for t in tensors])
    tensors = [cast(t, dt) for t in tensors]
    return Cat.apply(*tensors, axis=axis)


concatenate = cat


def stack(tensors, axis: int = 0, *, dim=None) -> Tensor:
    axis = dim if dim is not None else axis
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    axis = check_axis("stack", axis, tensors[0].ndim, extra=1)
    return cat([unsqueeze(t, axis) for t in tensors], axis=axis)


def split(x: Tensor, split_size_or_sections, axis: int = 0, *, dim=None) -> tuple:
    """PyTorch's split: an int gives chunks of that size, a list gives those sizes."""
    axis = check_axis("split", dim if dim is not None else axis, x.ndim)
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} do not add up to {n} (axis {axis} of "
                             f"shape {x.shape})")
    out, start = [], 0
    lead = (slice(None),) * axis
    for s in sizes:
        out.append(x[lead + (slice(start, start + s),)])
        start += s
    return tuple(out)


def chunk(x: Tensor, chunks: int, axis: int = 0, *, dim=None) -> tuple:
    axis = check_axis("chunk", dim if dim is not None else axis, x.ndim)
    n = x.shape[axis]
    size = -(-n // chunks)
    return split(x, size, axis)


def pad(x: Tensor, pad_widths, mode: str = "constant", value: float | None = None) -> Tensor:
    """Padding (PyTorch's F.pad). `pad_widths` is NumPy-style ((lo, hi) per axis) or
    PyTorch-style (a flat tuple (left, right, top, bottom, ...) starting from the last axis).

    mode "constant" fills with `value` (0 by default); the others read the input itself,
    for an axis of size n at padded positions i = -lo, ..., n - 1 + hi:
        "reflect"    x[r(i)], r mirrors at the edges without repeating them (|i|, then
                     2(n - 1) - i past the end): needs lo, hi < n;
        "replicate"  x[clip(i, 0, n - 1)], the edge values repeated;
        "circular"   x[i mod n], the signal wrapped around: needs lo, hi <= n.
    Those are index selections, so their derivatives (scatter-adds) exist to every order."""
    pw = list(pad_widths)
    if pw and isinstance(pw[0], int):
        if len(pw) % 2 or len(pw) // 2 > x.ndim:
            raise ValueError(f"pad: {pad_widths} is not a valid PyTorch-style padding for "
                             f"shape {x.shape}")
        pairs = [(pw[i], pw[i + 1]) for i in range(0, len(pw), 2)]
        widths = [(0, 0)] * (x.ndim - len(pairs)) + pairs[::-1]
    else:
        widths = [tuple(p) for p in pw]
        if len(widths) != x.ndim:
            raise ValueError(f"pad: expected {x.ndim} (lo, hi) pairs for shape {x.shape}, got "
                             f"{len(widths)}")
    if mode == "constant":
        return Pad.apply(x, widths=tuple(widths), value=0.0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or "
                         f"'circular', got {mode!r}")
    if value not in (None, 0, 0.0):
        raise ValueError(f"pad: a fill value applies only to mode 'constant', not {mode!r}")
    from .indexing import index_select
    np_ = __import__("numpy")
    for axis, (lo, hi) in enumerate(widths):
        if lo == 0 and hi == 0:
            continue
        n = x.shape[axis]
        if lo < 0 or hi < 0:
            raise ValueError(f"pad: mode {mode!r} needs non-negative padding, got ({lo}, {hi}) "
                             f"for axis {axis}")
        limit = n - 1 if mode == "reflect" else n
        if mode != "replicate" and max(lo, hi) > limit or n == 0:
            raise ValueError(f"pad: {mode} padding ({lo}, {hi}) of axis {axis} needs padding "
                             f"{'<' if mode == 'reflect' else '<='} the axis size {n} "
                             f"(shape {x.shape})")
        i = np_.arange(-lo, n + hi)
        if mode == "reflect":
            i = np_.abs(i)
            i = np_.where(i > n - 1, 2 * (n - 1) - i, i)
        elif mode == "replicate":
            i = np_.clip(i, 0, n - 1)
        else:
            i = i % n
        x = index_select(x, axis, x.xp.asarray(i))
    return x


def flip(x: Tensor, axis=None, *, dims=None) -> Tensor:
    axis = dims if dims is not None else axis
    axes = check_axes("flip", axis, x.ndim)
    return Flip.apply(x, axes=axes)


def roll(x: Tensor, shifts, axis=None, *, dims=None) -> Tensor:
    axis = dims if dims is not None else axis
    if isinstance(shifts, list):
        shifts = tuple(shifts)
    if axis is not None:
        axis = check_axis("roll", axis, x.ndim) if isinstance(axis, int) else \
            tuple(check_axis("roll", a, x.ndim) for a in axis)
    return Roll.apply(x, shift=shifts, axis=axis)


def tril(x: Tensor, k: int = 0, *, diagonal=None) -> Tensor:
    return TriMask.apply(x, k=diagonal if diagonal is not None else k, lower=True)


def triu(x: Tensor, k: int = 0, *, diagonal=None) -> Tensor:
    return TriMask.apply(x, k=diagonal if diagonal is not None else k, lower=False)



# ---------------------------------------------------------------------- PyTorch's tiling
def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    """x[..., start:start + length, ...] along `dim` (a view, as x[...])."""
    n = x.shape[dim]
    start = start + n if start < 0 else start
    if not (0 <= start and length >= 0 and start + length <= n):
        raise IndexError(f"narrow: start={start}, length={length} out of range for dim {dim} "
                         f"of shape {x.shape}")
    index = (slice(None),) * (dim % x.ndim) + (slice(start, start + length),)
    return x[index]


def repeat(x: Tensor, *sizes) -> Tensor:
    """Tile x `sizes[i]` times along each axis (np.tile; PyTorch's Tensor.repeat); extra
    leading sizes add axes. Built from reshape + expand so the gradient sums the tiles."""
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: need at least {x.ndim} sizes for shape {x.shape}, got "
                         f"{sizes}")
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    inter = []
    for r, n in zip(sizes, shape):
        inter += [1, n]
    y = x.reshape(*inter)                                        # (1, n0, 1, n1, ...)
    big = []
    for r, n in zip(sizes, shape):
        big += [r, n]
    y = y.expand(*big)                                           # (r0, n0, r1, n1, ...)
    return y.reshape(*[r * n for r, n in zip(sizes, shape)])


def repeat_interleave(x: Tensor, repeats, dim: int | None = None) -> Tensor:
    """Each entry repeated `repeats` times along `dim` (flattened when None): [a, b] with 2
    gives [a, a, b, b]. repeats may be an int or a tensor of one count per entry."""
    if dim is None:
        x, dim = x.reshape(-1), 0
    dim = dim % x.ndim
    if isinstance(repeats, int):
        y = x.unsqueeze(dim + 1)                                 # (..., n, 1, ...)
        shape = list(y.shape)
        shape[dim + 1] = repeats
        y = y.expand(*shape)                                     # (..., n, r, ...)
        out = list(x.shape)
        out[dim] *= repeats
        return y.reshape(*out)
    counts = repeats.array if isinstance(repeats, Tensor) else x.xp.asarray(repeats)
    index = x.xp.repeat(x.xp.arange(x.shape[dim]), counts)
    return x.index_select(dim, Tensor._make(index))


def pixel_shuffle(x: Tensor, upscale_factor: int) -> Tensor:
    """(*, C r^2, H, W) -> (*, C, H r, W r), out[c, h r + i, w r + j] = x[c r^2 + i r + j,
    h, w]: sub-pixel convolution's rearrangement (Shi et al. 2016, Eq. 4)."""
    r = int(upscale_factor)
    if x.ndim < 3 or r < 1 or x.shape[-3] % (r * r):
        raise ValueError(f"pixel_shuffle: need (*, C*r^2, H, W) with C*r^2 divisible by "
                         f"r^2={r * r}, got shape {tuple(x.shape)} and upscale_factor={r}")
    *lead, c, h, w = x.shape
    k = len(lead)
    y = x.reshape(*lead, c // (r * r), r, r, h, w)                 # (*, C, r, r, H, W)
    y = y.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)        # (*, C, H, r, W, r)
    return y.reshape(*lead, c // (r * r), h * r, w * r)            # (*, C, H r, W r)


def pixel_unshuffle(x: Tensor, downscale_factor: int) -> Tensor:
    """The inverse of pixel_shuffle: (*, C, H r, W r) -> (*, C r^2, H, W)."""
    r = int(downscale_factor)
    if x.ndim < 3 or r < 1 or x.shape[-2] % r or x.shape[-1] % r:
        raise ValueError(f"pixel_unshuffle: need (*, C, H, W) with H and W divisible by "
                         f"{r}, got shape {tuple(x.shape)}")
    *lead, c, hr, wr = x.shape
    k, h, w = len(lead), hr // r, wr // r
    y = x.reshape(*lead, c, h, r, w, r)                            # (*, C, H, r, W, r)
    y = y.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)        # (*, C, r, r, H, W)
    return y.reshape(*lead, c * r * r, h, w)                       # (*, C r^2, H, W)


class _Unbind(Function):
    """(x[..., i, ...] for i along `dim`): views of x, one output each.

    Backward: the slices' gradients written into one array of x's shape (zeros where none
    arrived), in one pass. Indexing each slice separately would give every slice its own
    backward that builds a zero array of x's whole shape: O(n^2) for n slices, which is what
    an RNN over T time steps of one (T, B, .) projection pays. Under create_graph the
    backward is `stack` of Tensors (zeros for the missing), so every order exists."""

    @staticmethod
    def forward(ctx, x, *, dim):
        ctx.dim, ctx.shape = dim, x.shape
        return tuple(x[(slice(None),) * dim + (i,)] for i in range(x.shape[dim]))

    @staticmethod
    def backward(ctx, *grads):
        from .. import autograd
        dim = ctx.dim
        ref = next(g for g in grads if g is not None)
        if autograd.is_grad_enabled():
            from ..tensor import zeros_like
            return stack([zeros_like(ref) if g is None else g
                          for g in grads], dim)
        out = ctx.xp.zeros(ctx.shape, dtype=ref.array.dtype)
        for i, g in enumerate(grads):
            if g is not None:
                out[(slice(None),) * dim + (i,)] = g.array
        return Tensor._make(out)


def unbind(x: Tensor, dim: int = 0) -> tuple:
    """The slices of x along dim, that axis removed: x[i] for each i (PyTorch's unbind).
    One op with one output per slice (see _Unbind: its backward is one pass)."""
    dim = check_axis("unbind", dim, x.ndim)
    if x.shape[dim] == 0:
        return ()
    out = _Unbind.apply(x, dim=dim)
    return out if isinstance(out, tuple) else (out,)


def diagonal(x: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal x[..., i, i + offset] of the (dim1, dim2) planes, as the last axis
    (PyTorch's torch.diagonal); an index selection, so its derivative scatters back."""
    import numpy as np
    if x.ndim < 2:
        raise ValueError(f"diagonal: needs at least 2 dimensions, got shape {tuple(x.shape)}")
    d1, d2 = check_axis("diagonal", dim1, x.ndim), check_axis("diagonal", dim2, x.ndim)
    if d1 == d2:
        raise ValueError(f"diagonal: dim1 and dim2 must differ, got {dim1} and {dim2}")
    rest = [a for a in range(x.ndim) if a not in (d1, d2)]
    y = x.permute(*rest, d1, d2)                                  # (..., n1, n2)
    n1, n2 = y.shape[-2], y.shape[-1]
    start_r, start_c = max(-offset, 0), max(offset, 0)
    k = max(min(n1 - start_r, n2 - start_c), 0)
    r = np.arange(start_r, start_r + k)
    return y[..., r, r + (start_c - start_r)]                     # (..., k)


_diagonal = diagonal     # diag's argument is named `diagonal`, as PyTorch's


def diag(x: Tensor, diagonal: int = 0) -> Tensor:
    """1-D x: the square matrix with x on its `diagonal`-th diagonal; 2-D x: that diagonal
    of x (PyTorch's torch.diag)."""
    import numpy as np
    if x.ndim == 2:
        return _diagonal(x, diagonal)
    if x.ndim != 1:
        raise ValueError(f"diag: expects a 1-D or 2-D tensor, got shape {tuple(x.shape)}")
    from .indexing import index_add
    n = x.shape[0] + abs(diagonal)
    i = np.arange(x.shape[0])
    flat = (i + max(-diagonal, 0)) * n + i + max(diagonal, 0)     # row-major positions
    zeros = Tensor._make(x.xp.zeros(n * n, dtype=x.dtype))
    return index_add(zeros, 0, x.xp.asarray(flat), x).reshape(n, n)
