"""Matrix products."""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from .arithmetic import _coerce


class MatMul(Function):
    """C = op(A) @ op(B) over the last two axes (leading axes broadcast), where op
    transposes the last two axes when its flag (ta, tb) is set; plain A @ B by default.

        dL/dA = dL/dC @ B^T,   dL/dB = A^T @ dL/dC        (no flags)

    The flags let the backward be a MatMul itself, with no transpose ops (a matmul's backward
    runs on every training step): with A' = op(A), B' = op(B),
        dL/dA' = dL/dC @ B'^T  and  dL/dB' = A'^T @ dL/dC,
    and a transposed operand gets the transpose of that. Closed under differentiation, so
    every order of derivative stays a MatMul.
    """

    @staticmethod
    def forward(ctx, a, b, *, ta=False, tb=False):
        ctx.save_for_backward(a, b)
        ctx.ta, ctx.tb = ta, tb
        c = (a.swapaxes(-1, -2) if ta else a) @ (b.swapaxes(-1, -2) if tb else b)
        # NumPy multiplies bfloat16 (ml_dtypes) in float32 and returns float32: round once
        return c if c.dtype == a.dtype else c.astype(a.dtype)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[:2]
        ta, tb = ctx.ta, ctx.tb
        ga = gb = None
        if need_a:   # dA' = dC op(B)^T;  if A was transposed, dA = dA'^T = op(B) dC^T
            ga = MatMul.apply(b, grad, ta=tb, tb=True) if ta else \
                MatMul.apply(grad, b, ta=False, tb=not tb)
        if need_b:   # dB' = op(A)^T dC;  if B was transposed, dB = dB'^T = dC^T op(A)
            gb = MatMul.apply(grad, a, ta=True, tb=ta) if tb else \
                MatMul.apply(a, grad, ta=not ta, tb=False)
        return ga, gb


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """NumPy/PyTorch matmul: 1-D operands are promoted to matrices and the added axis
    removed from the result; batch axes broadcast."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        da, db = a.array, b.array
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
    """y = x W^T + b  (PyTorch's layout: weight is (out_features, in_features)).

    A 2-D weight goes to MatMul with its transpose flag: the weight gradient then comes out
    as dW = dy^T x, (out, in) contiguous, where a transpose op would hand back a transposed
    view that the leaf's .grad copies again (a 2.5 MB strided copy a step for DCGAN's
    generator input layer)."""
    if isinstance(x, Tensor) and isinstance(weight, Tensor) and weight.ndim == 2 \
            and x.ndim >= 2 and x.dtype == weight.dtype and x.shape[-1] == weight.shape[1]:
        # one 2-D GEMM: NumPy's stacked matmul of (B, T, in) with a transposed 2-D weight
        # does not reach BLAS (10x slower for (20, 35, 200) @ (200, 7081)), nor does the
        # weight gradient it implies (a batched product summed over B)
        lead = x.shape[:-1]
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])               # (N, in)
        y = MatMul.apply(x2, weight, tb=True)                               # (N, out)
        if x.ndim > 2:
            y = y.reshape(*lead, weight.shape[0])                           # (..., out)
        return y + bias if bias is not None else y
    y = matmul(x, weight.transpose(-1, -2))  # (..., in) @ (in, out) -> (..., out)
    return y + bias if bias is not None else y


def normalize(x: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, *,
              axis=None) -> Tensor:
    """x / max(||x||_p, eps) along `dim` (or `axis`), PyTorch's F.normalize: unit-norm
    embeddings for the contrastive losses. The one normalize (tl.nn.functional.normalize
    and tl.ops.contrastive.normalize are this function)."""
    dim = dim if axis is None else axis
    # max(||x||_p, eps) computed as max(sum |x|^p, eps^p)^(1/p), the same value: the clamp
    # comes before the root, so a zero vector gets a zero gradient, not 0 * inf = NaN
    if p == 2.0:
        norm = (x * x).sum(axis=dim, keepdims=True).clamp(min=eps * eps).sqrt()
    else:
        norm = (x.abs() ** p).sum(axis=dim, keepdims=True).clamp(min=eps ** p) ** (1.0 / p)
    return x / norm


# ---------------------------------------------------------------------- inverse, log|det|
class MatrixInverse(Function):
    """B = A^{-1};  dL/dA = -B^T (dL/dB) B^T"""

    @staticmethod
    def forward(ctx, a):
        b = ctx.xp.linalg.inv(a)
        ctx.save_for_backward(b)
        return b

    @staticmethod
    def backward(ctx, grad):
        (b,) = ctx.saved_tensors
        bt = b.transpose(-1, -2)
        return -(bt @ grad @ bt)


class LogAbsDet(Function):
    """y = log|det A|;  dy/dA = A^{-T}  (Jacobi's formula)"""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        _, value = ctx.xp.linalg.slogdet(a)
        return value

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad.reshape(grad.shape + (1, 1)) * matrix_inverse(a).transpose(-1, -2)


def _check_square(name: str, a: Tensor) -> None:
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name}: expected square matrices (..., n, n), got shape {a.shape}")


def matrix_inverse(a: Tensor) -> Tensor:
    _check_square("matrix_inverse", a)
    return MatrixInverse.apply(a)


def logabsdet(a: Tensor) -> Tensor:
    _check_square("logabsdet", a)
    return LogAbsDet.apply(a)


# ---------------------------------------------------------------------- PyTorch's products
def mm(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product of two 2-D tensors (PyTorch's mm: no broadcasting, no 1-D operands)."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm: expected 2-D matrices, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix product (B, n, m) @ (B, m, p) -> (B, n, p), no broadcasting."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: expected (B, n, m) and (B, m, p) with one B, got shapes "
                         f"{a.shape} and {b.shape}")
    return matmul(a, b)


class Einsum(Function):
    """y = einsum(spec, x_1, ..., x_k);  dL/dx_i = einsum(out, x_j (j != i) -> s_i)(dL/dy),
    broadcast over the letters of s_i that appear in no other operand nor the output (they
    were summed away from x_i alone)."""

    @staticmethod
    def forward(ctx, *xs, inputs, output):
        ctx.save_for_backward(*xs)
        ctx.subscripts, ctx.output = inputs, output
        spec = ",".join(inputs) + "->" + output
        if any(x.dtype.name == "bfloat16" for x in xs) and ctx.xp is np:
            # NumPy's einsum rejects ml_dtypes' bfloat16: contract in float32, round once
            return np.einsum(spec, *[x.astype(np.float32) for x in xs]).astype(xs[0].dtype)
        return ctx.xp.einsum(spec, *xs)

    @staticmethod
    def backward(ctx, grad):
        xs = ctx.saved_tensors
        grads = []
        for i, (x, s) in enumerate(zip(xs, ctx.subscripts)):
            if not ctx.needs_input_grad[i]:
                grads.append(None)
                continue
            others = [(ctx.subscripts[j], xs[j]) for j in range(len(xs)) if j != i]
            seen = set(ctx.output).union(*[set(sj) for sj, _ in others])
            kept = "".join(c for c in s if c in seen)   # letters the gradient can carry
            specs = [ctx.output] + [sj for sj, _ in others]
            g = einsum(",".join(specs) + "->" + kept, grad, *[xj for _, xj in others])
            if kept != s:   # letters summed in x_i alone: d/dx is 1 along them
                g = g.reshape([x.shape[k] if c in seen else 1 for k, c in enumerate(s)])
                g = g.expand(*x.shape)
            grads.append(g)
        return tuple(grads)


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation (np.einsum / torch.einsum) over explicit letters; operands may also
    be given as one list. Ellipses and a letter repeated within one operand (diagonals) are
    not supported and say so."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    if "." in eq:
        raise NotImplementedError(f"einsum: ellipsis ('...') is not supported, got '{equation}'"
                                  "; write the batch letters out")
    lhs, arrow, out = eq.partition("->")
    inputs = tuple(lhs.split(","))
    if len(inputs) != len(operands):
        raise ValueError(f"einsum: '{equation}' names {len(inputs)} operands, got "
                         f"{len(operands)}")
    for s, x in zip(inputs, operands):
        if len(s) != x.ndim:
            raise ValueError(f"einsum: operand '{s}' has {len(s)} letters but shape {x.shape}")
        if len(set(s)) != len(s):
            raise NotImplementedError(f"einsum: repeated letter in operand '{s}' (a diagonal) "
                                      "is not supported")
    if not arrow:   # implicit output: the letters seen once, in alphabetical order
        letters = "".join(inputs)
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    operands = [o if isinstance(o, Tensor) else Tensor(o) for o in operands]
    return Einsum.apply(*operands, inputs=inputs, output=out)


# ---------------------------------------------------------------------- norms and distances
def vector_norm(x: Tensor, ord: float = 2, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A002
    """(sum |x|^p)^(1/p) over `dim` (all entries when None); ord=inf: max |x|, ord=0: the
    number of nonzeros. The gradient of the 2-norm at x = 0 is taken as 0, as in PyTorch."""
    import math
    if ord == 2:
        sq = (x * x).sum(dim, keepdim)
        safe = ops.where(sq > 0, sq, 1.0)
        return ops.where(sq > 0, safe.sqrt(), 0.0)
    if ord == 1:
        return x.abs().sum(dim, keepdim)
    if ord == math.inf:
        return x.abs().amax(dim, keepdim)
    if ord == -math.inf:
        return x.abs().amin(dim, keepdim)
    if ord == 0:
        return (x != 0).to(x.dtype).sum(dim, keepdim)
    return (x.abs() ** ord).sum(dim, keepdim) ** (1.0 / ord)


def norm(x: Tensor, p="fro", dim=None, keepdim: bool = False) -> Tensor:
    """PyTorch's Tensor.norm: the vector p-norm over `dim` (all entries by default); 'fro'
    is the 2-norm of the flattened entries ('nuc' is tl.linalg.matrix_norm's)."""
    if p == "fro" or p is None:
        p = 2
    if isinstance(p, str):
        raise ValueError(f"norm: p={p!r} is not a vector norm; use tl.linalg.matrix_norm")
    return vector_norm(x, p, dim, keepdim)


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0) -> Tensor:
    """Pairwise p-norm distances between the rows of x1 (..., P, D) and x2 (..., R, D)
    -> (..., P, R); the gradient at a zero distance is 0."""
    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise ValueError(f"cdist: expected (..., P, D) and (..., R, D), got shapes {x1.shape} "
                         f"and {x2.shape}")
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)                   # (..., P, R, D)
    return vector_norm(diff, p, dim=-1)


from .. import ops  # noqa: E402  (where, amax: ops imports this module first)


def dot(a: Tensor, b: Tensor) -> Tensor:
    """<a, b> of two 1-D tensors of the same length (PyTorch's torch.dot)."""
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"dot: expects two 1-D tensors of the same size, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return (a * b).sum()
