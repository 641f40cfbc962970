"""BERT (Devlin, Chang, Lee & Toutanova 2019, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding") at CPU size: 2-4 layers, d = 128.

Input (Sec. 3, Fig. 2): [CLS] A [SEP] B [SEP] as subword ids (BPE here, WordPiece in the
paper), the sum of token, position and segment (A = 0, B = 1) embeddings, LayerNorm and
dropout, then post-LN Transformer encoder layers (Vaswani et al. 2017) with GELU:

    h_0 = dropout(LN(E_tok[x_t] + E_pos[t] + E_seg[s_t]))
    h_l = LN(h' + FF(h')),  h' = LN(h_{l-1} + SA(h_{l-1}))        (padding keys masked)

Pre-training (Sec. 3.1, Appendix A.1) sums two losses:
  * masked LM: 15% of the (non-special) positions are chosen; of those 80% become [MASK],
    10% a random token, 10% stay; the model predicts the original token there only:
        L_MLM = -mean_{t chosen} log softmax(W_e GELU-LN(W h_t) + b)[x_t]  (W_e = E_tok, tied)
  * next-sentence prediction: B is A's true continuation (IsNext) half of the time, random
    text (NotNext) otherwise; A and B are spans of consecutive sentences filling the max
    length together (Sec. 3.1, A.2; tl.data.NextSpanPairs, `span_pairs`, drawn afresh by
    tl.data.RedrawLoader or `dupe_factor` times by `span_pair_datasets`; single sentences:
    tl.data.NextSentencePairs); from the pooled [CLS] vector
        p = tanh(W_p h_[CLS] + b_p),   L_NSP = -log softmax(W_c p + b_c)[is_next].
Masks are drawn afresh at every call of `loss` (dynamic masking, as RoBERTa; the paper
duplicated the data 10 times with different static masks). `encode` gives the pooled [CLS]
vector p, the input of a fine-tuned classifier (Sec. 4); its evaluation and fine-tuning
helpers are in models/bert_eval.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Categorical
from tinylatent.tensor import Tensor

from .config import resolve_config

__all__ = ["BERT", "BERTConfig", "SPECIALS", "mask_tokens", "encode_pair", "encode_pairs",
           "span_pairs", "span_pair_datasets", "IGNORE"]

# the tokenizer's special tokens, in id order (tl.data tokenizers always put <unk> first)
SPECIALS = ("<unk>", "[PAD]", "[CLS]", "[SEP]", "[MASK]")
IGNORE = -1          # label of positions the MLM loss does not score


@dataclass(frozen=True)
class BERTConfig:
    in_features: int = 2000          # vocabulary size V (specials first, see SPECIALS)
    hidden_features: int = 128       # d_model
    num_layers: int = 2
    num_heads: int = 4
    block_size: int = 64             # the longest input (position embeddings)
    dropout: float = 0.1
    mask_prob: float = 0.15          # Sec. 3.1: 15% of the positions are predicted
    pad_token_id: int = 1
    cls_token_id: int = 2
    sep_token_id: int = 3
    mask_token_id: int = 4
    num_special_tokens: int = 5      # ids below this are never chosen nor drawn as random


def mask_tokens(ids, config: BERTConfig, generator=None) -> tuple:
    """(inputs, labels) as NumPy int64 arrays, the masked-LM corruption of ids (B, T):
    each non-special position is chosen with probability mask_prob; a chosen position
    becomes [MASK] with probability 0.8, a uniform random non-special token with 0.1, or
    stays with 0.1; labels hold the original token there and IGNORE elsewhere."""
    ids = np.asarray(ids.array if isinstance(ids, Tensor) else ids, dtype=np.int64)
    shape = ids.shape
    u = tl.rand(3, *shape, dtype="float64", generator=generator).numpy()     # (3, B, T)
    chosen = (u[0] < config.mask_prob) & (ids >= config.num_special_tokens)
    inputs = ids.copy()
    to_mask = chosen & (u[1] < 0.8)
    to_random = chosen & (u[1] >= 0.8) & (u[1] < 0.9)
    random_tokens = config.num_special_tokens + np.floor(
        u[2] * (config.in_features - config.num_special_tokens)).astype(np.int64)
    inputs[to_mask] = config.mask_token_id
    inputs[to_random] = random_tokens[to_random]
    labels = np.where(chosen, ids, IGNORE)
    return inputs, labels


def _truncate_pair(a: list, b: list, max_tokens: int) -> None:
    """In place: drop the last token of the longer of a, b until they fit (BERT's
    create_pretraining_data truncates the longer one, here from the end)."""
    while len(a) + len(b) > max_tokens:
        (a if len(a) >= len(b) else b).pop()


def encode_pair(tokenizer, first: str, second: str | None, max_len: int,
                config: BERTConfig = BERTConfig()) -> tuple:
    """([CLS] A [SEP] B [SEP] ids padded to max_len, segments (0 for [CLS] A [SEP], 1 for
    B [SEP], 0 for padding)), both int64 (max_len,); without `second`: [CLS] A [SEP]."""
    a = tokenizer.encode(first)
    b = tokenizer.encode(second) if second is not None else []
    _truncate_pair(a, b, max_len - (3 if second is not None else 2))
    ids = [config.cls_token_id, *a, config.sep_token_id]
    segments = [0] * len(ids)
    if second is not None:
        ids += [*b, config.sep_token_id]
        segments += [1] * (len(b) + 1)
    pad = max_len - len(ids)
    return (np.asarray(ids + [config.pad_token_id] * pad, np.int64),
            np.asarray(segments + [0] * pad, np.int64))


def encode_pairs(pairs, tokenizer, max_len: int, config: BERTConfig = BERTConfig()):
    """A TensorDataset (ids (N, max_len), segments (N, max_len), is_next (N,)) from
    (first, second, is_next) triples such as tl.data.NextSentencePairs."""
    rows = [encode_pair(tokenizer, a, b, max_len, config) for a, b, _ in pairs]
    return tl.data.TensorDataset(np.stack([r[0] for r in rows]),
                                 np.stack([r[1] for r in rows]),
                                 np.asarray([p[2] for p in pairs], np.int64))


def span_pairs(docs, tokenizer, max_len: int, config: BERTConfig, generator=None):
    """`encode_pairs` of one draw of tl.data.NextSpanPairs(docs, A + B within max_len - 3
    tokens) from `generator`: the paper's next-sentence span pairs (Sec. 3.1, A.2)."""
    return encode_pairs(tl.data.NextSpanPairs(docs, tokenizer, max_len - 3,
                                              generator=generator), tokenizer, max_len, config)


def span_pair_datasets(train_docs, test_docs, tokenizer, max_len: int, config: BERTConfig,
                       seed: int, dupe_factor: int = 1) -> tuple:
    """(train, held-out) `encode_pairs` datasets of next-sentence span pairs
    (tl.data.NextSpanPairs, A + B within max_len - 3 tokens) from two lists of documents
    (each a list of sentences): the training pairs drawn `dupe_factor` times with seeds
    seed + 1, seed + 2, ... (create_pretraining_data.py's dupe_factor: the same text with
    other cuts and other random B), the held-out pairs once with `seed`."""
    def draw(docs, s):
        return tl.data.NextSpanPairs(docs, tokenizer, max_len - 3, generator=tl.Generator(s))
    train = [p for k in range(dupe_factor) for p in draw(train_docs, seed + 1 + k)]
    return (encode_pairs(train, tokenizer, max_len, config),
            encode_pairs(draw(test_docs, seed), tokenizer, max_len, config))


class BERT(nn.Module):
    """tok_emb, pos_emb, seg_emb, emb_norm; `num_layers` post-LN encoder layers (torch.nn
    names); mlm_transform (Linear + GELU + LayerNorm) and mlm_bias with the decoder tied to
    tok_emb; pooler (Linear + tanh on [CLS]) and nsp_head."""

    def __init__(self, config: BERTConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, BERTConfig, config, overrides)
        d = cfg.hidden_features
        if d % cfg.num_heads:
            raise ValueError(f"BERT: hidden_features={d} must be divisible by "
                             f"num_heads={cfg.num_heads}")
        if not cfg.num_special_tokens < cfg.in_features or max(
                cfg.pad_token_id, cfg.cls_token_id, cfg.sep_token_id,
                cfg.mask_token_id) >= cfg.num_special_tokens:
            raise ValueError(f"BERT: special token ids must be below num_special_tokens="
                             f"{cfg.num_special_tokens} < in_features={cfg.in_features}")
        self.tok_emb = nn.Embedding(cfg.in_features, d)
        self.pos_emb = nn.Embedding(cfg.block_size, d)
        self.seg_emb = nn.Embedding(2, d)
        self.emb_norm = nn.LayerNorm(d, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d, cfg.num_heads, dim_feedforward=4 * d,
                                       dropout=cfg.dropout, activation="gelu",
                                       layer_norm_eps=1e-12, batch_first=True)
            for _ in range(cfg.num_layers)])
        self.mlm_transform = nn.Linear(d, d)
        self.mlm_norm = nn.LayerNorm(d, eps=1e-12)
        self.mlm_bias = nn.Parameter(tl.zeros(cfg.in_features))
        self.pooler = nn.Linear(d, d)
        self.nsp_head = nn.Linear(d, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT's init: weights N(0, 0.02), biases 0, LayerNorm weights 1."""
        with tl.no_grad():
            for name, p in self.named_parameters():
                if p.ndim >= 2:
                    nn.init.normal_(p, 0.0, 0.02)
                elif "norm" in name and name.endswith("weight"):
                    nn.init.ones_(p)
                else:
                    nn.init.zeros_(p)

    def forward(self, ids: Tensor, segments: Tensor | None = None) -> Tensor:
        """ids, segments (B, T) -> hidden states (B, T, d); padding keys are masked."""
        cfg = self.config
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"BERT: ids must be a (B, T) integer Tensor, got shape "
                             f"{tuple(ids.shape)} dtype {ids.dtype}")
        b, t = ids.shape
        if t > cfg.block_size:
            raise ValueError(f"BERT: sequence length {t} > block_size={cfg.block_size}")
        if ids.numel() and (int(ids.array.min()) < 0 or int(ids.array.max()) >= cfg.in_features):
            raise ValueError(f"BERT: token ids must be in [0, in_features={cfg.in_features})")
        if segments is None:
            segments = tl.zeros(b, t, dtype="int64", device=ids.device)
        elif tuple(segments.shape) != (b, t):
            raise ValueError(f"BERT: segments {tuple(segments.shape)} must match ids {(b, t)}")
        pos = tl.arange(t, device=ids.device)                                   # (T,)
        x = self.tok_emb(ids) + self.pos_emb(pos) + self.seg_emb(segments)      # (B, T, d)
        x = self.drop(self.emb_norm(x))
        padding = ids.array == cfg.pad_token_id                                 # (B, T)
        key_padding = tl.tensor(padding, device=ids.device) if padding.any() else None
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=key_padding)
        return x

    def pooled(self, h: Tensor) -> Tensor:
        """p = tanh(W_p h_[CLS] + b_p): (B, T, d) -> (B, d)."""
        return tl.tanh(self.pooler(h[:, 0]))

    def mlm_logits(self, h: Tensor) -> Tensor:
        """(..., d) -> (..., V): the tied decoder on GELU-LN(W h)."""
        z = self.mlm_norm(tl.nn.functional.gelu(self.mlm_transform(h)))
        return z @ self.tok_emb.weight.T + self.mlm_bias

    def encode(self, ids: Tensor, segments: Tensor | None = None) -> Tensor:
        """The pooled [CLS] vector (B, d) of each input."""
        return self.pooled(self(ids, segments))

    def pretraining_loss(self, inputs, segments, labels, is_next=None) -> tuple:
        """L_MLM (+ L_NSP when is_next is given) on already-masked inputs (B, T) with
        labels (B, T) (IGNORE where not scored); metrics: accuracies and both losses."""
        inputs = inputs if isinstance(inputs, Tensor) else tl.tensor(inputs)
        labels = np.asarray(labels.array if isinstance(labels, Tensor) else labels)
        h = self(inputs, segments)                                             # (B, T, d)
        rows, cols = np.nonzero(labels != IGNORE)                              # (M,) each
        if len(rows) == 0:
            raise ValueError("BERT.loss: no position was chosen for the masked LM (all "
                             "special tokens or padding?)")
        logits = self.mlm_logits(h[rows, cols])                                # (M, V)
        targets = tl.tensor(labels[rows, cols])
        mlm = -Categorical(logits=logits).log_prob(targets).mean()
        metrics = {"mlm_loss": mlm.detach(),
                   "mlm_accuracy": (logits.detach().argmax(-1) == targets).float().mean()}
        loss = mlm
        if is_next is not None:
            is_next = is_next if isinstance(is_next, Tensor) else tl.tensor(is_next)
            nsp_logits = self.nsp_head(self.pooled(h))                          # (B, 2)
            nsp = -Categorical(logits=nsp_logits).log_prob(is_next).mean()
            loss = loss + nsp
            metrics["nsp_loss"] = nsp.detach()
            metrics["nsp_accuracy"] = (nsp_logits.detach().argmax(-1) == is_next) \
                .float().mean()
        metrics["loss"] = loss.detach()
        return loss, metrics

    def loss(self, batch, generator=None) -> tuple:
        """batch: ids (B, T) (masked LM only, one segment), or (ids, segments, is_next)
        (masked LM + NSP); masks drawn from `generator` (default: tl's global one)."""
        if isinstance(batch, Tensor):
            ids, segments, is_next = batch, None, None
        elif isinstance(batch, (tuple, list)) and len(batch) == 3:
            ids, segments, is_next = batch
        else:
            raise ValueError("BERT.loss: batch must be ids (B, T) or (ids, segments, "
                             f"is_next), got {type(batch).__name__}")
        inputs, labels = mask_tokens(ids, self.config, generator)
        return self.pretraining_loss(tl.tensor(inputs, device=ids.device), segments, labels,
                                     is_next)
