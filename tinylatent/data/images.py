"""Image helpers for examples and figures: tile images into one array, or into one PNG.

    save_image_grid(samples, "runs/vae_mnist/samples.png", ncol=8, title="x ~ p(x|z)")
"""
from __future__ import annotations

import numpy as np

__all__ = ["make_grid", "save_image_grid"]


def make_grid(images, ncol: int = 8, padding: int = 1, pad_value: float = 0.3,
              image_shape: tuple | None = None) -> np.ndarray:
    """Tile images (N, H, W) or (N, 1, H, W), or flat (N, H*W) with `image_shape`, into one
    (rows, cols) array (flat images need no `image_shape` when square); colour images
    (N, H, W, C) with C = 3 or 4 (channels last, for imshow) into (rows, cols, C).

    Row-major, `ncol` tiles per row, `padding` pixels of `pad_value` around every tile; a
    last row that is not full is left as padding (like torchvision.utils.make_grid, grey).
    """
    imgs = np.asarray(getattr(images, "array", images))
    if hasattr(imgs, "get"):  # pragma: no cover - a CuPy array
        imgs = imgs.get()
    if image_shape is not None:
        imgs = imgs.reshape(-1, *image_shape)                # (N, H*W) -> (N, H, W)
    if imgs.ndim == 4 and imgs.shape[1] == 1:
        imgs = imgs[:, 0]                                    # (N, 1, H, W) -> (N, H, W)
    if imgs.ndim == 4 and imgs.shape[-1] in (3, 4):
        grid = [make_grid(imgs[..., c], ncol, padding, pad_value) for c in range(imgs.shape[-1])]
        return np.stack(grid, -1)                             # (rows, cols, C)
    if imgs.ndim != 3:
        side = int(round(np.sqrt(imgs.shape[-1]))) if imgs.ndim == 2 else 0
        if imgs.ndim != 2 or side * side != imgs.shape[-1]:
            raise ValueError(f"make_grid: expected images (N, H, W), (N, 1, H, W), square "
                             f"flat images (N, H*W) or colour (N, H, W, 3 or 4), got shape "
                             f"{imgs.shape}")
        imgs = imgs.reshape(-1, side, side)                  # (N, H*W) -> (N, H, W)
    n, h, w = imgs.shape
    nrow = -(-n // ncol)
    th, tw = h + 2 * padding, w + 2 * padding
    grid = np.full((nrow * th, ncol * tw), pad_value, dtype=np.float64)
    for i, im in enumerate(imgs):
        r, c = divmod(i, ncol)
        grid[r * th + padding:r * th + padding + h, c * tw + padding:c * tw + padding + w] = im
    return grid


def save_image_grid(images, path, ncol: int = 8, title: str | None = None,
                    image_shape: tuple | None = None, vmin: float | None = 0.0,
                    vmax: float | None = 1.0, cmap: str = "gray", tile_inches: float = 0.6,
                    dpi: int = 110) -> None:
    """Draw `make_grid(images, ncol, image_shape=...)` as one PNG at `path`, with a title.

    Grey values map [vmin, vmax] to black..white (None: the images' own range). Uses
    matplotlib's object interface (no pyplot), so it never changes the user's backend.
    """
    from matplotlib.figure import Figure

    grid = make_grid(images, ncol, image_shape=image_shape)   # host array, (rows, cols[, C])
    width = ncol * tile_inches
    fig = Figure(figsize=(width + 0.4, width * grid.shape[0] / grid.shape[1] + 0.6))
    ax = fig.subplots()
    ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax)
    if title:
        ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
