"""Matrix decompositions and solves with their derivatives: solve, cholesky, eigh, svd, qr,
slogdet, det (tl.linalg exposes them under PyTorch's names). Every backward is written in
Tensor ops (these functions, matmul, tril), so second derivatives work too.

Conventions follow PyTorch: batched over leading axes, reduced ("economic") SVD and QR,
eigh reads the lower triangle of a symmetric matrix. Derivatives of eigh/svd assume
distinct eigen/singular values (the formulas divide by their differences), as PyTorch's do.
"""
from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor
from .linalg import _check_square, logabsdet, matrix_inverse


def _mT(x: Tensor) -> Tensor:
    return x.transpose(-1, -2)


def _eye_like(x: Tensor, n: int) -> Tensor:
    return Tensor._make(x.xp.eye(n, dtype=x.dtype))


def _or_zeros(g, like: Tensor) -> Tensor:
    """The gradient of an output nobody used arrives as None: read it as zeros."""
    return g if g is not None else Tensor._make(like.xp.zeros(like.shape, like.dtype))


def diag_embed(d: Tensor) -> Tensor:
    """(..., n) -> (..., n, n) with d on the diagonal (PyTorch's diag_embed)."""
    return d.unsqueeze(-1) * _eye_like(d, d.shape[-1])          # (..., n, 1) * (n, n)


def _off_diagonal_inverse(d: Tensor) -> Tensor:
    """F_ij = 1 / (d_j - d_i) off the diagonal, 0 on it; d: (..., n)."""
    diff = d.unsqueeze(-2) - d.unsqueeze(-1)                     # (..., n, n): d_j - d_i
    n = d.shape[-1]
    off = Tensor._make(~d.xp.eye(n, dtype=bool))
    safe = ops.where(off, diff, 1.0)
    return ops.where(off, 1.0 / safe, 0.0)


class Solve(Function):
    """X = A^{-1} B;  dL/dB = A^{-T} dL/dX,  dL/dA = -(dL/dB) X^T"""

    @staticmethod
    def forward(ctx, a, b):
        x = ctx.xp.linalg.solve(a, b)
        ctx.save_for_backward(a, x)
        return x

    @staticmethod
    def backward(ctx, grad):
        a, x = ctx.saved_tensors
        gb = solve(_mT(a), grad)
        return -(gb @ _mT(x)), gb


def solve(a: Tensor, b: Tensor) -> Tensor:
    """X with A X = B; A (..., n, n), B (..., n, k) (a 1-D B is one right-hand side)."""
    _check_square("linalg.solve", a)
    if b.ndim == 1:
        return Solve.apply(a, b.unsqueeze(-1)).squeeze(-1)
    if b.shape[-2] != a.shape[-1]:
        raise ValueError(f"linalg.solve: A has shape {a.shape} but B has shape {b.shape}")
    return Solve.apply(a, b)


class Cholesky(Function):
    """A = L L^T, L lower triangular. With P = Phi(L^T dL/dL) (Phi: the lower triangle with
    its diagonal halved), S = L^{-T} P L^{-1} and dL/dA = (S + S^T) / 2 (Murray 2016, eq. 10)."""

    @staticmethod
    def forward(ctx, a):
        low = ctx.xp.linalg.cholesky(a)
        ctx.save_for_backward(low)
        return low

    @staticmethod
    def backward(ctx, grad):
        (low,) = ctx.saved_tensors
        p = _mT(low) @ grad
        p = p.tril(-1) + 0.5 * p.tril().triu()                   # Phi
        inv = matrix_inverse(low)
        s = _mT(inv) @ p @ inv
        return 0.5 * (s + _mT(s))


def cholesky(a: Tensor) -> Tensor:
    _check_square("linalg.cholesky", a)
    return Cholesky.apply(a)


class Eigh(Function):
    """A = V diag(w) V^T for symmetric A (lower triangle read).
    dL/dA = V (diag(dL/dw) + F o (V^T dL/dV)) V^T, symmetrised, F_ij = 1/(w_j - w_i)
    (Giles 2008, Sec. 3.1)."""

    @staticmethod
    def forward(ctx, a):
        w, v = ctx.xp.linalg.eigh(a)
        ctx.save_for_backward(w, v)
        return w, v

    @staticmethod
    def backward(ctx, gw, gv):
        w, v = ctx.saved_tensors
        gw, gv = _or_zeros(gw, w), _or_zeros(gv, v)
        inner = _off_diagonal_inverse(w) * (_mT(v) @ gv)         # (..., n, n)
        inner = inner + diag_embed(gw)
        g = v @ inner @ _mT(v)
        return 0.5 * (g + _mT(g))


def eigh(a: Tensor):
    """(eigenvalues ascending (..., n), eigenvectors as columns (..., n, n))."""
    _check_square("linalg.eigh", a)
    return Eigh.apply(a)


class SVD(Function):
    """A = U diag(s) V^T (reduced). With F_ij = 1/(s_j^2 - s_i^2) off the diagonal,
    J = F o (U^T dU), K = F o (V^T dV):
        dL/dA = U [(J + J^T) S + diag(ds) + S (K + K^T)] V^T
                + (I - U U^T) dU S^{-1} V^T + U S^{-1} dV^T (I - V V^T)
    (Townsend 2016, eq. 24; dV is the gradient for V = Vh^T)."""

    @staticmethod
    def forward(ctx, a):
        u, s, vh = ctx.xp.linalg.svd(a, full_matrices=False)
        ctx.save_for_backward(u, s, vh)
        return u, s, vh

    @staticmethod
    def backward(ctx, gu, gs, gvh):
        u, s, vh = ctx.saved_tensors
        gu, gs, gvh = _or_zeros(gu, u), _or_zeros(gs, s), _or_zeros(gvh, vh)
        v, gv = _mT(vh), _mT(gvh)
        m, n, k = u.shape[-2], v.shape[-2], s.shape[-1]
        f = _off_diagonal_inverse(s * s)
        j = f * (_mT(u) @ gu)
        kk = f * (_mT(v) @ gv)
        s_mat = diag_embed(s)
        core = (j + _mT(j)) @ s_mat + diag_embed(gs) + s_mat @ (kk + _mT(kk))
        g = u @ core @ vh
        inv_s = diag_embed(1.0 / s)
        if m > k:
            g = g + (_eye_like(u, m) - u @ _mT(u)) @ gu @ inv_s @ vh
        if n > k:
            g = g + u @ inv_s @ _mT(gv) @ (_eye_like(v, n) - v @ vh)
        return g


def svd(a: Tensor, full_matrices: bool = False):
    """(U (..., m, k), S (..., k) descending, Vh (..., k, n)), k = min(m, n)."""
    if full_matrices:
        raise NotImplementedError("linalg.svd: only full_matrices=False (the reduced SVD, "
                                  "whose derivative is defined) is supported")
    if a.ndim < 2:
        raise ValueError(f"linalg.svd: expected (..., m, n), got shape {a.shape}")
    return SVD.apply(a)


class QR(Function):
    """A = Q R (reduced, m >= n). With M = R dR^T - dQ^T Q and copyltu(M) the lower triangle
    of M mirrored to the upper: dL/dA = (dQ + Q copyltu(M)) R^{-T} (Liao et al. 2019,
    eq. 7)."""

    @staticmethod
    def forward(ctx, a):
        q, r = ctx.xp.linalg.qr(a, mode="reduced")
        ctx.save_for_backward(q, r)
        return q, r

    @staticmethod
    def backward(ctx, gq, gr):
        q, r = ctx.saved_tensors
        gq, gr = _or_zeros(gq, q), _or_zeros(gr, r)
        m_ = r @ _mT(gr) - _mT(gq) @ q
        copyltu = m_.tril() + _mT(m_.tril(-1))
        return (gq + q @ copyltu) @ _mT(matrix_inverse(r))


def qr(a: Tensor, mode: str = "reduced"):
    if mode != "reduced":
        raise NotImplementedError(f"linalg.qr: only mode='reduced' is supported, got {mode!r}")
    if a.ndim < 2 or a.shape[-2] < a.shape[-1]:
        raise ValueError(f"linalg.qr: expected (..., m, n) with m >= n (the case with a "
                         f"derivative), got shape {a.shape}")
    return QR.apply(a)


def slogdet(a: Tensor):
    """(sign, log|det A|); the sign carries no gradient."""
    _check_square("linalg.slogdet", a)
    sign, _ = a.xp.linalg.slogdet(a.array)
    return Tensor._make(a.xp.asarray(sign)), logabsdet(a)


def det(a: Tensor) -> Tensor:
    sign, value = slogdet(a)
    return sign * value.exp()


from .. import ops  # noqa: E402  (where; ops imports this module first)
