"""Pixel-level preparation of 8-bit images for density models: dynamic binarisation (for
Bernoulli models such as MADE, NADE and the planar-flow VAE) and uniform dequantisation (for
flows on continuous pixels). NumPy in, NumPy out; the caller passes the Generator."""
from __future__ import annotations

import numpy as np

__all__ = ["binarize", "dequantize"]


def binarize(images_uint8: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """Dynamic binarisation: x ~ Bernoulli(pixel / 255), (N, 28, 28) -> (N, 784) float32."""
    p = images_uint8.reshape(len(images_uint8), -1).astype(np.float32) / 255.0
    return (generator.random(p.shape) < p).astype(np.float32)


def dequantize(images_uint8: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """Uniform dequantisation (Theis et al. 2016): x = (pixel + u) / 256, u ~ U[0, 1),
    (N, H, W) uint8 -> (N, 1, H, W) float32 in (0, 1)."""
    x = images_uint8.astype(np.float32)
    x = (x + generator.random(x.shape, dtype=np.float32)) / 256.0
    return x.reshape(len(x), 1, *x.shape[1:])
