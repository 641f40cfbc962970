"""Embedding: a lookup table of learnable vectors."""
from __future__ import annotations

from ..autograd import Function
from ..ops.indexing import IndexAddZeros
from ..tensor import Tensor, empty
from . import init
from .module import Module, Parameter

__all__ = ["Embedding", "embedding"]


class _Lookup(Function):
    """y = weight[idx];  dL/dweight = rows of dL/dy scatter-added at idx, with the row
    padding_idx left at zero (it is a fixed "no token" vector, never trained)."""

    @staticmethod
    def forward(ctx, weight, idx, padding_idx):
        ctx.idx, ctx.shape, ctx.padding_idx = idx, weight.shape, padding_idx
        return weight[idx]

    @staticmethod
    def backward(ctx, grad):
        g = IndexAddZeros.apply(grad, ctx.idx, ctx.shape)          # (V, D)
        if ctx.padding_idx is not None:
            keep = grad.xp.ones((ctx.shape[0], 1), dtype=grad.dtype)
            keep[ctx.padding_idx] = 0
            g = g * Tensor._make(keep)
        return g, None, None


def embedding(idx, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` (V, D) picked by integer `idx` of any shape -> idx.shape + (D,)."""
    idx_arr = idx.data if isinstance(idx, Tensor) else weight.xp.asarray(idx)
    if idx_arr.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx_arr.dtype}")
    v = weight.shape[0]
    if idx_arr.size and (int(idx_arr.min()) < 0 or int(idx_arr.max()) >= v):
        lo, hi = int(idx_arr.min()), int(idx_arr.max())
        raise IndexError(f"embedding: index {lo if lo < 0 else hi} is out of range; indices "
                         f"must be in [0, {v}), got values in [{lo}, {hi}]")
    return _Lookup.apply(weight, idx_arr, padding_idx)


class Embedding(Module):
    """num_embeddings vectors of size embedding_dim, initialised N(0, 1) as in PyTorch; the
    row padding_idx (if given) starts at zero and gets no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 _weight: Tensor | None = None, device=None, dtype=None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx={padding_idx} is out of range for "
                                 f"{num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = Parameter(empty(num_embeddings, embedding_dim, dtype=dtype,
                                          device=device))
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(_weight.shape)}, "
                                 f"expected {(num_embeddings, embedding_dim)}")
            self.weight = Parameter(_weight)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True,
                        padding_idx: int | None = None) -> "Embedding":
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: expected a 2-D tensor, got shape "
                             f"{tuple(embeddings.shape)}")
        m = cls(embeddings.shape[0], embeddings.shape[1], padding_idx,
                _weight=Tensor._make(embeddings.data.copy()))
        m.weight.requires_grad_(not freeze)
        return m

    def forward(self, idx) -> Tensor:
        return embedding(idx, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
