"""2-D toy densities for flows: two moons, rings and a checkerboard, as (n, 2) float32 arrays
drawn from a NumPy Generator. The kernel-density reference they are scored against is
`tinylatent.models.KernelDensity`."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["two_moons", "rings", "checkerboard", "eight_gaussians", "eight_gaussians_modes",
           "sample_toy"]


def two_moons(n: int, rng: np.random.Generator, noise: float = 0.1) -> np.ndarray:
    """Two interleaved half circles (as scikit-learn's make_moons), centred: (n, 2)."""
    t = rng.random(n) * math.pi
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x - 0.5, y - 0.25], axis=1) + noise * rng.standard_normal((n, 2))
    return (pts * 2.0).astype(np.float32)


def rings(n: int, rng: np.random.Generator, noise: float = 0.08) -> np.ndarray:
    """Three concentric circles of radius 1, 2, 3 (points spread in proportion): (n, 2)."""
    radius = rng.choice([1.0, 2.0, 3.0], size=n, p=[1 / 6, 2 / 6, 3 / 6])
    theta = rng.random(n) * 2.0 * math.pi
    pts = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
    return (pts + noise * rng.standard_normal((n, 2))).astype(np.float32)


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the black squares of a 4x4 board on [-2, 2]^2: (n, 2)."""
    x1 = rng.random(n) * 4.0 - 2.0
    x2 = rng.random(n) + rng.integers(0, 2, n) * 2.0 - 2.0 + (np.floor(x1) % 2)
    return np.stack([x1, x2], axis=1).astype(np.float32)


def eight_gaussians_modes(radius: float = 2.0) -> np.ndarray:
    """The 8 mode centres radius * (cos 2 pi k/8, sin 2 pi k/8), k = 0..7: (8, 2)."""
    angle = 2.0 * math.pi * np.arange(8) / 8
    return (radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)).astype(np.float32)


def eight_gaussians(n: int, rng: np.random.Generator, radius: float = 2.0,
                    std: float = 0.2) -> np.ndarray:
    """A ring of 8 equally weighted isotropic Gaussians N(mode_k, std^2 I): (n, 2). std 0.2
    is the density-estimation toy of FFJORD and the EBM papers; the GAN mode-collapse test
    (Metz et al. 2017, "Unrolled GANs", Sec. 3.1) uses a narrow std such as 0.02-0.05."""
    k = rng.integers(0, 8, n)
    pts = eight_gaussians_modes(radius)[k] + std * rng.standard_normal((n, 2))
    return pts.astype(np.float32)


def sample_toy(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    samplers = {"moons": two_moons, "rings": rings, "checkerboard": checkerboard,
                "8gaussians": eight_gaussians}
    if name not in samplers:
        raise ValueError(f"sample_toy: unknown dataset '{name}', expected one of "
                         f"{sorted(samplers)}")
    return samplers[name](n, rng)
