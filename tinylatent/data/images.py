"""Image helpers for examples and figures (NumPy only; no plotting here)."""
from __future__ import annotations

import numpy as np

__all__ = ["make_grid"]


def make_grid(images, ncol: int = 8, padding: int = 1, pad_value: float = 0.3,
              image_shape: tuple | None = None) -> np.ndarray:
    """Tile images (N, H, W), or flat (N, H*W) with `image_shape`, into one (rows, cols) array;
    colour images (N, H, W, C) with C = 3 or 4 (channels last, for imshow) into (rows, cols, C).

    Row-major, `ncol` tiles per row, `padding` pixels of `pad_value` around every tile; a
    last row that is not full is left as padding (like torchvision.utils.make_grid, grey).
    """
    imgs = np.asarray(getattr(images, "array", images))
    if hasattr(imgs, "get"):  # pragma: no cover - a CuPy array
        imgs = imgs.get()
    if image_shape is not None:
        imgs = imgs.reshape(-1, *image_shape)                # (N, H*W) -> (N, H, W)
    if imgs.ndim == 4 and imgs.shape[-1] in (3, 4):
        grid = [make_grid(imgs[..., c], ncol, padding, pad_value) for c in range(imgs.shape[-1])]
        return np.stack(grid, -1)                             # (rows, cols, C)
    if imgs.ndim != 3:
        side = int(round(np.sqrt(imgs.shape[-1]))) if imgs.ndim == 2 else 0
        if imgs.ndim != 2 or side * side != imgs.shape[-1]:
            raise ValueError(f"make_grid: expected images (N, H, W) or square flat images "
                             f"(N, H*W) or colour (N, H, W, 3 or 4), got shape {imgs.shape}")
        imgs = imgs.reshape(-1, side, side)                  # (N, H*W) -> (N, H, W)
    n, h, w = imgs.shape
    nrow = -(-n // ncol)
    th, tw = h + 2 * padding, w + 2 * padding
    grid = np.full((nrow * th, ncol * tw), pad_value, dtype=np.float64)
    for i, im in enumerate(imgs):
        r, c = divmod(i, ncol)
        grid[r * th + padding:r * th + padding + h, c * tw + padding:c * tw + padding + w] = im
    return grid
