"""A decoder-only Transformer language model: GPT (Radford et al. 2018, 2019) as nanoGPT
writes it, at CPU size (4 layers, 4 heads, d = 128, context 64).

    h_0 = dropout(E[x_t] + P[t])                          token + learned position embeddings
    h_l = h_{l-1} + SA(LN(h_{l-1}));  h_l += FF(LN(h_l))  pre-LayerNorm blocks (GPT-2, Sec. 2.3)
    SA: causal multi-head self-attention, softmax(q k^T / sqrt(d_h) + M) v with M_ts = -inf
        for s > t (Vaswani et al. 2017, Sec. 3.2.3), so position t sees tokens <= t only
    FF: Linear(d, 4d), GELU, Linear(4d, d)
    p(x_{t+1} | x_<=t) = softmax(LN(h_L) E^T)             output weights tied to E
                                                          (Press & Wolf 2017)
The blocks are tl.nn.TransformerEncoderLayer(norm_first=True, activation="gelu"), whose
parameter names are torch.nn's, with a causal mask. Init as GPT-2 / nanoGPT: every weight
N(0, 0.02), biases 0, the two projections back into the residual stream (attention out_proj,
linear2) N(0, 0.02 / sqrt(2 L)). Train with AdamW (weight decay on matrices only, see
`param_groups`), linear warm-up and cosine decay (Loshchilov & Hutter 2017).
The interface (forward / log_prob / loss / sample) is that of language_model.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import tinylatent as tl
from tinylatent import nn
from tinylatent.tensor import Tensor

from .config import resolve_config
from .language_model import (check_ids, lm_nll, next_token, split_lm_batch, start_tokens,
                             token_log_prob, with_bos)

__all__ = ["TransformerLM", "TransformerLMConfig"]


@dataclass(frozen=True)
class TransformerLMConfig:
    in_features: int = 65            # V, the vocabulary size
    block_size: int = 64             # the context length
    hidden_features: int = 128       # d_model (n_embd)
    num_layers: int = 4
    num_heads: int = 4
    dropout: float = 0.0
    tie_weights: bool = True
    bos_token_id: int = 0            # the start token log_prob / sample begin from


class TransformerLM(nn.Module):
    """GPT: tok_emb, pos_emb, `num_layers` pre-LN causal blocks, a final LayerNorm `norm`,
    lm_head (no bias; its weight is tok_emb.weight when tied)."""

    def __init__(self, config: TransformerLMConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, TransformerLMConfig, config, overrides)
        d = cfg.hidden_features
        if d % cfg.num_heads:
            raise ValueError(f"TransformerLM: hidden_features={d} must be divisible by "
                             f"num_heads={cfg.num_heads}")
        if not 0 <= cfg.bos_token_id < cfg.in_features:
            raise ValueError(f"TransformerLM: bos_token_id={cfg.bos_token_id} outside "
                             f"[0, in_features={cfg.in_features})")
        self.tok_emb = nn.Embedding(cfg.in_features, d)
        self.pos_emb = nn.Embedding(cfg.block_size, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d, cfg.num_heads, dim_feedforward=4 * d,
                                       dropout=cfg.dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(cfg.num_layers)])
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, cfg.in_features, bias=False)
        self.reset_parameters()
        if cfg.tie_weights:       # one Parameter, listed once by parameters()
            self.lm_head.weight = self.tok_emb.weight

    def reset_parameters(self) -> None:
        """GPT-2's init (nanoGPT `_init_weights` and the scaled c_proj)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.num_layers)
        with tl.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("out_proj.weight") or name.endswith("linear2.weight"):
                    nn.init.normal_(p, 0.0, residual_std)
                elif p.ndim >= 2:                  # Linear / Embedding / in_proj weights
                    nn.init.normal_(p, 0.0, 0.02)
                elif "norm" in name and name.endswith("weight"):
                    nn.init.ones_(p)
                else:                              # biases
                    nn.init.zeros_(p)

    def param_groups(self, weight_decay: float = 0.1) -> list[dict]:
        """AdamW groups as nanoGPT: decay the matrices (ndim >= 2), not biases or norms."""
        params = list(self.parameters())
        return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]

    def forward(self, idx: Tensor) -> Tensor:
        """idx (B, T) ids, T <= block_size -> logits (B, T, V); logits[:, t] depends on
        idx[:, :t + 1] only."""
        check_ids("TransformerLM", idx, self.config.in_features)
        t = idx.shape[1]
        if t > self.config.block_size:
            raise ValueError(f"TransformerLM: sequence length {t} > block_size="
                             f"{self.config.block_size}")
        pos = tl.arange(t, device=idx.device)                             # (T,)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))              # (B, T, d)
        for layer in self.layers:
            x = layer(x, is_causal=True)
        return self.lm_head(self.norm(x))                                 # (B, T, V)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x_1..x_T) = sum_t log p(x_t | bos, x_<t), T <= block_size: (B, T) -> (B,)."""
        check_ids("TransformerLM.log_prob", x, self.config.in_features)
        logits = self(with_bos(x, self.config.bos_token_id))
        return token_log_prob(logits, x).sum(axis=1)

    def loss(self, batch) -> tuple[Tensor, dict]:
        """Mean NLL in nats per token (see language_model.py for `batch`)."""
        inputs, targets = split_lm_batch("TransformerLM", batch)
        if inputs is None:
            inputs = with_bos(targets, self.config.bos_token_id)
        return lm_nll(self(inputs), targets)

    @tl.no_grad()
    def sample(self, n: int, length: int | None = None, generator=None,
               temperature: float = 1.0, top_k: int | None = None,
               prompt: Tensor | None = None) -> Tensor:
        """n continuations of `prompt` (P,) or (n, P) ids (default: the bos token), `length`
        (default block_size) tokens each; the context is cropped to the last block_size
        tokens (nanoGPT's generate): (n, length)."""
        was_training = self.training
        self.eval()
        length = self.config.block_size if length is None else length
        x = start_tokens(n, prompt, self.config.bos_token_id, self.lm_head.weight.device)
        p = x.shape[1]
        for _ in range(length):
            logits = self(x[:, -self.config.block_size:])
            x = tl.cat([x, next_token(logits[:, -1], temperature, top_k, generator)], axis=1)
        self.train(was_training)
        return x[:, p:]
