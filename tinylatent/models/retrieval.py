"""Retrieval with autoencoder codes (seed 000): similar images by deep-AE codes vs pixels, and
similar documents by a bag-of-words autoencoder vs raw word counts.

Seed 000 ("semantic hashing", Salakhutdinov & Hinton 2009; Hinton & Salakhutdinov 2006):
encode every item once, then answer a query by its nearest codes. Quality is measured by
precision@k by label: of the k items retrieved for a query, the fraction that share the
query's label.

    p = precision_at_k(codes_test, y_test, codes_train, y_train, k=10)
    counts, labels, meta = tinylatent.data.load_kjv_bow()   # 1,189 KJV chapters x 2,000 words
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import autograd, nn
from ..distributions import Categorical
from ..tensor import Tensor
from .autoencoders import _inputs, _metrics
from .config import resolve_config

__all__ = ["precision_at_k", "nearest_neighbours", "BagOfWordsAE", "BoWAEConfig"]


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
    idx = nearest_neighbours(query, database, k, metric, exclude_self).data
    xp = Tensor._make(idx).xp
    yq = xp.asarray(_raw(query_labels))
    yd = xp.asarray(_raw(database_labels))
    return float((yd[idx] == yq[:, None]).mean())


def _raw(v):
    return v.data if isinstance(v, Tensor) else np.asarray(v)


def _raw2d(v, name: str):
    a = _raw(v)
    if a.ndim != 2:
        a = a.reshape(len(a), -1)
    return a


# --------------------------------------------------------------------- bag-of-words AE
@dataclass(frozen=True)
class BoWAEConfig:
    in_features: int = 2000     # the vocabulary size V
    hidden_features: int = 256
    latent_features: int = 32


class BagOfWordsAE(nn.Module):
    """Deep autoencoder for word-count vectors (after Hinton & Salakhutdinov 2006, who used
    a constrained-Poisson / softmax visible layer for documents).

    Encoder sees x = log(1 + counts) (damps long documents and frequent words); the decoder
    outputs a distribution over the vocabulary, and the loss is the multinomial negative
    log-likelihood of the document's words per word:
    L = -(1 / sum_w c_w) sum_w c_w log softmax(g(f(x)))_w."""

    def __init__(self, config: BoWAEConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, BoWAEConfig, config, overrides)
        v, h, k = cfg.in_features, cfg.hidden_features, cfg.latent_features
        self.encoder = nn.Sequential(nn.Linear(v, h), nn.ReLU(), nn.Linear(h, k))
        self.decoder = nn.Sequential(nn.Linear(k, h), nn.ReLU(), nn.Linear(h, v))

    def encode(self, counts: Tensor) -> Tensor:
        if counts.shape[-1] != self.config.in_features:
            raise ValueError(f"BagOfWordsAE: counts have {counts.shape[-1]} words, the model "
                             f"{self.config.in_features}")
        return self.encoder(counts.log1p())  # (B, V) -> (B, k)

    def forward(self, counts: Tensor) -> Tensor:
        """Word probabilities (B, V)."""
        return self.decoder(self.encode(counts)).softmax(-1)

    def reconstruct(self, counts: Tensor) -> Tensor:
        """The decoded word distribution (B, V), without a graph."""
        with autograd.no_grad():
            return self(counts)

    def loss(self, batch) -> tuple:
        c = _inputs(batch)
        # the multinomial log-likelihood up to the count-only coefficient:
        # sum_w c_w log p_w, with log p_w the normalised logits of a Categorical
        log_p = Categorical(logits=self.decoder(self.encode(c))).logits   # (B, V)
        n_words = c.sum(-1).clamp(min=1.0)
        nll = (-(c * log_p).sum(-1) / n_words).mean()
        return nll, _metrics(loss=nll)
