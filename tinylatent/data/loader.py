"""DataLoader: batches of Tensors from a Dataset, optionally shuffled by a seeded Generator.

A `TensorDataset` (or a Subset of one, or anything with a `take(indices)` method) is batched
with one fancy-index per tensor: no per-item Python loop, so an epoch over MNIST costs a few
milliseconds of indexing. Other datasets are collated item by item with `np.stack`.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np

from ..random import Generator, default_generator
from ..tensor import Tensor
from .dataset import can_take

__all__ = ["DataLoader", "default_collate"]


def default_collate(items: list):
    """Stack a list of items (Tensors, arrays, numbers, or tuples/dicts of them) into a batch."""
    first = items[0]
    if isinstance(first, tuple) or isinstance(first, list):
        return tuple(default_collate([it[k] for it in items]) for k in range(len(first)))
    if isinstance(first, dict):
        return {k: default_collate([it[k] for it in items]) for k in first}
    if isinstance(first, Tensor):
        xp = first.xp
        return Tensor._make(xp.stack([it.array for it in items]))
    return Tensor._make(np.stack([np.asarray(it) for it in items]))


class DataLoader:
    """Iterate over `dataset` in batches.

    shuffle: a fresh permutation each epoch, drawn from `generator` (default: the global
    generator, so `tl.manual_seed` makes runs reproducible). drop_last: skip a final batch
    smaller than `batch_size`. sampler: an object with `__len__` and `__iter__` over dataset
    indices (e.g. DistributedSampler) that decides the order instead of `shuffle`.

    num_workers, pin_memory, persistent_workers, worker_init_fn and prefetch_factor are
    accepted so PyTorch code ports unchanged, but loading is always single-process in the
    calling thread: batching a TensorDataset is one fancy-index (no per-item work to spread
    over processes), and tinylatent has no page-locked host memory, so pin_memory changes
    nothing. worker_init_fn, when given, is called once with worker id 0.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 generator: Generator | None = None, drop_last: bool = False,
                 collate_fn: Callable | None = None, sampler=None, num_workers: int = 0,
                 pin_memory: bool = False, persistent_workers: bool = False,
                 worker_init_fn: Callable | None = None, prefetch_factor: int | None = None):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive "
                             "(the sampler decides the order)")
        if not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got "
                             f"{num_workers!r}")
        self.num_workers, self.pin_memory = int(num_workers), bool(pin_memory)
        if worker_init_fn is not None:
            worker_init_fn(0)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last
        self.collate_fn = collate_fn or default_collate
        self.sampler = sampler

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self) -> np.ndarray:
        if self.sampler is not None:
            return np.fromiter(self.sampler, dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        g = self.generator if self.generator is not None else default_generator
        return g._np.permutation(n)  # the CPU stream: the order is host-side bookkeeping

    def __iter__(self) -> Iterator:
        order = self._order()
        fast = can_take(self.dataset) and self.collate_fn is default_collate
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if fast:
                yield self.dataset.take(idx)
            else:
                yield self.collate_fn([self.dataset[int(i)] for i in idx])


class RedrawLoader:
    """Batches from a dataset drawn afresh whenever the last one is used up, e.g. pairs for
    next-sentence prediction with new random partners and new span boundaries (BERT's
    create_pretraining_data.py draws its static data `dupe_factor` times instead).

    draw(rng) -> dataset: called with the NumPy stream of `generator` (a tl.Generator);
    each draw is shuffled with the same stream and batched as DataLoader does (drop_last: a
    last short batch of a draw is dropped). One pass (`__iter__`) yields `steps` batches and
    starts from a new draw, so all randomness lives in `generator`, which Trainer checkpoints
    with the loader: a resumed run draws exactly what the uninterrupted one would.
    """

    def __init__(self, draw: Callable, batch_size: int, steps: int,
                 generator: Generator | None = None, drop_last: bool = True):
        if not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"RedrawLoader: steps must be a positive int, got {steps!r}")
        self.draw, self.steps, self.drop_last = draw, int(steps), drop_last
        self.batch_size = batch_size
        self.generator = generator if generator is not None else Generator(0)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator:
        done = 0
        while done < self.steps:
            loader = DataLoader(self.draw(self.generator._np), self.batch_size, shuffle=True,
                                generator=self.generator, drop_last=self.drop_last)
            if len(loader) == 0:
                raise ValueError("RedrawLoader: a draw gave no batch")
            for batch in loader:
                if done == self.steps:
                    return
                yield batch
                done += 1
