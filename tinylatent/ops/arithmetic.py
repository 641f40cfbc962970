"""Binary arithmetic, comparisons, selection and casts.

Every binary op broadcasts; the backward returns gradients in the broadcast shape and the
engine reduces them to each input's shape (autograd.unbroadcast), so no rule here sums.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor, get_default_dtype, is_float_dtype


def _coerce(a, b):
    """Apply the dtype rules of tensor.py to a binary op's operands.

    An int/bool tensor meeting a float tensor takes its dtype (NumPy would widen to float64).
    Python scalars pass through untouched: NumPy 2 treats them as weak, so they never widen;
    but a Python float meeting an int/bool tensor makes it the default float dtype (NumPy
    would give float64).
    """
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        if a.array.dtype is b.array.dtype:    # the common case (NumPy caches dtypes)
            return a, b
        fa, fb = is_float_dtype(a.array.dtype), is_float_dtype(b.array.dtype)
        if fa and not fb:
            b = cast(b, a.dtype)
        elif fb and not fa:
            a = cast(a, b.dtype)
    elif not ta and not tb:
        a = Tensor(a)
    elif ta:
        b = _scalar_or_operand(b, a)
        if isinstance(b, float) and not is_float_dtype(a.array.dtype):
            a = cast(a, get_default_dtype())
    else:
        a = _scalar_or_operand(a, b)
        if isinstance(a, float) and not is_float_dtype(b.array.dtype):
            b = cast(b, get_default_dtype())
    return a, b


def _scalar_or_operand(x, like: Tensor):
    return x if isinstance(x, (int, float, bool)) else _as_operand(x, like)


def _as_operand(x, like: Tensor):
    """Arrays and lists next to a tensor become tensors (float ones take its float dtype)."""
    arr = like.xp.asarray(x)
    if is_float_dtype(arr.dtype) or (is_float_dtype(like.dtype) and arr.dtype.kind in "iub"):
        arr = arr.astype(like.dtype if is_float_dtype(like.dtype) else arr.dtype, copy=False)
    return Tensor._make(arr)


class Add(Function):
    """z = a + b;  dz/da = 1, dz/db = 1"""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    """z = a - b;  dz/da = 1, dz/db = -1"""

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """z = a * b;  dz/da = b, dz/db = a"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (grad * b if need_a else None), (grad * a if need_b else None)


class Div(Function):
    """z = a / b;  dz/da = 1/b, dz/db = -a/b^2"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = grad / b if need_a else None
        gb = -grad * a / (b * b) if need_b else None
        return ga, gb


class Neg(Function):
    """z = -a;  dz/da = -1"""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad


class PowScalar(Function):
    """z = a^p for a constant p;  dz/da = p a^(p-1)"""

    @staticmethod
    def forward(ctx, a, *, p):
        ctx.save_for_backward(a)
        ctx.p = p
        if p == 2:
            return a * a
        return a ** p

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        p = ctx.p
        if p == 2:
            return grad * (2.0 * a)
        if p == 1:
            return grad
        if p == 0:   # d(a^0)/da = 0 everywhere, also at a = 0 (0 * 0^-1 would be NaN)
            return grad * 0.0
        return grad * (p * pow(a, p - 1))


class Pow(Function):
    """z = a^b;  dz/da = b a^(b-1),  dz/db = a^b log(a)   (a > 0 for the b-gradient)"""

    @staticmethod
    def forward(ctx, a, b):
        z = a ** b
        ctx.save_for_backward(a, b, z)
        return z

    @staticmethod
    def backward(ctx, grad):
        a, b, z = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = grad * b * a ** (b - 1) if need_a else None
        gb = grad * z * log(a) if need_b else None
        return ga, gb


class Maximum(Function):
    """z = max(a, b);  the gradient goes to the larger input; ties share it equally"""

    @staticmethod
    def forward(ctx, a, b):
        xp = ctx.xp
        z = xp.maximum(a, b)
        wa = (a > b).astype(z.dtype) + 0.5 * (a == b).astype(z.dtype)
        ctx.save_for_backward(wa)
        return z

    @staticmethod
    def backward(ctx, grad):
        (wa,) = ctx.saved_tensors
        return grad * wa, grad * (1.0 - wa)


class Minimum(Function):
    """z = min(a, b);  the gradient goes to the smaller input; ties share it equally"""

    @staticmethod
    def forward(ctx, a, b):
        xp = ctx.xp
        z = xp.minimum(a, b)
        wa = (a < b).astype(z.dtype) + 0.5 * (a == b).astype(z.dtype)
        ctx.save_for_backward(wa)
        return z

    @staticmethod
    def backward(ctx, grad):
        (wa,) = ctx.saved_tensors
        return grad * wa, grad * (1.0 - wa)


class Clamp(Function):
    """z = min(max(x, lo), hi);  dz/dx = 1 where lo <= x <= hi, else 0"""

    @staticmethod
    def forward(ctx, x, *, lo, hi):
        inside = ctx.xp.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        ctx.save_for_backward(inside)
        return ctx.xp.clip(x, lo, hi).astype(x.dtype, copy=False)   # (bfloat16 -> float32)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return where(inside, grad, 0.0)


class Where(Function):
    """z = cond ? a : b;  dz/da = cond, dz/db = not cond"""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        out = ctx.xp.where(cond, a, b)
        # ml_dtypes promotes a Python float before a bfloat16 array to float32: keep bfloat16
        dt = a.dtype if hasattr(a, "dtype") else getattr(b, "dtype", out.dtype)
        return out.astype(dt) if dt.name == "bfloat16" and out.dtype != dt else out

    @staticmethod
    def backward(ctx, grad):
        (cond,) = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[1:]
        return (None, where(cond, grad, 0.0) if need_a else None,
                where(cond, 0.0, grad) if need_b else None)


class Cast(Function):
    """z = x as another dtype;  the gradient is cast back"""

    @staticmethod
    def forward(ctx, x, *, dtype):
        ctx.src = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return cast(grad, ctx.src) if is_float_dtype(ctx.src) else None


class Clone(Function):
    """z = copy of x;  dz/dx = 1"""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


class Contiguous(Function):
    """z = x laid out in C order;  dz/dx = 1"""

    @staticmethod
    def forward(ctx, x):
        return ctx.xp.ascontiguousarray(x).reshape(x.shape)  # (keeps 0-d arrays 0-d)

    @staticmethod
    def backward(ctx, grad):
        return grad


class ToDevice(Function):
    """z = x copied to another device;  the gradient is copied back"""

    @staticmethod
    def forward(ctx, x, *, dev):
        from ..backend import device_of_array
        ctx.src = device_of_array(x)
        if dev.type == "cpu":
            return x.get() if hasattr(x, "get") and not isinstance(x, np.ndarray) else x
        xp = dev.xp
        with xp.cuda.Device(dev.index):
            return xp.asarray(x)

    @staticmethod
    def backward(ctx, grad):
        return to_device(grad, ctx.src)


# ---------------------------------------------------------------------- public functions
def add(a, b) -> Tensor:
    a, b = _coerce(a, b)
    return Add.apply(a, b)


def sub(a, b) -> Tensor:
    a, b = _coerce(a, b)
    return Sub.apply(a, b)


def mul(a, b) -> Tensor:
    a, b = _coerce(a, b)
    return Mul.apply(a, b)


def div(a, b) -> Tensor:
    """True division; integer operands give the default float dtype (as in PyTorch)."""
    a, b = _coerce(a, b)   # after this, a tensor operand is non-float only if both are
    if isinstance(a, Tensor) and not is_float_dtype(a.array.dtype):
        a = cast(a, get_default_dtype())
    if isinstance(b, Tensor) and not is_float_dtype(b.array.dtype):
        b = cast(b, get_default_dtype())
    return Div.apply(a, b)


def neg(a: Tensor) -> Tensor:
    return Neg.apply(a)


def pow(a, b) -> Tensor:  # noqa: A001 - PyTorch's name
    """a ** b for a tensor or scalar exponent (and a scalar base with a tensor exponent)."""
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if isinstance(b, float) and not is_float_dtype(a.dtype):
            a = cast(a, get_default_dtype())
        return PowScalar.apply(a, p=b)
    a, b = _coerce(a, b)
    return Pow.apply(a, b)


def maximum(a, b) -> Tensor:
    a, b = _coerce(a, b)
    return Maximum.apply(a, b)


def minimum(a, b) -> Tensor:
    a, b = _coerce(a, b)
    return Minimum.apply(a, b)


def clamp(x: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if x.dtype.kind in "iub" and any(isinstance(v, float) for v in (min, max)):
        x = cast(x, get_default_dtype())   # the dtype rule: integer with a Python float
    return Clamp.apply(x, lo=min, hi=max)


clip = clamp


def where(cond, a, b) -> Tensor:
    """cond ? a : b, elementwise with broadcasting (a, b tensors or scalars)."""
    c = cond.array if isinstance(cond, Tensor) else cond
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    if like is None:
        return Tensor._make(np.where(c, a, b))
    if not isinstance(a, Tensor) and not isinstance(a, (int, float)):
        a = _as_operand(a, like)
    if not isinstance(b, Tensor) and not isinstance(b, (int, float)):
        b = _as_operand(b, like)
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        a, b = _coerce(a, b)
    return Where.apply(Tensor._make(like.xp.asarray(c, dtype=bool)), a, b)


def masked_fill(x: Tensor, mask, value) -> Tensor:
    """x with `value` where mask is True (mask broadcasts to x); the gradient is 0 there."""
    m = mask.array if isinstance(mask, Tensor) else mask
    if getattr(m, "dtype", None) is None or m.dtype.kind != "b":
        raise TypeError(f"masked_fill: mask must be a bool tensor, got "
                        f"{getattr(m, 'dtype', type(m).__name__)}")
    if isinstance(value, Tensor):
        value = value.to(x.dtype)
    out = where(mask, value, x)
    return out if out.shape == x.shape else out.broadcast_to(x.shape)


def cast(x: Tensor, dtype) -> Tensor:
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    return Cast.apply(x, dtype=dtype)


def clone(x: Tensor) -> Tensor:
    return Clone.apply(x)


def contiguous(x: Tensor) -> Tensor:
    return Contiguous.apply(x)


def to_device(x: Tensor, dev) -> Tensor:
    return ToDevice.apply(x, dev=dev)


def compare(a, b, op: str) -> Tensor:
    """Elementwise comparison or logical op by NumPy name; no gradient."""
    xa = a.array if isinstance(a, Tensor) else a
    xb = b.array if isinstance(b, Tensor) else b
    t = a if isinstance(a, Tensor) else b
    if isinstance(a, Tensor) and isinstance(b, Tensor) and type(xa) is not type(xb):
        raise RuntimeError(f"{op}: tensors on {a.device} and {b.device}")
    return Tensor._make(t.xp.asarray(getattr(t.xp, op)(xa, xb)))  # (0-d gives a scalar)


def logical_not(a: Tensor) -> Tensor:
    return Tensor._make(a.xp.asarray(a.xp.logical_not(a.array)))


def eq(a, b) -> Tensor:
    return compare(a, b, "equal")


def isfinite(a: Tensor) -> Tensor:
    return Tensor._make(a.xp.asarray(a.xp.isfinite(a.array)))


def isnan(a: Tensor) -> Tensor:
    return Tensor._make(a.xp.asarray(a.xp.isnan(a.array)))


def allclose(a, b, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    xa = a.array if isinstance(a, Tensor) else a
    xb = b.array if isinstance(b, Tensor) else b
    return bool((a.xp if isinstance(a, Tensor) else np).allclose(xa, xb, rtol=rtol, atol=atol))


from .unary import log  # noqa: E402  (used in Pow.backward)
