"""Pictures of frozen representations, each one PNG drawn on an Agg canvas (no pyplot, so
the caller's matplotlib backend is left alone; matplotlib is imported on first use).

    embedding_picture(z, y, "embedding.png", "SimCLR h (PCA)")   2-D PCA coloured by label
    retrieval_picture(images, z, "retrieval.png")               queries | k nearest (cosine)
    matrix_picture(S, "similarity.png", "cos(z_i, z'_j)")         a heat map with colour bar
"""
from __future__ import annotations

import numpy as np

from ..data.images import make_grid
from ._arrays import host, rows

__all__ = ["embedding_picture", "retrieval_picture", "matrix_picture", "bar_picture", "pca2"]


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def pca2(z) -> np.ndarray:
    """(N, D) -> (N, 2): the centred rows on their two leading principal axes."""
    v = host(rows(z, "z", "pca2")).astype(np.float64)
    v = v - v.mean(0)
    return v @ np.linalg.svd(v, full_matrices=False)[2][:2].T          # (N, 2)


def embedding_picture(z, labels, path: str, title: str) -> None:
    """Scatter of the 2-D PCA of z (N, D), one colour per label."""
    fig, ax = _figure((5.5, 4.5))
    p = pca2(z)
    dots = ax.scatter(p[:, 0], p[:, 1], c=host(labels), cmap="tab10", s=4)
    fig.colorbar(dots, label="class")
    ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    fig.savefig(path, dpi=100, bbox_inches="tight")


def retrieval_picture(images, z, path: str, n_queries: int = 8, k: int = 6,
                      seed: int = 0, title: str | None = None) -> None:
    """n_queries random rows of images (N, H, W) or (N, 1, H, W), each followed by its k
    nearest other rows by the cosine of z (N, D)."""
    x = host(images)
    x = x.reshape(len(x), *x.shape[-2:])                                # (N, H, W)
    e = host(rows(z, "z", "retrieval_picture")).astype(np.float64)
    if len(e) != len(x) or len(x) <= k:
        raise ValueError(f"retrieval_picture: {len(x)} images and {len(e)} embeddings "
                         f"(need as many, and more than k={k})")
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    queries = np.random.default_rng(seed).choice(len(x), n_queries, replace=False)
    near = np.argsort(-(e[queries] @ e.T), axis=1, kind="stable")[:, 1:k + 1]  # not itself
    order = np.concatenate([np.concatenate([[q], n]) for q, n in zip(queries, near)])
    fig, ax = _figure((4.5, 0.75 * n_queries))
    ax.imshow(make_grid(x[order], k + 1), cmap="gray")
    ax.set_title(title or f"query | {k} nearest (cosine, frozen encoder)", fontsize=9)
    ax.axis("off")
    fig.savefig(path, dpi=110, bbox_inches="tight")


def matrix_picture(matrix, path: str, title: str, xlabel: str = "j", ylabel: str = "i",
                   vmin=None, vmax=None, xticks=None, yticks=None) -> None:
    """A heat map of a 2-D array with a colour bar (similarity matrices, sweep tables)."""
    m = host(matrix)
    fig, ax = _figure((4.5 + 0.1 * m.shape[1], 4))
    im = ax.imshow(m, cmap="viridis", vmin=vmin, vmax=vmax)
    fig.colorbar(im)
    if xticks is not None:
        ax.set_xticks(range(len(xticks)), [str(t) for t in xticks])
    if yticks is not None:
        ax.set_yticks(range(len(yticks)), [str(t) for t in yticks])
    if m.size <= 64 and xticks is not None:                          # small tables: the values
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="w", fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def bar_picture(values: dict, path: str, title: str, ylabel: str) -> None:
    """One bar per named value (e.g. a method's recall@1 next to its baselines)."""
    fig, ax = _figure((1.2 + 0.9 * len(values), 3.8))
    bars = ax.bar(range(len(values)), list(values.values()), color="tab:blue")
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(range(len(values)), list(values), rotation=30, ha="right", fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    fig.savefig(path, dpi=100, bbox_inches="tight")
