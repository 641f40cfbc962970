"""Data: datasets, a batching DataLoader, and MNIST-family loaders with an embedded fallback.

    from tinylatent.data import MNIST, DataLoader
    train = MNIST("train", flatten=True)          # (x (784,), y) items, x in [0, 1]
    for x, y in DataLoader(train, batch_size=128, shuffle=True):
        ...                                       # x: Tensor (128, 784), y: Tensor (128,)
"""
from .dataset import Dataset, Subset, TensorDataset, can_take, random_split
from .images import make_grid
from .loader import DataLoader, default_collate
from .mnist import (EMBEDDED_MNIST, MNIST, FashionMNIST, IDXFormatError, cache_dir, load_mnist,
                    read_idx)

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "can_take", "DataLoader",
           "default_collate", "load_mnist", "read_idx", "MNIST", "FashionMNIST",
           "IDXFormatError", "cache_dir", "EMBEDDED_MNIST", "make_grid"]
from .sampler import DistributedSampler  # noqa: E402

__all__ += ["DistributedSampler"]
