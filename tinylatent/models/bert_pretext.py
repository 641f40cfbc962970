"""Other pre-training objectives for BERT's encoder (models/bert.py), one config option away:

* "denoise": the masked denoising objective of seed 000 (as written in XLNet, Yang et al.
  2019, eq. 2): x_hat is x with each non-special token replaced by [MASK] with probability
  mask_prob (m_t = 1 there; no 80/10/10 rule, no second sentence); the model reconstructs
  x_bar, the masked tokens, from x_hat, scored on the masked positions only:
      log p(x_bar | x_hat) ~ sum_t m_t log softmax_x'(H(x_hat)_t^T e(x'))[x_t]
  (H: the encoder and BERT's MLM transform; e: the tied token embedding, plus a bias).
* "shuffle": seed 002's "shuffle the words in the sentence, predict the correct order".
  The non-special tokens of each sentence are permuted uniformly: x_hat_t = x_{pi(t)};
  at every shuffled position t a linear head over the block_size positions predicts
  pi(t), the token's original position (the logits restricted to the sentence's own
  positions). Sorting x_hat by pi, i.e. x_hat[argsort(pi)] = x, undoes the shuffle:
      L = -mean_{t shuffled} log softmax(W_o h_t + b_o)[pi(t)]
* "delete": seed 002's "delete a word from the sentence and predict the missing word(s)"
  (BART's token deletion, Lewis et al. 2020, for an encoder only): each non-special token
  is deleted with probability delete_prob and the rest close up, so no position shows a
  hole. At every kept token after [CLS] a head says whether tokens are missing just before
  it (g_t); where they are, the tied decoder predicts the deleted token adjacent to it:
      L = -mean_{t kept} log Bernoulli(g_t; sigmoid(w_g^T h_t))
          - mean_{t: g_t = 1} log softmax(MLM(h_t))[x_deleted before t]

Subwords (the tokenizer's BPE units) are the "words" that are shuffled or deleted. Inputs
are single sentences [CLS] x [SEP] (no NSP). `PretextBERT` is a BERT subclass, so the
encoder, its weights' names and `encode` (the pooled [CLS] vector) are BERT's: a checkpoint
of any objective fine-tunes exactly as BERT's does (bert_eval.finetune_classifier).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Bernoulli, Categorical
from tinylatent.tensor import Tensor

from .bert import BERT, IGNORE, BERTConfig, encode_pair
from .bert_eval import finetune_classifier
from .config import resolve_config

__all__ = ["PretextBERT", "PretextBERTConfig", "OBJECTIVES", "denoise_tokens",
           "shuffle_tokens", "delete_tokens", "encode_sentences", "evaluate_objective",
           "finetune_table", "objective_baselines"]

OBJECTIVES = ("denoise", "shuffle", "delete")


@dataclass(frozen=True)
class PretextBERTConfig(BERTConfig):
    objective: str = "denoise"       # one of OBJECTIVES
    delete_prob: float = 0.15        # "delete": each non-special token's deletion probability


def _ids(ids) -> np.ndarray:
    return np.asarray(ids.array if isinstance(ids, Tensor) else ids, dtype=np.int64)


def denoise_tokens(ids, config: BERTConfig, generator=None) -> tuple:
    """(x_hat, labels), NumPy int64 (B, T): each non-special position becomes [MASK] with
    probability mask_prob; labels hold x there (m_t = 1) and IGNORE elsewhere."""
    ids = _ids(ids)
    u = tl.rand(*ids.shape, dtype="float64", generator=generator).numpy()      # (B, T)
    masked = (u < config.mask_prob) & (ids >= config.num_special_tokens)
    return np.where(masked, config.mask_token_id, ids), np.where(masked, ids, IGNORE)


def shuffle_tokens(ids, config: BERTConfig, generator=None) -> tuple:
    """(x_hat, order), NumPy int64 (B, T): in each row the non-special tokens are permuted
    uniformly among their own positions (specials and padding stay); order[t] = pi(t), the
    original position of the token now at t (x_hat[t] = x[pi(t)]), IGNORE at unmoved
    specials. Rows with one token or none are left as they are (order IGNORE)."""
    ids = _ids(ids)
    u = tl.rand(*ids.shape, dtype="float64", generator=generator).numpy()      # (B, T)
    valid = ids >= config.num_special_tokens
    perm = np.broadcast_to(np.arange(ids.shape[1]), ids.shape).copy()         # (B, T)
    for row in range(ids.shape[0]):
        where = np.flatnonzero(valid[row])
        perm[row, where] = where[np.argsort(u[row, where], kind="stable")]    # uniform pi
    order = np.where(valid & (valid.sum(1, keepdims=True) > 1), perm, IGNORE)
    return np.take_along_axis(ids, perm, axis=1), order


def delete_tokens(ids, config: PretextBERTConfig, generator=None) -> tuple:
    """(x_hat, gaps, words), NumPy int64 (B, T): each non-special token is deleted with
    probability delete_prob and the kept tokens close up (padding fills the end). At each
    kept position after the first (not padding): gaps = 1 if tokens were deleted just before
    it, else 0; words = the deleted token adjacent to it (the last of a run) where gaps = 1.
    Elsewhere both are IGNORE."""
    ids = _ids(ids)
    b, t = ids.shape
    u = tl.rand(b, t, dtype="float64", generator=generator).numpy()           # (B, T)
    deleted = (u < config.delete_prob) & (ids >= config.num_special_tokens)
    x_hat = np.full_like(ids, config.pad_token_id)
    gaps, words = np.full_like(ids, IGNORE), np.full_like(ids, IGNORE)
    for row in range(b):
        kept = np.flatnonzero(~deleted[row])                                   # (K,)
        x_hat[row, :len(kept)] = ids[row, kept]
        before = np.r_[False, deleted[row, kept[1:] - 1]]    # the original left neighbour
        scored = (np.arange(len(kept)) > 0) & (ids[row, kept] != config.pad_token_id)
        gaps[row, :len(kept)] = np.where(scored, before, IGNORE)
        words[row, :len(kept)] = np.where(scored & before, ids[row, np.maximum(kept - 1, 0)],
                                          IGNORE)
    return x_hat, gaps, words


class PretextBERT(BERT):
    """BERT's encoder and heads, pre-trained by `objective` ("denoise", "shuffle" or
    "delete"); adds order_head (Linear d -> block_size) for "shuffle" and gap_head
    (Linear d -> 1) for "delete". A config option rather than three classes, so one
    example loop and one checkpoint format serve all three."""

    def __init__(self, config: PretextBERTConfig | None = None, **overrides):
        cfg = resolve_config(self, PretextBERTConfig, config, overrides)
        if cfg.objective not in OBJECTIVES:
            raise ValueError(f"PretextBERT: objective must be one of {OBJECTIVES}, got "
                             f"{cfg.objective!r}")
        if not 0.0 < cfg.delete_prob < 1.0:
            raise ValueError(f"PretextBERT: delete_prob must be in (0, 1), got "
                             f"{cfg.delete_prob}")
        super().__init__(cfg)
        d = cfg.hidden_features
        # created after BERT's own parameters (and their init), so a PretextBERT and a BERT
        # built from the same seed share the encoder's initial weights
        if cfg.objective == "shuffle":
            self.order_head = nn.Linear(d, cfg.block_size)
        if cfg.objective == "delete":
            self.gap_head = nn.Linear(d, 1)

    def loss(self, batch, generator=None) -> tuple:
        """batch: ids (B, T) of [CLS] sentence [SEP] (padded); the corruption is drawn
        afresh from `generator` (default: tl's global one) at every call."""
        ids = batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 1 else batch
        if not isinstance(ids, Tensor) or ids.ndim != 2:
            raise ValueError("PretextBERT.loss: batch must be ids (B, T), got "
                             f"{type(batch).__name__}")
        cfg, dev = self.config, ids.device
        if cfg.objective == "denoise":
            x_hat, labels = denoise_tokens(ids, cfg, generator)
            loss, m = self.pretraining_loss(tl.tensor(x_hat, device=dev), None, labels)
            return loss, m
        if cfg.objective == "shuffle":
            x_hat, order = shuffle_tokens(ids, cfg, generator)
            h = self(tl.tensor(x_hat, device=dev))                              # (B, T, d)
            rows, cols = np.nonzero(order != IGNORE)                            # (M,) each
            if len(rows) == 0:
                raise ValueError("PretextBERT.loss: no row has two tokens to shuffle")
            # only the sentence's own positions are candidates: -1e9 on the others
            allowed = (_ids(ids) >= cfg.num_special_tokens)[rows]               # (M, T)
            allowed = np.pad(allowed, ((0, 0), (0, cfg.block_size - allowed.shape[1])))
            logits = self.order_head(h[rows, cols]) + tl.tensor(
                np.where(allowed, 0.0, -1e9).astype(np.float32), device=dev)   # (M, block)
            targets = tl.tensor(order[rows, cols], device=dev)
            loss = -Categorical(logits=logits).log_prob(targets).mean()
            acc = (logits.detach().argmax(-1) == targets).float().mean()
            return loss, {"loss": loss.detach(), "order_accuracy": acc}
        x_hat, gaps, words = delete_tokens(ids, cfg, generator)
        h = self(tl.tensor(x_hat, device=dev))                                  # (B, T, d)
        rows, cols = np.nonzero(gaps != IGNORE)
        if len(rows) == 0:
            raise ValueError("PretextBERT.loss: no kept token to score (empty sentences?)")
        gap_logits = self.gap_head(h[rows, cols]).reshape(-1)                   # (M,)
        g = tl.tensor(gaps[rows, cols].astype(np.float32), device=dev)
        gap_loss = -Bernoulli(logits=gap_logits).log_prob(g).mean()
        metrics = {"gap_loss": gap_loss.detach(),
                   "gap_accuracy": ((gap_logits.detach() > 0).float() == g).float().mean()}
        loss = gap_loss
        wr, wc = np.nonzero(words != IGNORE)
        if len(wr):          # a batch without any deletion has no word to predict
            logits = self.mlm_logits(h[wr, wc])                                 # (G, V)
            targets = tl.tensor(words[wr, wc], device=dev)
            word_loss = -Categorical(logits=logits).log_prob(targets).mean()
            loss = loss + word_loss
            metrics["word_loss"] = word_loss.detach()
            metrics["word_accuracy"] = (logits.detach().argmax(-1) == targets).float().mean()
        metrics["loss"] = loss.detach()
        return loss, metrics


def encode_sentences(tokenizer, texts, max_len: int, config: BERTConfig) -> np.ndarray:
    """[CLS] sentence [SEP] ids, padded to max_len, int64 (N, max_len) (bert.encode_pair)."""
    return np.stack([encode_pair(tokenizer, s, None, max_len, config)[0] for s in texts])


@tl.no_grad()
def evaluate_objective(model: BERT, ids: np.ndarray, batch_size: int = 256,
                       seed: int = 123) -> dict:
    """Each metric of model.loss on the sentences `ids` (N, T), corruptions fixed by `seed`,
    averaged over batches weighted by their number of sentences."""
    model.eval()
    g, sums = tl.Generator(seed), {}
    for s in range(0, len(ids), batch_size):
        _, m = model.loss(tl.tensor(ids[s:s + batch_size]), generator=g)
        for k, v in m.items():
            sums[k] = sums.get(k, 0.0) + float(v.item()) * len(ids[s:s + batch_size])
    return {k: v / len(ids) for k, v in sums.items()}


def finetune_table(encoders: dict, train: tuple, test: tuple, labels, seeds, steps: int,
                   lr: float, batch_size: int = 16) -> dict:
    """Few-label fine-tuning (bert_eval.finetune_classifier) of every encoder, on the same
    labelled subsets: for each seed, a generator default_rng(seed) draws for each n in
    `labels` (in order) n/2 examples of each of the two classes of `train` = (x, y); the
    classifier is trained with that seed and tested on all of `test`.
    encoders: name -> (config, state dict): a BERT encoder of that config's sizes loaded with
    the state dict (heads of PretextBERT objectives dropped), or from scratch for None.
    Returns name -> array (len(labels), len(seeds), 2) of (accuracy, balanced accuracy)."""
    x, y = train
    out = {name: np.zeros((len(labels), len(seeds), 2)) for name in encoders}
    for j, seed in enumerate(seeds):
        g = np.random.default_rng(seed)
        for i, n in enumerate(labels):
            idx = np.concatenate([g.choice(np.flatnonzero(y == c), n // 2, replace=False)
                                  for c in (0, 1)])
            for name, (config, state) in encoders.items():
                tl.manual_seed(seed)
                enc = BERT(BERTConfig(**{f: getattr(config, f)
                                         for f in BERTConfig.__dataclass_fields__}))
                if state is not None:
                    own = enc.state_dict()
                    enc.load_state_dict({k: tl.tensor(v) for k, v in state.items() if k in own})
                out[name][i, j] = finetune_classifier(enc, (x[idx], y[idx]), test, steps, lr,
                                                      seed, batch_size=batch_size)
    return out


def objective_baselines(config: PretextBERTConfig, x_train: np.ndarray, x_test: np.ndarray,
                        seed: int = 123) -> dict:
    """What each held-out accuracy of `evaluate_objective` (same `seed`, so the same
    corruptions) is without learning: a masked or deleted token guessed as the most frequent
    training token; "no token missing" at every gap; a shuffled token's original position
    guessed uniformly among its sentence's n positions (accuracy 1/n per token)."""
    top = np.bincount(x_train[x_train >= config.num_special_tokens]).argmax()
    g = tl.Generator(seed)
    if config.objective == "denoise":
        _, labels = denoise_tokens(x_test, config, g)
        return {"mlm_accuracy": float(np.mean(labels[labels != IGNORE] == top))}
    if config.objective == "shuffle":
        n = (x_test >= config.num_special_tokens).sum(1)
        n = n[n > 1]
        return {"order_accuracy": float(len(n) / n.sum())}     # sum_rows n (1/n) / sum n
    _, gaps, words = delete_tokens(x_test, config, g)
    return {"gap_accuracy": float(np.mean(gaps[gaps != IGNORE] == 0)),
            "word_accuracy": float(np.mean(words[words != IGNORE] == top))}
