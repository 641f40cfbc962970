"""Image patches as data: every p x p window of a batch of images, on the images' own array
module (NumPy / CuPy). Used by the patch-level baselines (`tinylatent.models.PatchFeatures`)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor

__all__ = ["extract_patches"]


def extract_patches(images, patch_size: int, stride: int = 1):
    """All p x p patches of (N, H, W) or (N, C, H, W) images as a (N, P, C*p*p) array on the
    images' own array module, P = number of positions on the stride grid."""
    A = images.array if isinstance(images, Tensor) else np.asarray(images)
    xp = Tensor._make(A).xp
    if A.ndim == 3:
        A = A[:, None]  # (N, 1, H, W)
    if A.ndim != 4:
        raise ValueError(f"extract_patches: expected (N, H, W) or (N, C, H, W) images, got "
                         f"shape {A.shape}")
    n, c, h, w = A.shape
    if patch_size > min(h, w):
        raise ValueError(f"extract_patches: patch_size={patch_size} exceeds image size "
                         f"{h}x{w}")
    win = xp.lib.stride_tricks.sliding_window_view(A, (patch_size, patch_size), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (N, C, Ph, Pw, p, p)
    ph, pw = win.shape[2], win.shape[3]
    win = win.transpose(0, 2, 3, 1, 4, 5)  # (N, Ph, Pw, C, p, p)
    return win.reshape(n, ph * pw, c * patch_size * patch_size), (ph, pw)
