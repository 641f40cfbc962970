"""BERT (tinylatent/models/bert.py) in PyTorch with the same parameter names, for the
training-step benchmark (benchmarks/test_bench_bert.py): token + position + segment
embeddings, LayerNorm, post-LN torch.nn.TransformerEncoderLayer (GELU), the masked-LM head
tied to the token embedding, the pooler and the NSP head; and PretextBERT's three
objectives on that encoder (benchmarks/test_bench_bert_pretext.py). The weights are copied from
tinylatent's by name, and both sides get the same masked inputs, so losses and gradients
must agree before any time is compared."""
from __future__ import annotations

import numpy as np

import tinylatent as tl
from tinylatent.models.bert import BERT, IGNORE

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the benchmark skips without PyTorch
    torch = None


if torch is not None:
    class TorchBERT(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            d = cfg.hidden_features
            self.cfg = cfg
            self.tok_emb = nn.Embedding(cfg.in_features, d)
            self.pos_emb = nn.Embedding(cfg.block_size, d)
            self.seg_emb = nn.Embedding(2, d)
            self.emb_norm = nn.LayerNorm(d, eps=1e-12)
            self.drop = nn.Dropout(cfg.dropout)
            self.layers = nn.ModuleList([
                nn.TransformerEncoderLayer(d, cfg.num_heads, 4 * d, cfg.dropout,
                                           activation="gelu", layer_norm_eps=1e-12,
                                           batch_first=True)
                for _ in range(cfg.num_layers)])
            self.mlm_transform = nn.Linear(d, d)
            self.mlm_norm = nn.LayerNorm(d, eps=1e-12)
            self.mlm_bias = nn.Parameter(torch.zeros(cfg.in_features))
            self.pooler = nn.Linear(d, d)
            self.nsp_head = nn.Linear(d, 2)

        def forward(self, inputs, segments=None):
            t = inputs.shape[1]
            if segments is None:
                segments = torch.zeros_like(inputs)
            x = self.tok_emb(inputs) + self.pos_emb(torch.arange(t)) + self.seg_emb(segments)
            x = self.drop(self.emb_norm(x))
            padding = inputs == self.cfg.pad_token_id
            for layer in self.layers:
                x = layer(x, src_key_padding_mask=padding)
            return x                                                           # (B, T, d)

        def mlm_logits(self, h):
            z = self.mlm_norm(F.gelu(self.mlm_transform(h)))
            return z @ self.tok_emb.weight.T + self.mlm_bias

        def pretraining_loss(self, inputs, segments, labels, is_next=None):
            x = self(inputs, segments)
            rows, cols = torch.nonzero(labels != IGNORE, as_tuple=True)
            loss = F.cross_entropy(self.mlm_logits(x[rows, cols]), labels[rows, cols])
            if is_next is not None:
                loss = loss + F.cross_entropy(
                    self.nsp_head(torch.tanh(self.pooler(x[:, 0]))), is_next)
            return loss


    class TorchPretextBERT(TorchBERT):
        """PretextBERT (tinylatent/models/bert_pretext.py) on this encoder: the corruption
        is drawn by the same NumPy functions from the same tl.Generator seed, so both
        libraries score the same corrupted batch."""

        def __init__(self, cfg):
            super().__init__(cfg)
            if cfg.objective == "shuffle":
                self.order_head = nn.Linear(cfg.hidden_features, cfg.block_size)
            if cfg.objective == "delete":
                self.gap_head = nn.Linear(cfg.hidden_features, 1)

        def loss(self, ids, seed: int):
            from tinylatent.models import bert_pretext as bp
            cfg, g = self.cfg, tl.Generator(seed)
            if cfg.objective == "denoise":
                x_hat, labels = bp.denoise_tokens(ids, cfg, g)
                return self.pretraining_loss(torch.from_numpy(x_hat), None,
                                             torch.from_numpy(labels))
            if cfg.objective == "shuffle":
                x_hat, order = bp.shuffle_tokens(ids, cfg, g)
                h = self(torch.from_numpy(x_hat))                               # (B, T, d)
                rows, cols = np.nonzero(order != IGNORE)
                allowed = (ids >= cfg.num_special_tokens)[rows]                 # (M, T)
                allowed = np.pad(allowed, ((0, 0), (0, cfg.block_size - ids.shape[1])))
                logits = self.order_head(h[rows, cols]) + torch.from_numpy(
                    np.where(allowed, 0.0, -1e9).astype(np.float32))
                return F.cross_entropy(logits, torch.from_numpy(order[rows, cols]))
            x_hat, gaps, words = bp.delete_tokens(ids, cfg, g)
            h = self(torch.from_numpy(x_hat))
            rows, cols = np.nonzero(gaps != IGNORE)
            loss = F.binary_cross_entropy_with_logits(
                self.gap_head(h[rows, cols]).reshape(-1),
                torch.from_numpy(gaps[rows, cols].astype(np.float32)))
            wr, wc = np.nonzero(words != IGNORE)
            if len(wr):
                loss = loss + F.cross_entropy(self.mlm_logits(h[wr, wc]),
                                              torch.from_numpy(words[wr, wc]))
            return loss


def copy_weights(tl_model: BERT, pt_model) -> None:
    named = dict(pt_model.named_parameters())
    for name, p in tl_model.named_parameters():
        with torch.no_grad():
            named[name].copy_(torch.from_numpy(p.detach().numpy().copy()))


def assert_same_gradients(loss, tl_model, ploss, pt_model, rtol: float = 2e-3,
                          atol: float = 2e-5) -> int:
    """Backward both losses and compare them and every gradient by parameter name; a
    parameter the loss does not use (e.g. BERT's MLM / NSP heads under SimCSE) must have
    no gradient (or a zero one) on both sides. Returns how many gradients were compared."""
    from benchmarks.harness import assert_close
    loss.backward()
    ploss.backward()
    assert_close(loss, ploss.detach(), rtol=1e-5, atol=1e-5, name="loss")
    grads = dict(pt_model.named_parameters())
    compared = 0
    for name, p in tl_model.named_parameters():
        g = grads[name].grad
        if p.grad is None or g is None:
            assert p.grad is None and (g is None or not g.abs().sum()), name
            continue
        assert_close(p.grad, g, rtol=rtol, atol=atol, name=name)
        compared += 1
    return compared


def make_batch(cfg, batch_size: int, seed: int = 0) -> tuple:
    """Masked inputs, segments, labels, is_next as NumPy arrays: two "sentences" of random
    tokens per row ([CLS] A [SEP] B [SEP], a few rows padded)."""
    from tinylatent.models.bert import mask_tokens
    rng = np.random.default_rng(seed)
    t = cfg.block_size
    ids = rng.integers(cfg.num_special_tokens, cfg.in_features, (batch_size, t))
    segments = np.zeros((batch_size, t), np.int64)
    cut = t // 2
    ids[:, 0], ids[:, cut], ids[:, -1] = cfg.cls_token_id, cfg.sep_token_id, cfg.sep_token_id
    segments[:, cut + 1:] = 1
    for r in range(0, batch_size, 4):                       # every 4th row: 8 pads at the end
        ids[r, -9:-1], ids[r, -9] = cfg.pad_token_id, cfg.sep_token_id
        segments[r, -8:] = 0
    inputs, labels = mask_tokens(ids, cfg, tl.Generator(seed))
    return inputs, segments, labels, rng.integers(0, 2, batch_size)
