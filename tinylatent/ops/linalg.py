"""Matrix products."""
from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor
from .arithmetic import _coerce
from .shape import Permute


class MatMul(Function):
    """C = A @ B over the last two axes (leading axes broadcast);
    dL/dA = dL/dC @ B^T,  dL/dB = A^T @ dL/dC"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = grad @ _mT(b) if need_a else None
        gb = _mT(a) @ grad if need_b else None
        return ga, gb


def _mT(t: Tensor) -> Tensor:
    """Transpose of the last two axes (what t.transpose(-1, -2) does, with less overhead:
    MatMul's backward runs it on every call)."""
    n = t.data.ndim
    return Permute.apply(t, tuple(range(n - 2)) + (n - 1, n - 2))


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """NumPy/PyTorch matmul: 1-D operands are promoted to matrices and the added axis
    removed from the result; batch axes broadcast."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        da, db = a.data, b.data
        if da.ndim == 2 and db.ndim == 2 and da.shape[1] == db.shape[0] \
                and da.dtype == db.dtype:
            return MatMul.apply(a, b)   # the common case, checked cheaply
    a, b = _coerce(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and "
                         f"{b.shape}; use * for scalars")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: dtypes differ ({a.dtype} @ {b.dtype}); cast one with "
                        ".to(dtype) first")
    ka, kb = a.shape[-1], (b.shape[-2] if b.ndim > 1 else b.shape[0])
    if ka != kb:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                         f"{ka} (last axis of the first) != {kb}")
    if a.ndim == 1 and b.ndim == 1:
        return (a * b).sum()
    if a.ndim == 1:
        return MatMul.apply(a.reshape(1, -1), b).squeeze(-2)
    if b.ndim == 1:
        return MatMul.apply(a, b.reshape(-1, 1)).squeeze(-1)
    try:
        return MatMul.apply(a, b)
    except ValueError:
        raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} do not "
                         "broadcast") from None


def outer(a: Tensor, b: Tensor) -> Tensor:
    return a.reshape(-1, 1) * b.reshape(1, -1)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b  (PyTorch's layout: weight is (out_features, in_features))."""
    y = matmul(x, weight.transpose(-1, -2))  # (..., in) @ (in, out) -> (..., out)
    return y + bias if bias is not None else y
