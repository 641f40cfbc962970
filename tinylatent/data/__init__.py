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
# data preparation moved out of tinylatent.models (issue 11)
from .bow import KJV_BOW_PATH, load_kjv_bow, tfidf
from .patches import extract_patches
from .pixels import binarize, dequantize
from .toy2d import checkerboard, rings, sample_toy, two_moons

__all__ += ["load_kjv_bow", "tfidf", "KJV_BOW_PATH", "extract_patches", "binarize",
            "dequantize", "two_moons", "rings", "checkerboard", "sample_toy"]
