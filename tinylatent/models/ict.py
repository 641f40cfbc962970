"""The inverse cloze task (Lee, Chang & Toutanova 2019, "Latent Retrieval for Weakly
Supervised Open Domain Question Answering", Sec. 4-5): retrieval pre-training with two
Transformer towers.

A sentence q is the pseudo-query and its surrounding passage b the pseudo-evidence (with
q removed from b most of the time, tl.data.InverseClozePairs: p_remove = 0.9, so the model
has to match meaning, not words). Each tower is a BERT encoder (tinylatent/models/bert.py)
whose pooled [CLS] vector is projected linearly to `latent_features` (eq. 1-2):

    h_q = W_q BERT_Q(q)[CLS],     h_b = W_b BERT_B(b)[CLS],     S(b, q) = h_q^T h_b

and the loss is the softmax cross-entropy of the true passage among the B passages of the
batch (in-batch negatives, Sec. 4):

    L = -(1/B) sum_i log ( exp S(b_i, q_i) / sum_j exp S(b_j, q_i) ).

Retrieval ranks every candidate passage by S(b, q) (`scores`); recall@k is the share of
queries whose own passage is among the k best (`recall_at_k`).

Two options depart from the paper for small towers trained from scratch (measured on the
KJV pairs of examples/ict_kjv.py): pooling="mean" averages the hidden states over the
non-padding positions instead of taking the pooled [CLS] vector, and temperature=tau scores
by S = cos(h_q, h_b) / tau (as SimCSE, Gao et al. 2021) instead of the raw dot product. At
BERT's N(0, 0.02) init the [CLS] vectors of different inputs differ by ~1% of their norm,
so the raw dot products of a batch start within ~1e-3 of each other, and 300 steps of
B = 32 (lr 2e-4) leave the loss at log B; [CLS] with tau is still at log B after 150
steps, mean pooling with tau = 0.05 reaches in-batch accuracy 0.21 after 200.

shared=True uses one BERT for queries and passages (the two projections stay separate), half
the encoder parameters: from scratch on the KJV the two towers overfit (train in-batch
accuracy 0.79 while held-out recall levels off), and on a validation split carved from the
training chapters the shared tower gave recall@10 0.150 against 0.131 after 300 steps (so
examples/ict_kjv.py shares it), but after 5 epochs it reached 0.048 / 0.237 recall@1 / @10
on the held-out chapters where two towers had reached 0.058 / 0.249 (README row).
`load_towers` starts the tower(s) from a BERT checkpoint (ORQA Sec. 5).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Categorical
from tinylatent.tensor import Tensor

from .bert import BERT, BERTConfig
from .config import resolve_config

__all__ = ["ICT", "ICTConfig", "recall_at_k"]


@dataclass(frozen=True)
class ICTConfig:
    in_features: int = 2000          # vocabulary size V (BERT's specials first)
    hidden_features: int = 128       # each tower's d_model
    latent_features: int = 128       # the retrieval space (the paper's 128)
    num_layers: int = 2
    num_heads: int = 4
    block_size: int = 96             # the longest passage
    dropout: float = 0.1
    pooling: str = "cls"             # "cls": the pooled [CLS] vector (the paper's); "mean"
    temperature: float | None = None  # None: S = h_q^T h_b (eq. 2); tau: cosine / tau
    shared: bool = False             # one BERT for both towers (the projections stay two)


class ICT(nn.Module):
    """query_encoder, context_encoder (BERT towers, no weights shared as in the paper, or
    one module when shared),
    query_proj, context_proj (Linear, no bias)."""

    def __init__(self, config: ICTConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, ICTConfig, config, overrides)
        if cfg.pooling not in ("cls", "mean"):
            raise ValueError(f"ICT: pooling must be 'cls' or 'mean', got {cfg.pooling!r}")
        if cfg.temperature is not None and not cfg.temperature > 0:
            raise ValueError(f"ICT: temperature must be None or > 0, got {cfg.temperature}")
        tower = BERTConfig(in_features=cfg.in_features, hidden_features=cfg.hidden_features,
                           num_layers=cfg.num_layers, num_heads=cfg.num_heads,
                           block_size=cfg.block_size, dropout=cfg.dropout)
        self.query_encoder = BERT(tower)
        self.context_encoder = self.query_encoder if cfg.shared else BERT(tower)
        self.query_proj = nn.Linear(cfg.hidden_features, cfg.latent_features, bias=False)
        self.context_proj = nn.Linear(cfg.hidden_features, cfg.latent_features, bias=False)

    def load_towers(self, path: str) -> None:
        """Both towers from a BERT checkpoint (tl.save's .npz with a "model" state dict, as
        tl.train.Trainer writes: ORQA Sec. 5 starts both towers from pre-trained BERT).
        A checkpoint with fewer positions fills the first ones (the rest keep their init);
        any other key whose shape differs is refused, naming the file and both shapes."""
        state = tl.load(path)
        state = dict(state.get("model", state)) if isinstance(state, dict) else None
        if state is None:
            raise ValueError(f"ICT.load_towers: {path} holds no state dict")
        for tower in {id(t): t for t in (self.query_encoder, self.context_encoder)}.values():
            mine = {k: v.detach().numpy() for k, v in tower.state_dict().items()}
            if set(state) != set(mine):
                raise ValueError(f"ICT.load_towers: {path} is not a BERT of these towers: "
                                 f"keys missing {sorted(set(mine) - set(state))[:5]}, "
                                 f"unexpected {sorted(set(state) - set(mine))[:5]}")
            new = {}
            for k, v in mine.items():
                w = np.asarray(state[k])
                if k == "pos_emb.weight" and w.shape[0] <= v.shape[0] \
                        and w.shape[1:] == v.shape[1:]:
                    w = np.concatenate([w, v[len(w):]])
                if w.shape != v.shape:
                    raise ValueError(f"ICT.load_towers: {path}: '{k}' has shape {w.shape} "
                                     f"in the checkpoint, {v.shape} in the towers")
                new[k] = w
            tower.load_state_dict(new)

    def _pool(self, tower: BERT, ids: Tensor) -> Tensor:
        """(B, T) ids -> (B, d): the pooled [CLS] vector, or the mean of the hidden states
        over the non-padding positions (padding rows would otherwise dilute short inputs)."""
        if self.config.pooling == "cls":
            return tower.encode(ids)
        h = tower(ids)                                                       # (B, T, d)
        keep = Tensor._make((ids.array != tower.config.pad_token_id).astype(h.dtype))
        return (h * keep.unsqueeze(2)).sum(axis=1) / keep.sum(axis=1, keepdims=True)

    def _space(self, h: Tensor) -> Tensor:
        """With a temperature tau, unit vectors scaled by 1/sqrt(tau) each, so that
        h_q^T h_b = cos(h_q, h_b) / tau; without, h unchanged (eq. 2)."""
        tau = self.config.temperature
        return h if tau is None else tl.ops.normalize(h, dim=-1) * float(tau) ** -0.5

    def encode_query(self, ids: Tensor) -> Tensor:
        """h_q (B, latent) of query ids (B, T) ([CLS] q [SEP], padded)."""
        return self._space(self.query_proj(self._pool(self.query_encoder, ids)))

    def encode_context(self, ids: Tensor) -> Tensor:
        """h_b (B, latent) of passage ids (B, T)."""
        return self._space(self.context_proj(self._pool(self.context_encoder, ids)))

    def encode(self, x: Tensor) -> Tensor:
        """The query embedding of ids (B, T), or of the queries of a stacked batch
        (B, 2, T)."""
        return self.encode_query(x[:, 0] if x.ndim == 3 else x)

    @staticmethod
    def _split(batch) -> tuple:
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch
        if isinstance(batch, Tensor) and batch.ndim == 3 and batch.shape[1] == 2:
            return batch[:, 0], batch[:, 1]                      # (B, T) each
        raise ValueError("ICT.loss: batch must be (queries (B, Tq), passages (B, Tb)) or "
                         f"one (B, 2, T) Tensor, got {getattr(batch, 'shape', type(batch))}")

    def loss(self, batch) -> tuple:
        """In-batch softmax over the B passages for each of the B queries (Sec. 4)."""
        queries, passages = self._split(batch)
        if queries.shape[0] != passages.shape[0] or queries.shape[0] < 2:
            raise ValueError(f"ICT.loss: need B >= 2 queries and as many passages, got "
                             f"{queries.shape[0]} and {passages.shape[0]}")
        s = self.encode_query(queries) @ self.encode_context(passages).T    # (B, B)
        target = tl.arange(s.shape[0], device=s.device)
        nll = -Categorical(logits=s).log_prob(target).mean()
        accuracy = (s.detach().argmax(-1) == target).float().mean()
        return nll, {"loss": nll.detach(), "in_batch_accuracy": accuracy}

    @tl.no_grad()
    def scores(self, queries, passages, batch_size: int = 256) -> np.ndarray:
        """S(b_j, q_i) (Q, P) for query ids (Q, Tq) and passage ids (P, Tb) (NumPy)."""
        was_training = self.training
        self.eval()

        def embed(f, ids):
            ids = np.asarray(ids)
            return np.concatenate([f(tl.tensor(ids[s:s + batch_size])).numpy()
                                   for s in range(0, len(ids), batch_size)])
        q = embed(self.encode_query, queries)
        b = embed(self.encode_context, passages)
        self.train(was_training)
        return q @ b.T


def recall_at_k(scores: np.ndarray, k: int, relevant: np.ndarray | None = None,
                exclude: np.ndarray | None = None) -> float:
    """Share of queries i whose relevant candidate (default: candidate i) is among the k
    highest scores of row i (ties counted against it); candidates where the boolean
    `exclude` (Q, P) is set are left out of the ranking (e.g. passages that contain the
    query sentence itself)."""
    scores = np.array(scores, dtype=np.float64)
    if exclude is not None:
        scores[exclude] = -np.inf
    relevant = np.arange(len(scores)) if relevant is None else np.asarray(relevant)
    own = scores[np.arange(len(scores)), relevant]
    rank = (scores > own[:, None]).sum(1) + (scores == own[:, None]).sum(1) - 1   # 0 = best
    return float((rank < k).mean())
