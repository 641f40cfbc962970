"""Mapping one embedding space onto another, and judging a bilingual dictionary
(Conneau et al. 2018, "Word Translation Without Parallel Data", Sec. 2).

    W = procrustes(x, y)                  # Sec. 2.2: argmin_{W orthogonal} ||W X - Y||_F
    W = orthogonalize(W, beta=0.001)      # Sec. 3.3: W <- (1 + beta) W - beta (W W^T) W
    scores = csls(mapped_src, tgt, k=10)  # Sec. 2.3: 2 cos - r_T - r_S
    ids = translate_ids(mapped_src, tgt, k=5, method="csls")
    pairs = mutual_dictionary(mapped_src, tgt, max_rank=15000)
    translation_precision(candidates, reference, k=1)

Rows are word vectors (n, d); x maps to W x, so mapped rows are x @ W^T. Similarities are
cosines: every function normalises rows to unit length first.
"""
from __future__ import annotations

import numpy as np

from .word_vectors import _unit

__all__ = ["normalize_embeddings", "procrustes", "orthogonalize", "mean_topk_cosine", "csls",
           "translate_ids", "mutual_dictionary", "mean_cosine_criterion",
           "translation_precision", "plot_alignment"]


def _pair(name: str, x, y) -> tuple:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"{name}: need (n, d) and (m, d) word vectors, got shapes {x.shape} "
                         f"and {y.shape}")
    return x, y


def normalize_embeddings(vectors, steps: str = "") -> np.ndarray:
    """Rows of `vectors` after each comma-separated step: "renorm" (unit length) or "center"
    (subtract the mean row); MUSE's --normalize_embeddings, e.g. "renorm,center,renorm"."""
    v = np.asarray(vectors, np.float64)
    for step in filter(None, steps.split(",")):
        if step == "center":
            v = v - v.mean(axis=0)
        elif step == "renorm":
            v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        else:
            raise ValueError(f"normalize_embeddings: steps must be comma-separated 'renorm' / "
                             f"'center', got {steps!r}")
    return v


def procrustes(x, y) -> np.ndarray:
    """The orthogonal W minimising ||W X - Y||_F over pairs (x_i, y_i), rows of x and y (n, d):

        W* = U V^T,  U Sigma V^T = SVD(Y X^T)          (Sec. 2.2, X and Y as d x n columns)

    Here Y X^T = y^T x (d, d). Closed form (Schonemann 1966)."""
    x, y = _pair("procrustes", x, y)
    if len(x) != len(y):
        raise ValueError(f"procrustes: x and y must be paired rows, got {len(x)} and {len(y)}")
    u, _, vt = np.linalg.svd(y.T @ x)                                         # (d, d)
    return u @ vt


def orthogonalize(w, beta: float = 0.001) -> np.ndarray:
    """W <- (1 + beta) W - beta (W W^T) W (Sec. 3.3): a gradient step on ||W^T W - I||^2 that
    keeps W near the orthogonal manifold; an orthogonal W is a fixed point, and W's singular
    values s move to (1 + beta) s - beta s^3, towards 1."""
    w = np.asarray(w)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"orthogonalize: W must be square, got shape {w.shape}")
    return (1 + beta) * w - beta * (w @ w.T) @ w


def mean_topk_cosine(query, keys, k: int = 10, batch: int = 1024) -> np.ndarray:
    """r(q) = (1/k) sum of the k largest cosines between q and the rows of keys (Sec. 2.3's
    r_T(W x_s) with keys = target words, r_S(y_t) with keys = mapped source words). (n,)"""
    q, keys = _pair("mean_topk_cosine", query, keys)
    q, keys = _unit(q), _unit(keys)
    k = min(k, len(keys))
    out = np.empty(len(q))
    for s in range(0, len(q), batch):
        sims = q[s:s + batch] @ keys.T                                        # (b, m)
        out[s:s + batch] = np.partition(sims, -k, axis=1)[:, -k:].mean(axis=1)
    return out


def csls(query, keys, k: int = 10, all_queries=None) -> np.ndarray:
    """CSLS(W x_s, y_t) = 2 cos(W x_s, y_t) - r_T(W x_s) - r_S(y_t)   (Sec. 2.3, eq. 6), (n, m).

    query: mapped source vectors W x_s (n, d); keys: target vectors y_t (m, d). r_S(y_t) is
    taken over `all_queries` (default: `query`), the whole mapped source vocabulary when the
    queries are a subset of it."""
    q, keys = _pair("csls", query, keys)
    every = q if all_queries is None else np.asarray(all_queries, np.float64)
    r_t = mean_topk_cosine(q, keys, k)                                        # (n,)
    r_s = mean_topk_cosine(keys, every, k)                                    # (m,)
    return 2 * _unit(q) @ _unit(keys).T - r_t[:, None] - r_s[None, :]


def translate_ids(query, keys, k: int = 1, method: str = "csls", csls_k: int = 10,
                  all_queries=None, batch: int = 1024) -> np.ndarray:
    """The k best target ids of each query row, (n, k), by cosine ("nn") or CSLS ("csls")."""
    if method not in ("nn", "csls"):
        raise ValueError(f"translate_ids: method must be 'nn' or 'csls', got {method!r}")
    q, keys = _pair("translate_ids", query, keys)
    q, keys = _unit(q), _unit(keys)
    r_s = 0.0
    if method == "csls":
        every = q if all_queries is None else np.asarray(all_queries, np.float64)
        r_s = mean_topk_cosine(keys, every, csls_k)[None, :]                  # (1, m)
    k = min(k, len(keys))
    out = np.empty((len(q), k), np.int64)
    for s in range(0, len(q), batch):
        sims = q[s:s + batch] @ keys.T                                        # (b, m)
        if method == "csls":   # r_T(W x_s) is constant per row: it never changes a row's order
            sims = 2 * sims - r_s
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]                    # (b, k) unsorted
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        out[s:s + batch] = np.take_along_axis(top, order, axis=1)
    return out


def mutual_dictionary(query, keys, max_rank: int = 15000, method: str = "csls",
                      csls_k: int = 10) -> np.ndarray:
    """Pairs (i, j), (p, 2), where target j is source i's best translation and i is j's best
    back-translation, both among the `max_rank` most frequent words (rows sorted by
    frequency): the "S2T&T2S" dictionary of Sec. 3.4's refinement."""
    q, keys = _pair("mutual_dictionary", query, keys)
    n, m = min(max_rank, len(q)), min(max_rank, len(keys))
    s2t = translate_ids(q[:n], keys, 1, method, csls_k, all_queries=q)[:, 0]      # (n,)
    t2s = translate_ids(keys[:m], q, 1, method, csls_k, all_queries=keys)[:, 0]   # (m,)
    i = np.arange(n)
    keep = (s2t < m) & (t2s[np.minimum(s2t, m - 1)] == i)
    return np.stack([i[keep], s2t[keep]], axis=1)


def mean_cosine_criterion(query, keys, n_words: int = 10000, method: str = "csls",
                          csls_k: int = 10) -> float:
    """The unsupervised model-selection criterion (Sec. 3.5): the mean cosine between the
    `n_words` most frequent mapped source words and their translations."""
    q, keys = _pair("mean_cosine_criterion", query, keys)
    n = min(n_words, len(q))
    j = translate_ids(q[:n], keys, 1, method, csls_k, all_queries=q)[:, 0]
    return float(np.mean(np.sum(_unit(q[:n]) * _unit(keys[j]), axis=1)))


def translation_precision(candidates: dict, reference: dict, k: int = 1) -> float:
    """Precision@k: the fraction of source words in `candidates` (word -> ranked list of
    translations) whose reference translation (`reference[word]`: a word, or a set of
    acceptable ones) is among the first k candidates. Every candidate word must have a
    reference entry (evaluate only words the reference covers, as MUSE does)."""
    if not candidates:
        raise ValueError("translation_precision: no candidates to evaluate")
    missing = [w for w in candidates if w not in reference]
    if missing:
        raise KeyError(f"translation_precision: {len(missing)} source word(s) have no "
                       f"reference translation, e.g. {missing[:3]}")
    hits = 0
    for word, ranked in candidates.items():
        truth = reference[word]
        truth = {truth} if isinstance(truth, str) else set(truth)
        hits += bool(truth.intersection(list(ranked)[:k]))
    return hits / len(candidates)


def plot_alignment(path, source, target, maps: dict, source_words=(), target_words=(),
                   pairs=(), n: int = 300) -> None:
    """A PNG of the first n rows of both spaces under each map {title: W (d, d)}, one panel
    each: 2-D PCA of the mapped source rows x W^T (blue) and the target rows (red) together,
    with the (i, j) `pairs` (e.g. true translations) joined and labelled by their words.
    Drawn on an Agg canvas without pyplot (as tl.train.plot_history)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    source, target = _pair("plot_alignment", source, target)
    n = min(n, len(source), len(target))
    fig = Figure(figsize=(5.5 * len(maps), 5))
    FigureCanvasAgg(fig)
    for k, (title, w) in enumerate(maps.items()):
        ax = fig.add_subplot(1, len(maps), k + 1)
        xs, ys = source[:n] @ np.asarray(w).T, target[:n]
        both = np.concatenate([xs, ys])
        _, _, vt = np.linalg.svd(both - both.mean(axis=0), full_matrices=False)
        zs, zt = (xs - both.mean(axis=0)) @ vt[:2].T, (ys - both.mean(axis=0)) @ vt[:2].T
        ax.scatter(zs[:, 0], zs[:, 1], s=6, c="C0", label="source (mapped)")
        ax.scatter(zt[:, 0], zt[:, 1], s=6, c="C3", label="target")
        for i, j in pairs:
            ax.plot([zs[i, 0], zt[j, 0]], [zs[i, 1], zt[j, 1]], "-", c="gray", lw=0.6)
            if len(source_words) and len(target_words):
                ax.annotate(source_words[i], zs[i], fontsize=7)
                ax.annotate(target_words[j], zt[j], fontsize=7, color="C3")
        ax.set(title=title, xticks=[], yticks=[])
    fig.axes[0].legend(loc="lower left", fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
