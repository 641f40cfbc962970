"""tl.linalg: PyTorch's torch.linalg names for the linear algebra in tinylatent.ops, each
differentiable (the derivatives are in ops/decompositions.py and ops/linalg.py)."""
from __future__ import annotations

from .ops.decompositions import cholesky, det, diag_embed, eigh, qr, slogdet, solve, svd
from .ops.linalg import matrix_inverse as inv
from .ops.linalg import norm as _norm
from .ops.linalg import vector_norm
from .tensor import Tensor

__all__ = ["norm", "vector_norm", "matrix_norm", "svd", "svdvals", "qr", "eigh", "eigvalsh",
           "inv", "slogdet", "det", "cholesky", "solve", "diag_embed"]


def matrix_norm(a: Tensor, ord="fro", dim=(-2, -1), keepdim: bool = False) -> Tensor:  # noqa: A002
    """'fro': sqrt of the sum of squares over the two dims; 'nuc': the sum of singular
    values; 2: the largest singular value."""
    if ord == "fro":
        return vector_norm(a, 2, dim, keepdim)
    if ord in ("nuc", 2):
        if tuple(d % a.ndim for d in dim) != (a.ndim - 2, a.ndim - 1):
            raise NotImplementedError("matrix_norm: 'nuc' and 2 need dim=(-2, -1)")
        s = svd(a)[1]
        out = s.sum(-1) if ord == "nuc" else s.amax(-1)
        return out.unsqueeze(-1).unsqueeze(-1) if keepdim else out
    raise ValueError(f"matrix_norm: ord={ord!r} is not supported ('fro', 'nuc', 2)")


def norm(a: Tensor, ord=None, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A002
    """torch.linalg.norm: a vector norm over one dim (or of all entries when ord and dim are
    None), a matrix norm when ord is a string or dim has two entries."""
    if isinstance(ord, str) or (isinstance(dim, (tuple, list)) and len(dim) == 2):
        return matrix_norm(a, "fro" if ord is None else ord, tuple(dim or (-2, -1)), keepdim)
    return _norm(a, 2 if ord is None else ord, dim, keepdim)


def svdvals(a: Tensor) -> Tensor:
    return svd(a)[1]


def eigvalsh(a: Tensor) -> Tensor:
    return eigh(a)[0]
