"""Language models of token sequences (seeds 001, 004): the shared pieces and the LSTM LM.

A language model factorises p(x_1..x_T) = prod_t p(x_t | x_<t) with a softmax over the V
tokens at every step, so it is normalised by construction (Bengio et al. 2003). Both models
here (LSTMLanguageModel below, TransformerLM in transformer_lm.py) share one interface,
batch first:

    forward(idx (B, T)) -> logits (B, T, V)       logits[:, t] predicts token t + 1
    log_prob(x (B, T)) -> (B,)                    log p(x_1..x_T | bos), x_1 predicted from
                                                  the start token `bos_token_id`
    loss(batch) -> (loss, metrics)                batch: (inputs, targets), both (B, T), the
                                                  mean NLL of targets in nats per token; or
                                                  one (B, T) Tensor x: -log_prob(x) per token
    sample(n, length, temperature, top_k, prompt) -> (n, length) token ids

LSTMLanguageModel is the model of pytorch/examples word_language_model (Zaremba, Sutskever
& Vinyals 2014, "Recurrent Neural Network Regularization": dropout on the non-recurrent
connections; Press & Wolf 2017 / Inan et al. 2017 for tied input/output embeddings):
    e_t = dropout(E[x_t]);   (h_t, c_t) = LSTM_L(e_t, (h_{t-1}, c_{t-1}))
    p(x_{t+1} | x_<=t) = softmax(W dropout(h_t) + b),  W = E when tied.
Its hidden state carries across BPTT windows: forward(idx, hidden) returns the new state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Categorical
from tinylatent.tensor import Tensor

from .config import resolve_config

__all__ = ["LSTMLanguageModel", "LSTMLMConfig", "lm_nll", "split_lm_batch", "next_token",
           "with_bos", "start_tokens", "evaluate_nll", "unigram_nll"]


def split_lm_batch(name: str, batch) -> tuple:
    """(inputs, targets) from a pair, or (None, x) for one (B, T) Tensor (scored from bos)."""
    if isinstance(batch, (tuple, list)):
        if len(batch) != 2 or tuple(batch[0].shape) != tuple(batch[1].shape) \
                or batch[0].ndim != 2:
            shapes = [tuple(getattr(b, "shape", ())) for b in batch]
            raise ValueError(f"{name}.loss: batch must be (inputs, targets) of one (B, T) "
                             f"shape, got shapes {shapes}")
        return batch[0], batch[1]
    if not isinstance(batch, Tensor) or batch.ndim != 2:
        raise ValueError(f"{name}.loss: batch must be a (B, T) Tensor of token ids or a pair "
                         f"(inputs, targets), got {getattr(batch, 'shape', type(batch))}")
    return None, batch


def check_ids(name: str, idx: Tensor, vocab: int) -> None:
    if idx.ndim != 2 or idx.dtype.kind not in "iu":
        raise ValueError(f"{name}: idx must be a (B, T) integer Tensor, got shape "
                         f"{tuple(idx.shape)} dtype {idx.dtype}")
    if idx.numel() and (int(idx.array.min()) < 0 or int(idx.array.max()) >= vocab):
        raise ValueError(f"{name}: token ids must be in [0, in_features={vocab}), got range "
                         f"[{int(idx.array.min())}, {int(idx.array.max())}]")


def with_bos(x: Tensor, bos: int) -> Tensor:
    """[bos, x_1, ..., x_{T-1}]: the inputs that predict x_1..x_T, (B, T)."""
    start = tl.full((x.shape[0], 1), bos, dtype=x.dtype, device=x.device)
    return tl.cat([start, x[:, :-1]], axis=1)


def token_log_prob(logits: Tensor, targets: Tensor) -> Tensor:
    """log softmax(logits)[target] per position: (B, T, V), (B, T) -> (B, T)."""
    return Categorical(logits=logits).log_prob(targets)


def lm_nll(logits: Tensor, targets: Tensor) -> tuple[Tensor, dict]:
    """Mean -log p(target) in nats per token, and metrics (loss, nll, perplexity = e^nll)."""
    nll = -token_log_prob(logits, targets).mean()
    d = nll.detach()
    return nll, {"loss": d, "nll": d, "perplexity": tl.exp(d)}


def next_token(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
               generator=None) -> Tensor:
    """A draw from softmax(logits / temperature) restricted to the top_k largest logits
    (Fan, Lewis & Dauphin 2018): (B, V) -> (B, 1) int64."""
    if not temperature > 0:
        raise ValueError(f"sample: temperature must be > 0, got {temperature}")
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = tl.topk(logits, top_k, axis=-1)[0][:, -1:]                 # (B, 1)
        logits = tl.where(logits < kth, -math.inf, logits)
    return Categorical(logits=logits).sample(generator=generator).reshape(-1, 1)


def start_tokens(n: int, prompt, bos: int, device) -> Tensor:
    """The (n, P) ids sampling starts from: `prompt` (P,) or (n, P), or bos (n, 1)."""
    if prompt is None:
        return tl.full((n, 1), bos, dtype=tl.int64, device=device)
    x = tl.as_tensor(prompt, dtype=tl.int64, device=device)
    x = x.reshape(1, -1) if x.ndim == 1 else x                      # (1 or n, P)
    if x.ndim != 2 or x.shape[0] not in (1, n) or x.shape[1] < 1:
        raise ValueError(f"sample: prompt must be (P,) or (n={n}, P) ids, got shape "
                         f"{tuple(x.shape)}")
    return tl.cat([x] * n, axis=0) if x.shape[0] == 1 and n > 1 else x


@tl.no_grad()
def evaluate_nll(model, ids, batch_size: int = 10, bptt: int = 35) -> float:
    """Nats per token of the id stream `ids` (NumPy). A model with a carried state (the
    LSTM) reads it as `batch_size` columns in windows of `bptt`, the state carried
    (word_language_model's evaluate); a TransformerLM in consecutive windows of block_size,
    each read from its start (no context across windows)."""
    from tinylatent.data.text import LanguageModelStream
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    if hasattr(model, "detach_hidden"):
        hidden = None
        for x, y in LanguageModelStream(ids, batch_size, bptt):     # (L, B) each
            logits, hidden = model(x.T, hidden)
            total += lm_nll(logits, y.T)[0].item() * y.numel()
            n += y.numel()
    else:
        block = model.config.block_size
        ids = np.asarray(ids)[:(len(ids) - 1) // block * block + 1]
        x, y = ids[:-1].reshape(-1, block), ids[1:].reshape(-1, block)   # (N, block)
        for i in range(0, len(x), 64):
            logits = model(Tensor._make(x[i:i + 64]))
            total += lm_nll(logits, Tensor._make(y[i:i + 64]))[0].item() * y[i:i + 64].size
        n = y.size
    model.train(was_training)
    return total / n


def unigram_nll(train_ids, eval_ids, vocab: int) -> float:
    """The baseline: nats per token of eval_ids under the add-one smoothed unigram of
    train_ids, p(k) = (n_k + 1) / (N + V)."""
    counts = np.bincount(np.asarray(train_ids), minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[np.asarray(eval_ids)].mean())


@dataclass(frozen=True)
class LSTMLMConfig:
    in_features: int = 10000          # V, the vocabulary size (ntokens)
    embedding_features: int = 200     # emsize
    hidden_features: int = 200        # nhid
    num_layers: int = 2
    dropout: float = 0.2
    tie_weights: bool = False         # decoder.weight is encoder.weight (needs nhid = emsize)
    bos_token_id: int = 0             # the start token log_prob / sample begin from


class LSTMLanguageModel(nn.Module):
    """pytorch/examples word_language_model's RNNModel (LSTM), same parameter names
    (encoder, rnn, decoder) and init, batch first."""

    def __init__(self, config: LSTMLMConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, LSTMLMConfig, config, overrides)
        if cfg.tie_weights and cfg.hidden_features != cfg.embedding_features:
            raise ValueError(f"LSTMLanguageModel: tie_weights needs hidden_features == "
                             f"embedding_features, got {cfg.hidden_features} and "
                             f"{cfg.embedding_features}")
        if not 0 <= cfg.bos_token_id < cfg.in_features:
            raise ValueError(f"LSTMLanguageModel: bos_token_id={cfg.bos_token_id} outside "
                             f"[0, in_features={cfg.in_features})")
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.Embedding(cfg.in_features, cfg.embedding_features)
        self.rnn = nn.LSTM(cfg.embedding_features, cfg.hidden_features, cfg.num_layers,
                           dropout=cfg.dropout, batch_first=True)
        self.decoder = nn.Linear(cfg.hidden_features, cfg.in_features)
        if cfg.tie_weights:       # one Parameter, listed once by parameters()
            self.decoder.weight = self.encoder.weight
        with tl.no_grad():        # RNNModel.init_weights
            nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, idx: Tensor, hidden=None) -> tuple[Tensor, tuple]:
        """idx (B, T) ids, hidden (h, c) each (L, B, H) or None (zeros) ->
        logits (B, T, V), the new (h, c)."""
        check_ids("LSTMLanguageModel", idx, self.config.in_features)
        emb = self.drop(self.encoder(idx))                          # (B, T, E)
        output, hidden = self.rnn(emb, hidden)                      # (B, T, H)
        return self.decoder(self.drop(output)), hidden              # (B, T, V)

    @staticmethod
    def detach_hidden(hidden):
        """Truncated BPTT: keep the state's values, cut its graph (repackage_hidden)."""
        return None if hidden is None else tuple(h.detach() for h in hidden)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x_1..x_T) = sum_t log p(x_t | bos, x_<t): (B, T) -> (B,)."""
        check_ids("LSTMLanguageModel.log_prob", x, self.config.in_features)
        logits, _ = self(with_bos(x, self.config.bos_token_id))
        return token_log_prob(logits, x).sum(axis=1)

    def loss(self, batch, hidden=None) -> tuple[Tensor, dict]:
        """Mean NLL in nats per token (see the module docstring for `batch`); `hidden`
        starts the LSTM from a carried state (the training loop that carries the state
        across windows calls forward + lm_nll to get the new state)."""
        inputs, targets = split_lm_batch("LSTMLanguageModel", batch)
        if inputs is None:
            inputs = with_bos(targets, self.config.bos_token_id)
        return lm_nll(self(inputs, hidden)[0], targets)

    @tl.no_grad()
    def sample(self, n: int, length: int = 35, generator=None, temperature: float = 1.0,
               top_k: int | None = None, prompt: Tensor | None = None) -> Tensor:
        """n continuations of `prompt` (P,) or (n, P) ids (default: the bos token), `length`
        tokens each, one LSTM step per token with the state carried: (n, length)."""
        was_training = self.training
        self.eval()
        device = self.decoder.weight.device
        x = start_tokens(n, prompt, self.config.bos_token_id, device)    # (n, P)
        hidden, out = None, []
        for _ in range(length):
            logits, hidden = self(x, hidden)
            x = next_token(logits[:, -1], temperature, top_k, generator)   # (n, 1)
            out.append(x)
        self.train(was_training)
        return tl.cat(out, axis=1)
