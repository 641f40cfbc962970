"""DistributedSampler: each rank of a data-parallel job reads its own shard of a dataset.

    sampler = DistributedSampler(train, seed=1)          # rank, world size from the group
    loader = DataLoader(train, batch_size=B, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)                         # a new shuffle, the same on all ranks

Every rank draws the same permutation (seeded by seed + epoch) and takes every
num_replicas-th index from position `rank` on, so the shards are disjoint and, batch by
batch, the ranks together read what one process with batch num_replicas * B would read
(PyTorch's torch.utils.data.DistributedSampler makes the same choice). The permutation is
padded by wrapping around (or cut, with drop_last) to a multiple of num_replicas, so that
every rank takes the same number of steps.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """Indices of this rank's shard of `dataset`; `set_epoch(e)` reshuffles.

    num_replicas / rank: default the default process group's world size and rank
    (tl.distributed.init_process_group first), or 1 and 0 without a group.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        from .. import distributed as dist
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_initialized() else 0
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: need 0 <= rank < num_replicas, got rank="
                             f"{rank}, num_replicas={num_replicas}")
        n = len(dataset)
        if drop_last and n < num_replicas:
            raise ValueError(f"DistributedSampler: {n} items cannot give each of "
                             f"{num_replicas} ranks one with drop_last=True")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        self.num_samples = n // num_replicas if drop_last else math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Choose the shuffle of this epoch (call it on every rank with the same epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def indices(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n:   # wrap around so every rank takes the same number of steps
            order = np.concatenate([order, np.resize(order, self.total_size - n)])
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())
