"""Retrieval with autoencoder codes (seed 000): similar images by deep-AE codes vs pixels, and
similar documents by a bag-of-words autoencoder vs raw word counts.

Seed 000 ("semantic hashing", Salakhutdinov & Hinton 2009; Hinton & Salakhutdinov 2006):
encode every item once, then answer a query by its nearest codes. Quality is measured by
precision@k by label: of the k items retrieved for a query, the fraction that share the
query's label.

    p = precision_at_k(codes_test, y_test, codes_train, y_train, k=10)
    counts, labels, meta = load_kjv_bow()        # 1,189 KJV chapters x 2,000 words
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np

from .. import nn
from ..tensor import Tensor
from .autoencoders import _inputs

__all__ = ["precision_at_k", "nearest_neighbours", "load_kjv_bow", "tfidf",
           "BagOfWordsAE", "BoWAEConfig", "KJV_BOW_PATH"]

KJV_BOW_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "embedded",
                            "kjv_bow.npz")


def nearest_neighbours(query, database, k: int = 10, metric: str = "euclidean",
                       exclude_self: bool = False, batch_size: int = 1024) -> Tensor:
    """Indices (Q, k) of each query's k nearest database rows, nearest first, on the
    tensors' own device, in float64. metric "cosine" ranks by 1 - cos(q, d).
    exclude_self: query i is database row i (leave-one-out retrieval)."""
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"nearest_neighbours: metric must be 'euclidean' or 'cosine', got "
                         f"{metric!r}")
    Q = _raw2d(query, "query").astype(np.float64)
    D = _raw2d(database, "database").astype(np.float64)
    if Q.shape[1] != D.shape[1]:
        raise ValueError(f"nearest_neighbours: query has {Q.shape[1]} features, database "
                         f"{D.shape[1]}")
    if k > len(D) - int(exclude_self):
        raise ValueError(f"nearest_neighbours: k={k} exceeds the database size {len(D)}")
    xp = Tensor._make(Q).xp
    if metric == "cosine":
        Q = Q / xp.maximum(xp.linalg.norm(Q, axis=1, keepdims=True), 1e-12)
        D = D / xp.maximum(xp.linalg.norm(D, axis=1, keepdims=True), 1e-12)
    d_sq = (D * D).sum(1)
    out = []
    for s in range(0, len(Q), batch_size):
        q = Q[s:s + batch_size]
        dist = (q * q).sum(1)[:, None] - 2.0 * q @ D.T + d_sq[None, :]  # (B, N)
        if exclude_self:
            dist[xp.arange(len(q)), xp.arange(s, s + len(q))] = xp.inf
        out.append(xp.argsort(dist, axis=1, kind="stable")[:, :k])
    return Tensor._make(xp.concatenate(out))


def precision_at_k(query, query_labels, database, database_labels, k: int = 10,
                   metric: str = "euclidean", exclude_self: bool = False) -> float:
    """Mean over queries of |{retrieved j among the k nearest : y_j == y_query}| / k."""
    idx = nearest_neighbours(query, database, k, metric, exclude_self).array
    xp = Tensor._make(idx).xp
    yq = xp.asarray(_raw(query_labels))
    yd = xp.asarray(_raw(database_labels))
    return float((yd[idx] == yq[:, None]).mean())


def _raw(v):
    return v.array if isinstance(v, Tensor) else np.asarray(v)


def _raw2d(v, name: str):
    a = _raw(v)
    if a.ndim != 2:
        a = a.reshape(len(a), -1)
    return a


# ----------------------------------------------------------------------------- text data
def load_kjv_bow(path: str | None = None) -> tuple:
    """The embedded King James Bible bag of words: counts (1189, V) float32 Tensor (one row
    per chapter), labels (1189,) int64 Tensor (section of the canon: 0 Law, 1 History,
    2 Poetry & Wisdom, 3 Prophets, 4 Gospels & Acts, 5 Epistles & Revelation) and a dict
    with "vocab", "label_names", "book_names", "book" and "chapter" per document. Built by
    scripts/make_kjv_bow.py from Debian's bible-kjv-text (public domain text)."""
    path = path or KJV_BOW_PATH
    try:
        with np.load(path, allow_pickle=False) as f:
            d = {key: f[key] for key in f.files}
    except (OSError, ValueError, KeyError) as e:
        raise OSError(f"load_kjv_bow: cannot read {path}: {e}") from e
    need = {"indptr", "indices", "counts", "labels", "vocab", "label_names"}
    if not need <= set(d):
        raise OSError(f"load_kjv_bow: {path} lacks arrays {sorted(need - set(d))}")
    vocab = str(d["vocab"]).split("\n")
    indptr = d["indptr"].astype(np.int64)
    if indptr[-1] != len(d["indices"]) or len(indptr) != len(d["labels"]) + 1:
        raise OSError(f"load_kjv_bow: {path} is inconsistent (indptr ends at {indptr[-1]}, "
                      f"{len(d['indices'])} entries, {len(d['labels'])} labels)")
    counts = np.zeros((len(indptr) - 1, len(vocab)), dtype=np.float32)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    counts[rows, d["indices"].astype(np.int64)] = d["counts"]
    meta = {"vocab": vocab, "label_names": str(d["label_names"]).split("\n"),
            "book_names": str(d["book_names"]).split("\n"), "book": d["book"].astype(int),
            "chapter": d["chapter"].astype(int)}
    return Tensor._make(counts), Tensor._make(d["labels"].astype(np.int64)), meta


def tfidf(counts: Tensor, idf: Tensor | None = None) -> tuple:
    """log(1 + tf) * idf rows, idf = log(N / df); returns (features, idf). A stronger
    baseline than raw counts: it down-weights words every chapter uses."""
    c = counts.array
    xp = counts.xp
    if idf is None:
        df = (c > 0).sum(0)
        idf = Tensor._make(xp.log(len(c) / xp.maximum(df, 1)).astype(c.dtype))
    return Tensor._make(xp.log1p(c) * idf.array), idf


# --------------------------------------------------------------------- bag-of-words AE
@dataclass
class BoWAEConfig:
    vocab_size: int = 2000
    hidden: int = 256
    code_dim: int = 32


class BagOfWordsAE(nn.Module):
    """Deep autoencoder for word-count vectors (after Hinton & Salakhutdinov 2006, who used
    a constrained-Poisson / softmax visible layer for documents).

    Encoder sees x = log(1 + counts) (damps long documents and frequent words); the decoder
    outputs a distribution over the vocabulary, and the loss is the multinomial negative
    log-likelihood of the document's words per word:
    L = -(1 / sum_w c_w) sum_w c_w log softmax(g(f(x)))_w."""

    def __init__(self, config: BoWAEConfig | None = None, **overrides):
        super().__init__()
        cfg = replace(config or BoWAEConfig(), **overrides)
        self.config = cfg
        self.encoder = nn.Sequential(nn.Linear(cfg.vocab_size, cfg.hidden), nn.ReLU(),
                                     nn.Linear(cfg.hidden, cfg.code_dim))
        self.decoder = nn.Sequential(nn.Linear(cfg.code_dim, cfg.hidden), nn.ReLU(),
                                     nn.Linear(cfg.hidden, cfg.vocab_size))

    def encode(self, counts: Tensor) -> Tensor:
        if counts.shape[-1] != self.config.vocab_size:
            raise ValueError(f"BagOfWordsAE: counts have {counts.shape[-1]} words, the model "
                             f"{self.config.vocab_size}")
        return self.encoder(counts.log1p())  # (B, V) -> (B, k)

    def forward(self, counts: Tensor) -> Tensor:
        """Word probabilities (B, V)."""
        return self.decoder(self.encode(counts)).softmax(-1)

    def loss(self, batch) -> tuple:
        c = _inputs(batch)
        log_p = self.decoder(self.encode(c)).log_softmax(-1)  # (B, V)
        n_words = c.sum(-1).clamp(min=1.0)
        nll = (-(c * log_p).sum(-1) / n_words).mean()
        return nll, {"loss": float(nll.item())}
