"""word2vec: skip-gram and CBOW with negative sampling (Mikolov et al. 2013a, "Efficient
Estimation of Word Representations in Vector Space"; 2013b, "Distributed Representations of
Words and Phrases and their Compositionality").

Every word w has an input vector v_w (`weight`, word2vec.c's syn0) and an output vector u_w
(`weight_out`, syn1neg). Skip-gram predicts the centre word w_O from each context word w_I
in a window, CBOW from the mean h of the context vectors; both with the negative-sampling
objective of 2013b, eq. 4:

    loss = -log sigma(u_{w_O} . v_{w_I}) - sum_{k=1}^{K} log sigma(-u_{w_k} . v_{w_I}),
    w_k ~ P_n(w) = count(w)^{3/4} / Z                       (2013b, Sec. 2.2)

Frequent words are subsampled (2013b, Sec. 2.3). The paper writes P(discard w) =
1 - sqrt(t / f(w)) with f(w) = count(w) / N; word2vec.c (and gensim) keep w with

    P(keep w) = min(1, (sqrt(f(w) / t) + 1) t / f(w)),

which this follows. The window is shrunk at random to b in 1..window per centre word
(nearer words weigh more), and the learning rate decays linearly to `min_lr` over all the
epochs' words. `fit` runs this as word2vec.c does, one sparse SGD update at a time, in the
serial Numba kernel tinylatent/kernels/numba/word2vec.py (its NumPy twin when the kernels
are switched to the reference); `loss` is the same objective as an autograd graph, for any
tinylatent optimizer.

    model = Word2Vec.from_sentences(sentences, min_count=5, latent_features=100)
    model.fit(sentences)                      # lists of words
    model.most_similar("king", k=10)          # [(word, cosine), ...]
    model.analogy("man", "king", "woman")     # 3CosAdd: argmax cos(x, king - man + woman)
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import kernels, nn
from tinylatent.distributions import Categorical
from tinylatent.tensor import Tensor

from ..eval.word_vectors import ANALOGIES_PATH, analogy_accuracy, load_analogies  # noqa: F401
from .config import resolve_config

__all__ = ["Word2Vec", "Word2VecConfig", "noise_table", "keep_probabilities", "word_sentences",
           "analogy_accuracy", "load_analogies", "ANALOGIES_PATH"]

TABLE_DOMAIN = 2**31 - 1        # gensim's cum_table scale: integer noise weights


@dataclass(frozen=True)
class Word2VecConfig:
    in_features: int = 10000        # vocabulary size V
    latent_features: int = 100      # vector size D
    architecture: str = "skipgram"  # or "cbow"
    window: int = 5                 # the largest window; each is drawn from 1..window
    negative: int = 5               # K noise words per positive (2013b: 5-20 small data)
    ns_exponent: float = 0.75       # P_n(w) ~ count^0.75
    sample: float = 1e-3            # subsampling threshold t (0 = off)
    lr: float = 0.025               # alpha at the start, linear decay to min_lr
    min_lr: float = 1e-4
    epochs: int = 5


def noise_table(counts, exponent: float = 0.75) -> np.ndarray:
    """Cumulative integer weights of P_n(w) ~ count(w)^exponent, ending at TABLE_DOMAIN:
    word i is drawn for (r mod TABLE_DOMAIN) in [table[i-1], table[i])."""
    w = np.asarray(counts, dtype=np.float64) ** exponent
    if w.ndim != 1 or not len(w) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise ValueError(f"noise_table: counts must be a non-empty 1-D array with a positive "
                         f"sum, got shape {np.shape(counts)}")
    return np.round(np.cumsum(w) / w.sum() * TABLE_DOMAIN).astype(np.int64)


def keep_probabilities(counts, sample: float) -> np.ndarray:
    """P(keep w) = min(1, (sqrt(f/t) + 1) t/f), f = count(w)/N (word2vec.c; 2013b Sec. 2.3);
    all ones when sample = 0."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()           # t N: compare counts, not frequencies
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def word_sentences(texts) -> list:
    """Each text (e.g. a KJV verse) as its lower-cased words, punctuation dropped."""
    from tinylatent.data.tokenizers import split_words
    return [[w for w in split_words(t, lower=True) if w[0].isalnum()] for t in texts]


class Word2Vec(nn.Module):
    def __init__(self, config: Word2VecConfig | None = None, **overrides):
        super().__init__()
        self.config = cfg = resolve_config(self, Word2VecConfig, config, overrides)
        if cfg.architecture not in ("skipgram", "cbow"):
            raise ValueError(f"Word2Vec: architecture must be 'skipgram' or 'cbow', got "
                             f"{cfg.architecture!r}")
        if cfg.in_features < 2 or cfg.latent_features < 1 or cfg.window < 1 \
                or cfg.negative < 1:
            raise ValueError(f"Word2Vec: need in_features >= 2, latent_features, window and "
                             f"negative >= 1, got {cfg}")
        v, d = cfg.in_features, cfg.latent_features
        # v uniform in [-1, 1) / D as gensim 4 (word2vec.c: [-0.5, 0.5) / D; measured on the
        # KJV, CBOW's analogy score sat ~2 points under gensim's with that), u = 0
        self.weight = nn.Parameter(((2 * tl.rand(v, d) - 1) / d).array.astype(np.float32))
        self.weight_out = nn.Parameter(tl.zeros(v, d))
        self.register_buffer("counts", tl.ones(v))   # unigram counts (set by from_sentences)
        self.itos = [str(i) for i in range(v)]
        self.seed = 1                                 # the kernel's random state, carried on

    # ------------------------------------------------------------------ vocabulary
    @classmethod
    def from_sentences(cls, sentences, min_count: int = 5, config=None, **overrides):
        """A model whose vocabulary is the words seen >= min_count times, most frequent
        first (ties in order of first appearance)."""
        counter = collections.Counter(w for s in sentences for w in s)
        words = sorted((w for w, c in counter.items() if c >= min_count),
                       key=lambda w: -counter[w])
        if len(words) < 2:
            raise ValueError(f"Word2Vec.from_sentences: fewer than 2 words occur >= "
                             f"{min_count} times")
        model = cls(config, **{**overrides, "in_features": len(words)})
        model.itos = words
        model.counts.array[:] = [counter[w] for w in words]
        return model

    @property
    def stoi(self) -> dict:
        if getattr(self, "_stoi_for", None) is not self.itos:
            self._stoi, self._stoi_for = {w: i for i, w in enumerate(self.itos)}, self.itos
        return self._stoi

    def encode_sentences(self, sentences) -> tuple:
        """(ids, ends): the in-vocabulary words of all sentences, concatenated, and where
        each sentence ends (out-of-vocabulary words are dropped, as in word2vec.c)."""
        stoi = self.stoi
        ids, ends = [], []
        for s in sentences:
            ids.extend(stoi[w] for w in s if w in stoi)
            ends.append(len(ids))
        return np.asarray(ids, np.int64), np.asarray(ends, np.int64)

    # ------------------------------------------------------------------ fast training
    def fit(self, sentences, epochs: int | None = None, chunk_words: int = 50000,
            callback=None, start_epoch: int = 0, compute_loss: bool = False) -> dict:
        """Train with sparse SGD, one update per (context, centre) pair (word2vec.c).

        sentences: lists of words, or (ids, ends) from `encode_sentences`. Runs epochs
        start_epoch..epochs-1 of the linear lr schedule (a resumed run passes start_epoch);
        callback(epoch, stats) after each. Returns {"words_per_second" (raw words, as
        gensim counts them), "loss"}: with compute_loss, eq. 4 summed over each trained
        word's pairs, per trained word, in the last epoch.
        """
        cfg = self.config
        epochs = cfg.epochs if epochs is None else epochs
        ids, ends = sentences if isinstance(sentences, tuple) else \
            self.encode_sentences(sentences)
        counts = self.counts.array
        cum = noise_table(counts, cfg.ns_exponent)
        keep_int = np.floor(keep_probabilities(counts, cfg.sample) * 2**32).astype(np.int64)
        if kernels.reference_forced() or not kernels.numba_available():
            from tinylatent.kernels.numba import word2vec as kw
            train = kw.train_sentences_reference
        else:
            train = kernels.load_numba_module("tinylatent.kernels.numba.word2vec") \
                .train_sentences
        syn0 = np.ascontiguousarray(self.weight.array, dtype=np.float32)
        syn1 = np.ascontiguousarray(self.weight_out.array, dtype=np.float32)
        total = epochs * len(ids)
        # chunks of whole sentences of ~chunk_words words (for the callback's timing)
        cuts = np.unique(np.r_[0, np.searchsorted(ends, np.arange(chunk_words, len(ids),
                                                                   chunk_words)), len(ends)])
        stats = {"words_per_second": 0.0, "loss": float("nan")}
        seconds, words = 0.0, 0
        for epoch in range(start_epoch, epochs):
            loss, trained_words = 0.0, 0
            for lo, hi in zip(cuts[:-1], cuts[1:]):
                base = ends[lo - 1] if lo else 0
                t0 = time.perf_counter()
                self.seed, trained, chunk_loss = train(
                    ids[base:ends[hi - 1]], ends[lo:hi] - base, syn0, syn1, cum, keep_int,
                    window=cfg.window, negative=cfg.negative,
                    sg=cfg.architecture == "skipgram", alpha=cfg.lr, min_alpha=cfg.min_lr,
                    words_done=epoch * len(ids) + base, total_words=total, seed=self.seed,
                    compute_loss=compute_loss)
                seconds += time.perf_counter() - t0
                words += ends[hi - 1] - base
                loss, trained_words = loss + chunk_loss, trained_words + trained
            # eq. 4 summed over each trained word's pairs, per trained word
            stats = {"words_per_second": words / max(seconds, 1e-9),
                     "loss": loss / max(trained_words, 1) if compute_loss else float("nan")}
            if callback is not None:
                callback(epoch, stats)
        self.weight.array[...] = syn0          # no-ops when the arrays were used in place
        self.weight_out.array[...] = syn1
        return stats

    # ------------------------------------------------------------------ autograd objective
    def loss(self, batch) -> tuple:
        """Eq. 4 on windows of token ids, batch (B, L) with L odd: the centre column is w_O,
        the others its context; K noise words per window drawn from P_n (tl's generator).
        Skip-gram averages eq. 4 over the L-1 context words, CBOW applies it once to h."""
        if not isinstance(batch, Tensor) or batch.ndim != 2 or batch.shape[1] % 2 == 0 \
                or batch.shape[1] < 3 or batch.dtype.kind not in "iu":
            raise ValueError(f"Word2Vec.loss: batch must be (B, L) integer windows with odd "
                             f"L >= 3, got {getattr(batch, 'shape', type(batch))}")
        b, length = batch.shape
        centre = batch[:, length // 2]                                       # (B,)
        context = tl.cat([batch[:, :length // 2], batch[:, length // 2 + 1:]], axis=1)
        noise = Categorical(probs=self.counts ** self.config.ns_exponent)
        negatives = noise.sample((b, self.config.negative))                  # (B, K)
        targets = tl.cat([centre.reshape(b, 1), negatives], axis=1)          # (B, 1 + K)
        u = nn.functional.embedding(targets, self.weight_out)                # (B, 1+K, D)
        v = nn.functional.embedding(context, self.weight)                    # (B, L-1, D)
        if self.config.architecture == "cbow":
            v = v.mean(axis=1, keepdims=True)                                # (B, 1, D)
        scores = v @ u.transpose(1, 2)                                       # (B, C, 1+K)
        sign = tl.tensor(np.r_[1.0, -np.ones(self.config.negative)].astype(np.float32))
        nll = -tl.logsigmoid(scores * sign).sum(axis=2).mean()
        d = nll.detach()
        return nll, {"loss": d}

    # ------------------------------------------------------------------ using the vectors
    def encode(self, ids) -> Tensor:
        """Word vectors v_w (B, D) of ids (B,), or the mean vector of each row of ids (B, L)
        (a bag-of-words sentence embedding)."""
        ids = ids if isinstance(ids, Tensor) else tl.tensor(np.asarray(ids))
        v = nn.functional.embedding(ids, self.weight)
        return v.mean(axis=1) if ids.ndim == 2 else v

    def vectors(self, normalized: bool = True) -> np.ndarray:
        w = self.weight.detach().numpy()
        if not normalized:
            return w
        return w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)

    def _id(self, word: str) -> int:
        if word not in self.stoi:
            raise KeyError(f"Word2Vec: {word!r} is not in the vocabulary of {len(self.itos)} "
                           "words")
        return self.stoi[word]

    def nearest(self, query: np.ndarray, k: int, exclude=()) -> list:
        """The k ids of largest cosine with each query row, excluding the ids in `exclude`
        (per row: a list of id collections)."""
        sims = np.atleast_2d(query) @ self.vectors().T                      # (Q, V)
        for row, ex in enumerate(exclude):
            sims[row, list(ex)] = -np.inf
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]                # (Q, k)
        return [list(zip(t, sims[q, t])) for q, t in enumerate(top)]

    def most_similar(self, word: str, k: int = 10) -> list:
        i = self._id(word)
        return [(self.itos[j], float(s)) for j, s in
                self.nearest(self.vectors()[i], k, exclude=[{i}])[0]]

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list:
        """a : b :: c : ?, by 3CosAdd (Mikolov et al. 2013c): the words maximising
        cos(x, b - a + c) on unit vectors, a, b, c themselves excluded (as gensim)."""
        w = self.vectors()
        ia, ib, ic = self._id(a), self._id(b), self._id(c)
        q = w[ib] - w[ia] + w[ic]
        q = q / max(np.linalg.norm(q), 1e-12)
        return [(self.itos[j], float(s)) for j, s in
                self.nearest(q, k, exclude=[{ia, ib, ic}])[0]]

    def analogy_accuracy(self, questions) -> tuple:
        """(accuracy, number answered): see `analogy_accuracy`."""
        return analogy_accuracy(self.vectors(), self.stoi, questions)
