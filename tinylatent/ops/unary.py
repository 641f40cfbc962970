"""Elementwise functions and activations.

Primitives are Functions; activations that are cheap compositions of primitives
(gelu's tanh form, softplus, logsigmoid) are written as compositions, so their gradients
(to any order) come for free.
"""
from __future__ import annotations

import math

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, get_default_dtype
from .fast import fast_backend, reference_vjp


_SPECIAL: dict = {}


def _special(xp):
    """scipy.special for NumPy arrays, cupyx.scipy.special for CuPy ones; imported on first
    use (not at `import tinylatent`) and then looked up, not re-imported, on every call."""
    mod = _SPECIAL.get(xp)
    if mod is None:
        if xp.__name__ == "numpy":
            import scipy.special as mod
        else:  # pragma: no cover - GPU
            import cupyx.scipy.special as mod
        _SPECIAL[xp] = mod
    return mod


class Exp(Function):
    """y = exp(x);  dy/dx = y"""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y


class Log(Function):
    """y = log(x);  dy/dx = 1/x"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Log1p(Function):
    """y = log(1 + x);  dy/dx = 1/(1 + x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log1p(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (x + 1.0)


class Expm1(Function):
    """y = exp(x) - 1;  dy/dx = y + 1"""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.expm1(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (y + 1.0)


class Sqrt(Function):
    """y = sqrt(x);  dy/dx = 1 / (2 y)"""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * 0.5 / y


class Rsqrt(Function):
    """y = 1/sqrt(x);  dy/dx = -y^3 / 2"""

    @staticmethod
    def forward(ctx, x):
        y = 1.0 / ctx.xp.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (-0.5) * y * y * y


class Abs(Function):
    """y = |x|;  dy/dx = sign(x)  (0 at 0)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(ctx.xp.sign(x))
        return ctx.xp.abs(x)

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * s


class Sin(Function):
    """y = sin(x);  dy/dx = cos(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * cos(x)


class Cos(Function):
    """y = cos(x);  dy/dx = -sin(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return -grad * sin(x)


class Tanh(Function):
    """y = tanh(x);  dy/dx = 1 - y^2"""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return TanhBackward.apply(grad, y)


class TanhBackward(Function):
    """gx = g (1 - y^2), Tanh's backward as one op (one node instead of three: tanh is
    everywhere and each op costs a few microseconds);  dgx/dg = 1 - y^2,  dgx/dy = -2 g y"""

    @staticmethod
    def forward(ctx, g, y):
        ctx.save_for_backward(g, y)
        return g * (1 - y * y)

    @staticmethod
    def backward(ctx, grad):
        g, y = ctx.saved_tensors
        need_g, need_y = ctx.needs_input_grad
        return (grad * (1.0 - y * y) if need_g else None), \
            (grad * g * y * (-2.0) if need_y else None)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x));  dy/dx = y (1 - y)

    Computed by scipy's expit, one ufunc that never overflows for large |x|.
    """

    @staticmethod
    def forward(ctx, x):
        y = _special(ctx.xp).expit(x).astype(x.dtype, copy=False)  # (float16 -> float64)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return SigmoidBackward.apply(grad, y)


class SigmoidBackward(Function):
    """gx = g y (1 - y), Sigmoid's backward as one op (see TanhBackward);
    dgx/dg = y (1 - y),  dgx/dy = g (1 - 2 y)"""

    @staticmethod
    def forward(ctx, g, y):
        ctx.save_for_backward(g, y)
        return g * (y * (1 - y))

    @staticmethod
    def backward(ctx, grad):
        g, y = ctx.saved_tensors
        need_g, need_y = ctx.needs_input_grad
        return (grad * (y * (1.0 - y)) if need_g else None), \
            (grad * g * (1.0 - 2.0 * y) if need_y else None)


class Relu(Function):
    """y = max(x, 0);  dy/dx = [x > 0]"""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (y.array > 0)


class LeakyRelu(Function):
    """y = x if x > 0 else slope * x;  dy/dx = 1 or slope"""

    @staticmethod
    def forward(ctx, x, *, slope):
        # the derivative in x's dtype directly (no float64 temporary), and y = x * dy/dx.
        # d = m + slope (1 - m) with m = [x > 0] in {0, 1} is exactly 1 or slope, and
        # branch-free: NumPy's where branches per element, and on the random signs of
        # pre-activations it mispredicts half the time (3.7 vs 0.5 ms on DCGAN's 64x64x14x14)
        m = (x > 0).astype(x.dtype)
        d = m + x.dtype.type(slope) * (1 - m)
        ctx.save_for_backward(d)
        return x * d

    @staticmethod
    def backward(ctx, grad):
        (d,) = ctx.saved_tensors
        return grad * d


class Elu(Function):
    """y = x if x > 0 else alpha (exp(x) - 1);  dy/dx = 1 or y + alpha"""

    @staticmethod
    def forward(ctx, x, *, alpha):
        xp = ctx.xp
        pos = x > 0
        # max(x, 0) + alpha expm1(min(x, 0)) is exactly the two branches (one term is 0), and
        # branch-free where NumPy's where mispredicts on random signs (see LeakyRelu)
        y = xp.maximum(x, 0) + alpha * xp.expm1(xp.minimum(x, 0))
        ctx.save_for_backward(pos, y)
        ctx.alpha = alpha
        return y

    @staticmethod
    def backward(ctx, grad):
        pos, y = ctx.saved_tensors
        from .arithmetic import where
        return where(pos, grad, grad * (y + ctx.alpha))


class Erf(Function):
    """y = erf(x);  dy/dx = 2/sqrt(pi) exp(-x^2)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _special(ctx.xp).erf(x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (2.0 / math.sqrt(math.pi)) * exp(-(x * x))


class Softplus(Function):
    """y = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), a form that never overflows;
    dy/dx = sigmoid(x)

    Four in-place ufunc passes: ~7x faster than logaddexp(0, x) on the CPU, and the
    Bernoulli log-likelihood of every VAE spends its time here.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        xp = ctx.xp
        y = xp.empty_like(x)   # out= keeps 0-d results arrays (NumPy returns scalars)
        xp.abs(x, out=y)
        xp.negative(y, out=y)
        xp.exp(y, out=y)
        xp.log1p(y, out=y)
        xp.add(y, xp.maximum(x, 0), out=y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * sigmoid(x)


# ---------------------------------------------------------------------- public functions
def _floating(x: Tensor) -> Tensor:
    """The dtype rule of floating functions (PyTorch's): an integer or bool input is promoted
    to the default float dtype; a floating input keeps its dtype."""
    if isinstance(x, Tensor) and x.array.dtype.kind in "iub":
        return Tensor._make(x.array.astype(get_default_dtype()))
    return x


def exp(x: Tensor) -> Tensor:
    return Exp.apply(_floating(x))


def log(x: Tensor) -> Tensor:
    return Log.apply(_floating(x))


def log1p(x: Tensor) -> Tensor:
    return Log1p.apply(_floating(x))


def expm1(x: Tensor) -> Tensor:
    return Expm1.apply(_floating(x))


def sqrt(x: Tensor) -> Tensor:
    return Sqrt.apply(_floating(x))


def rsqrt(x: Tensor) -> Tensor:
    return Rsqrt.apply(_floating(x))


def abs(x: Tensor) -> Tensor:  # noqa: A001 - PyTorch's name
    return Abs.apply(x)


def sin(x: Tensor) -> Tensor:
    return Sin.apply(_floating(x))


def cos(x: Tensor) -> Tensor:
    return Cos.apply(_floating(x))


def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(_floating(x))


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid.apply(_floating(x))


def relu(x: Tensor) -> Tensor:
    return Relu.apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return LeakyRelu.apply(_floating(x), slope=negative_slope)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return Elu.apply(_floating(x), alpha=alpha)


def erf(x: Tensor) -> Tensor:
    return Erf.apply(_floating(x))


class GeluFn(Function):
    """The exact GELU on a kernel backend, value and derivative in one pass:
        y = x Phi(x),  dy/dx = Phi(x) + x phi(x)   (kernels/numba/activation.py, activation.cu)
    so the backward is one multiply, gx = g dy/dx. The composite `gelu_reference` (erf, five
    array passes forward and more backward) ran 10x slower than PyTorch's fused GELU and
    dominated a Transformer step. Under create_graph the backward differentiates the
    reference, so higher derivatives are those of the gradchecked composite."""

    @staticmethod
    def forward(ctx, x, *, be):
        y, dydx = be.gelu(x)
        ctx.xp, ctx.dydx = be.xp, dydx
        ctx.save_for_backward(x)
        return y

    @staticmethod
    def backward(ctx, grad):
        if is_grad_enabled():
            (x,) = ctx.saved_tensors
            return reference_vjp(gelu_reference, (x,), grad)[0]
        return Tensor._make(ctx.xp.asarray(grad.array * ctx.dydx))  # 0-d stays an array


def gelu_reference(x: Tensor) -> Tensor:
    """x Phi(x) = x (1 + erf(x / sqrt 2)) / 2 in differentiable ops: the oracle of GeluFn."""
    return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU (Hendrycks & Gimpel 2016): x * Phi(x), exact (erf) or the tanh approximation.
    The exact one runs GeluFn on a kernel backend when one applies (float32/64; float16 and
    bfloat16 on the GPU)."""
    x = _floating(x)
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        return 0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    be = fast_backend(x, op="gelu")
    if be is not None:
        return GeluFn.apply(x, be=be)
    return gelu_reference(x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float | None = None) -> Tensor:
    """log(1 + exp(beta x)) / beta; with a threshold, x itself where beta x > threshold
    (PyTorch's F.softplus, whose default threshold is 20: the two differ there by less than
    log1p(exp(-20)) ~ 2e-9, since this form never overflows and needs no threshold)."""
    x = _floating(x)
    if beta <= 0:
        raise ValueError(f"softplus: beta must be positive, got {beta}")
    bx = x * beta if beta != 1.0 else x
    y = Softplus.apply(bx) / beta if beta != 1.0 else Softplus.apply(bx)
    if threshold is None:
        return y
    from .arithmetic import where
    return where(bx > threshold, x, y)


def logsigmoid(x: Tensor) -> Tensor:
    """log sigmoid(x) = -softplus(-x), stable for large |x|."""
    x = _floating(x)
    return -softplus(-x)


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x) (Swish)."""
    x = _floating(x)
    return x * sigmoid(x)


def sign(x: Tensor) -> Tensor:
    """sign(x); no gradient (it is zero almost everywhere)."""
    return Tensor._make(x.xp.asarray(x.xp.sign(x.array)))


# ------------------------------------------------------------ gamma-family special functions
class Lgamma(Function):
    """y = log|Gamma(x)|;  dy/dx = digamma(x) = psi^(0)(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _special(ctx.xp).gammaln(x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * Polygamma.apply(x, n=0)


class Polygamma(Function):
    """y = psi^(n)(x), the n-th derivative of digamma (n = 0: digamma itself);
    dy/dx = psi^(n+1)(x), so every order of derivative is one more Polygamma."""

    @staticmethod
    def forward(ctx, x, *, n):
        ctx.save_for_backward(x)
        ctx.n = n
        special = _special(ctx.xp)
        y = special.digamma(x) if n == 0 else special.polygamma(n, x)
        return ctx.xp.asarray(y).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * Polygamma.apply(x, n=ctx.n + 1)


def lgamma(x: Tensor) -> Tensor:
    """log|Gamma(x)| (the log-normaliser of Beta, Dirichlet and Gamma densities)."""
    return Lgamma.apply(_floating(x))


def digamma(x: Tensor) -> Tensor:
    """psi(x) = d/dx log Gamma(x)."""
    return Polygamma.apply(_floating(x), n=0)


def polygamma(n: int, x: Tensor) -> Tensor:
    """psi^(n)(x), n >= 0."""
    if int(n) != n or n < 0:
        raise ValueError(f"polygamma: n must be a non-negative integer, got {n!r}")
    return Polygamma.apply(_floating(x), n=int(n))
