"""SimCSE (Gao, Yao & Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence
Embeddings"): a Transformer sentence encoder trained with in-batch InfoNCE.

h_i = f(x_i) is the sentence embedding, sim the cosine similarity, tau the temperature
(the paper's 0.05). For a batch of N sentences:

  unsupervised (sec. 3): the same sentence passed twice, the two standard dropout masks
  z, z' being the only "augmentation"; its positive is itself under the other mask

    l_i = -log exp(sim(h_i^z, h_i^z') / tau) / sum_j exp(sim(h_i^z, h_j^z') / tau)     (eq. 4)

  supervised (sec. 4): labelled triples (x_i, x_i^+, x_i^-) of an anchor, a positive and a
  hard negative; every other positive and every hard negative in the batch is a negative

    l_i = -log exp(sim(h_i, h_i^+) / tau)
               / sum_j ( exp(sim(h_i, h_j^+) / tau) + exp(sim(h_i, h_j^-) / tau) )       (eq. 5)

Both are `simcse_loss` (one cross-entropy over the (N, N) or (N, 2N) logits, target i).
The encoder is a small BERT (models/bert.py) without its pre-training heads' losses; the
representation is the [CLS] state passed through the pooler MLP (Linear + tanh) during
training, and (`mlp_only_train`, the paper's choice for unsupervised SimCSE, sec. 3 and
appendix) the [CLS] state without it at test time; pooling "mean" averages the non-padding
states instead of taking [CLS]. `encode` is meant to be called on a frozen model (eval
mode: dropout off), e.g. through tl.eval.frozen_features.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn, ops
from ..ops.reduce import logsumexp
from ..tensor import Tensor
from .bert import BERT, BERTConfig
from .config import resolve_config

__all__ = ["SimCSE", "SimCSEConfig", "simcse_loss"]


def simcse_loss(h: Tensor, h_pos: Tensor, h_neg: Tensor | None = None,
                temperature: float = 0.05) -> Tensor:
    """Eq. 4 (h_neg None) or eq. 5: the mean over i of logsumexp_j(logits_ij) - logits_ii
    with logits = cos(h_i, [h_pos; h_neg]_j) / tau, (N, N) or (N, 2N)."""
    for name, t in (("h", h), ("h_pos", h_pos), ("h_neg", h_neg)):
        if t is not None and (t.ndim != 2 or tuple(t.shape) != tuple(h.shape)):
            raise ValueError(f"simcse_loss: {name} must be (N, D) = {tuple(h.shape)} like h, "
                             f"got {tuple(t.shape)}")
    if not temperature > 0:
        raise ValueError(f"simcse_loss: temperature must be > 0, got {temperature}")
    keys = h_pos if h_neg is None else ops.cat([h_pos, h_neg], axis=0)     # (N or 2N, D)
    logits = (ops.normalize(h, dim=-1) @ ops.normalize(keys, dim=-1).T) * (1.0 / temperature)
    n = h.shape[0]
    pos = logits[np.arange(n), np.arange(n)]                                # (N,)
    return (logsumexp(logits, axis=1) - pos).mean()


@dataclass(frozen=True)
class SimCSEConfig:
    in_features: int = 2000          # vocabulary size V (BERT's specials first)
    hidden_features: int = 128       # d_model = the sentence embedding's width
    num_layers: int = 2
    num_heads: int = 4
    block_size: int = 48             # the longest input, [CLS] ... [SEP] with padding
    dropout: float = 0.1             # the unsupervised positive's only noise (sec. 3)
    temperature: float = 0.05        # tau (the paper's)
    pooling: str = "cls"             # "cls" (the paper's) or "mean" over non-padding
    mlp_only_train: bool = True      # the pooler MLP in training only (unsup, sec. 3)
    pad_token_id: int = 1


class SimCSE(nn.Module):
    """encoder (a BERT: embeddings, post-LN Transformer layers, pooler MLP)."""

    def __init__(self, config: SimCSEConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = self.config = resolve_config(self, SimCSEConfig, config, overrides)
        if cfg.pooling not in ("cls", "mean"):
            raise ValueError(f"SimCSE: pooling must be 'cls' or 'mean', got {cfg.pooling!r}")
        self.encoder = BERT(BERTConfig(
            in_features=cfg.in_features, hidden_features=cfg.hidden_features,
            num_layers=cfg.num_layers, num_heads=cfg.num_heads, block_size=cfg.block_size,
            dropout=cfg.dropout, pad_token_id=cfg.pad_token_id))

    def _pool(self, ids: Tensor) -> Tensor:
        h = self.encoder(ids)                                                # (B, T, d)
        if self.config.pooling == "cls":
            return h[:, 0]                                                   # (B, d)
        keep = Tensor._make((ids.array != self.config.pad_token_id).astype(h.dtype))  # (B, T)
        return (h * keep.unsqueeze(2)).sum(axis=1) / keep.sum(axis=1, keepdims=True)

    def represent(self, ids: Tensor) -> Tensor:
        """The training representation: pooled state through the pooler MLP (B, d)."""
        return ops.tanh(self.encoder.pooler(self._pool(ids)))

    def encode(self, ids: Tensor) -> Tensor:
        """The sentence embedding (B, d) of token ids (B, T) ([CLS] x [SEP], padded)."""
        return self._pool(ids) if self.config.mlp_only_train else self.represent(ids)

    def loss(self, batch) -> tuple[Tensor, dict]:
        """ids (B, T): unsupervised (eq. 4, the batch twice through dropout in one pass);
        (anchor, positive, hard negative) ids, each (B, T): supervised (eq. 5)."""
        if isinstance(batch, (tuple, list)) and len(batch) == 1:     # a DataLoader's (ids,)
            batch = batch[0]
        if isinstance(batch, Tensor):
            ids, n, supervised = ops.cat([batch, batch], axis=0), batch.shape[0], False
        elif isinstance(batch, (tuple, list)) and len(batch) == 3:
            if len({tuple(t.shape) for t in batch}) != 1:
                raise ValueError("SimCSE.loss: anchor, positive and negative ids must have "
                                 f"one shape, got {[tuple(t.shape) for t in batch]}")
            ids, n, supervised = ops.cat(list(batch), axis=0), batch[0].shape[0], True
        else:
            raise ValueError("SimCSE.loss: batch must be ids (B, T) (unsupervised) or "
                             "(anchor, positive, negative) ids (supervised)")
        if n < 2:
            raise ValueError(f"SimCSE.loss: in-batch negatives need B >= 2, got {n}")
        z = self.represent(ids)                                   # (2B or 3B, d): one pass
        loss = simcse_loss(z[:n], z[n:2 * n], z[2 * n:] if supervised else None,
                           self.config.temperature)
        zd = ops.normalize(z.detach(), dim=-1)
        s = zd[:n] @ zd[n:].T                                             # (B, B or 2B)
        accuracy = (s.argmax(-1) == Tensor._make(s.xp.arange(n))).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": accuracy}
