"""Datasets: anything with `__len__` and `__getitem__`, PyTorch's map-style protocol.

`TensorDataset` holds whole arrays, so a batch is one fancy-index per tensor (the DataLoader's
fast path) instead of a Python loop over items.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..random import Generator, default_generator
from ..tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "can_take"]


class Dataset:
    """Base class: subclasses define `__len__` and `__getitem__(i) -> item (or tuple)`."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor._make(np.asarray(x))


class TensorDataset(Dataset):
    """Item i is `(t[i] for t in tensors)`; every tensor must have the same first dimension."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: give at least one tensor")
        self.tensors = tuple(_as_tensor(t) for t in tensors)
        n = len(self.tensors[0])
        for k, t in enumerate(self.tensors):
            if t.ndim == 0 or t.shape[0] != n:
                raise ValueError(f"TensorDataset: tensor {k} has shape {t.shape}, but "
                                 f"tensor 0 has {n} rows; all need the same first dimension")

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def take(self, indices: np.ndarray) -> tuple[Tensor, ...]:
        """A whole batch at once: one gather per tensor (no gradient is tracked)."""
        out = []
        for t in self.tensors:
            idx = t.xp.asarray(indices)
            out.append(Tensor._make(t.array[idx]))
        return tuple(out)


class Subset(Dataset):
    """The items of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        n = len(dataset)
        if self.indices.size and (self.indices.min() < -n or self.indices.max() >= n):
            raise IndexError(f"Subset: indices must lie in [0, {n}), got range "
                             f"[{self.indices.min()}, {self.indices.max()}]")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def take(self, indices: np.ndarray):
        """A whole batch at once when the underlying dataset supports it (see can_take)."""
        return self.dataset.take(self.indices[indices])


def can_take(dataset) -> bool:
    """True when `dataset.take(indices)` gathers a batch without a per-item loop."""
    if isinstance(dataset, Subset):
        return can_take(dataset.dataset)
    return callable(getattr(dataset, "take", None))


def random_split(dataset, lengths: Sequence, generator: Generator | None = None) -> list:
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-6:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):  # hand out the remainder round-robin, like PyTorch
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} sum to {sum(lengths)}, but the "
                         f"dataset has {n} items")
    g = generator if generator is not None else default_generator
    perm = g._np.permutation(n)
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, perm[start:start + length]))
        start += length
    return out
