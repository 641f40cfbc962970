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
from ..eval.neighbours import nearest_neighbours, precision_at_k  # noqa: F401 (moved to tl.eval)
from ..tensor import Tensor
from .autoencoders import _inputs, _metrics
from .config import resolve_config

__all__ = ["precision_at_k", "nearest_neighbours", "BagOfWordsAE", "BoWAEConfig"]


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
