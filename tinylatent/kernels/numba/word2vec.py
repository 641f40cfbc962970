"""Numba CPU kernel for word2vec's sparse SGD (Mikolov et al. 2013a/b), and its NumPy
reference twin. Both run the same algorithm as the original word2vec.c (and gensim), one
update at a time, so they draw the same random numbers and touch the same rows in the same
order; they differ only in float rounding (the kernel's dot products are vectorized).

Skip-gram with negative sampling (2013b, eq. 4), for a centre word w_O and each context word
w_I in its (randomly shrunk) window, with v = syn0 (input vectors), u = syn1neg (output):

    loss = -log sigma(u_{w_O} . v_{w_I}) - sum_{k=1}^{K} log sigma(-u_{w_k} . v_{w_I}),
    w_k ~ P_n(w) proportional to count(w)^0.75

and one SGD step of size alpha on that loss, for targets t in {w_O (label 1), w_1..w_K (0)}:

    g_t = alpha (label_t - sigma(u_t . v)),    u_t += g_t v,    v += sum_t g_t u_t (old u_t)

CBOW (2013a) uses the mean h of the context vectors in place of v, and adds the same
sum_t g_t u_t to every context vector (word2vec.c, gensim's cbow_mean=1). As in word2vec.c,
sigma is taken as exactly 0 / 1 beyond |u . v| > 6 (MAX_EXP), which stops updates of pairs
already classified with margin.

Random numbers come from word2vec.c's linear congruential generator
    r <- r * 25214903917 + 11 (mod 2^64),
used for the window shrink (b = r mod window), the subsampling draw (keep word w when
(r >> 32) < keep_int[w]) and the negatives (t = first i with cum_table[i] > (r >> 16) mod
cum_table[-1]). The learning rate decays linearly over all epochs' words, set at the start
of every sentence: alpha = alpha_0 - (alpha_0 - alpha_min) * words_seen / total_words.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["train_sentences", "train_sentences_reference", "draw_negatives",
           "draw_negatives_reference", "LCG_A", "LCG_C", "MAX_EXP"]

LCG_A, LCG_C = 25214903917, 11          # word2vec.c's next_random
MAX_EXP = 6.0
_MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------------- the Numba kernel
@nb.jit(nopython=True, cache=True, nogil=True)
def _next(r):  # pragma: no cover - compiled
    return r * np.uint64(LCG_A) + np.uint64(LCG_C)


@nb.jit(nopython=True, cache=True, nogil=True)
def _bisect_right(cum, x):  # pragma: no cover - compiled
    lo, hi = 0, cum.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if cum[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return lo


@nb.jit(nopython=True, cache=True, nogil=True, fastmath=True)
def _negative_sampling(l1, target, syn1neg, cum, negative, alpha, neu1e, r,
                       compute_loss):  # pragma: no cover - compiled
    """One SGD step of eq. 4 on input vector l1: updates syn1neg rows, accumulates the
    gradient of l1 into neu1e (zeroed here); returns (r, loss)."""
    d = l1.shape[0]
    for j in range(d):
        neu1e[j] = 0.0
    loss = 0.0
    total = cum[cum.shape[0] - 1]
    for k in range(negative + 1):
        if k == 0:
            t, label = target, np.float32(1.0)
        else:
            r = _next(r)
            t = _bisect_right(cum, (r >> np.uint64(16)) % total)
            if t == target:
                continue
            label = np.float32(0.0)
        u = syn1neg[t]
        f = np.float32(0.0)
        for j in range(d):
            f += l1[j] * u[j]
        if f > MAX_EXP:
            g = (label - np.float32(1.0)) * alpha
        elif f < -MAX_EXP:
            g = label * alpha
        else:
            s = np.float32(1.0) / (np.float32(1.0) + np.float32(math.exp(-f)))
            g = (label - s) * alpha
        if compute_loss:                 # -log sigma(+-f), stable for both signs
            z = -f if label > 0 else f
            loss += max(z, 0.0) + math.log1p(math.exp(-abs(z)))
        for j in range(d):
            neu1e[j] += g * u[j]
        for j in range(d):
            u[j] += g * l1[j]
    return r, loss


@nb.jit(nopython=True, cache=True, nogil=True, fastmath=True)
def _train(ids, ends, syn0, syn1neg, cum, keep_int, window, negative, sg, alpha0, alpha_min,
           words_done, total_words, r, compute_loss):  # pragma: no cover - compiled
    d = syn0.shape[1]
    neu1e = np.empty(d, np.float32)
    neu1 = np.empty(d, np.float32)
    kept = np.empty(ids.shape[0], np.int64)
    loss, trained, start = 0.0, 0, 0
    for s in range(ends.shape[0]):
        stop = ends[s]
        frac = min(words_done / total_words, 1.0)
        alpha = np.float32(alpha0 - (alpha0 - alpha_min) * frac)
        n = 0                            # subsampling (2013b, Sec. 2.3) before windowing
        for p in range(start, stop):
            w = ids[p]
            r = _next(r)
            if (r >> np.uint64(32)) < keep_int[w]:
                kept[n] = w
                n += 1
        words_done += stop - start
        start = stop
        trained += n
        for i in range(n):
            r = _next(r)
            b = np.int64(r % np.uint64(window))
            lo, hi = max(0, i - window + b), min(n, i + window + 1 - b)
            word = kept[i]
            if sg:
                for c in range(lo, hi):
                    if c == i:
                        continue
                    l1 = syn0[kept[c]]
                    r, lo_ = _negative_sampling(l1, word, syn1neg, cum, negative, alpha,
                                                neu1e, r, compute_loss)
                    loss += lo_
                    for j in range(d):
                        l1[j] += neu1e[j]
            else:
                count = hi - lo - 1
                if count == 0:
                    continue
                for j in range(d):
                    neu1[j] = 0.0
                for c in range(lo, hi):
                    if c != i:
                        v = syn0[kept[c]]
                        for j in range(d):
                            neu1[j] += v[j]
                inv = np.float32(1.0 / count)
                for j in range(d):
                    neu1[j] *= inv
                r, lo_ = _negative_sampling(neu1, word, syn1neg, cum, negative, alpha, neu1e,
                                            r, compute_loss)
                loss += lo_
                for c in range(lo, hi):
                    if c != i:
                        v = syn0[kept[c]]
                        for j in range(d):
                            v[j] += neu1e[j]
    return r, trained, loss


@nb.jit(nopython=True, cache=True, nogil=True)
def _draw(cum, n, r):  # pragma: no cover - compiled
    out = np.empty(n, np.int64)
    total = cum[cum.shape[0] - 1]
    for i in range(n):
        r = _next(r)
        out[i] = _bisect_right(cum, (r >> np.uint64(16)) % total)
    return out, r


def _check(ids, ends, syn0, syn1neg, cum, keep_int, window):
    v, d = syn0.shape
    if syn0.dtype != np.float32 or syn1neg.dtype != np.float32 or syn1neg.shape != (v, d):
        raise TypeError(f"word2vec.train_sentences: syn0 and syn1neg must be float32 (V, D) of "
                        f"one shape, got {syn0.dtype} {syn0.shape} and {syn1neg.dtype} "
                        f"{syn1neg.shape}")
    if not (syn0.flags.c_contiguous and syn1neg.flags.c_contiguous):
        raise ValueError("word2vec.train_sentences: syn0 and syn1neg are updated in place and "
                         "must be C-contiguous")
    if cum.shape != (v,) or keep_int.shape != (v,):
        raise ValueError(f"word2vec.train_sentences: cum_table {cum.shape} and keep_int "
                         f"{keep_int.shape} must be (V,) = ({v},)")
    if ids.size and (ids.min() < 0 or ids.max() >= v):
        raise ValueError(f"word2vec.train_sentences: word ids must be in [0, {v}), got "
                         f"[{ids.min()}, {ids.max()}]")
    if len(ends) and (ends[-1] != len(ids) or np.any(np.diff(ends) < 0)):
        raise ValueError(f"word2vec.train_sentences: sentence ends must rise to len(ids) = "
                         f"{len(ids)}")
    if window < 1:
        raise ValueError(f"word2vec.train_sentences: window must be >= 1, got {window}")


def train_sentences(ids, ends, syn0, syn1neg, cum_table, keep_int, *, window: int,
                    negative: int, sg: bool, alpha: float, min_alpha: float,
                    words_done: int, total_words: int, seed: int,
                    compute_loss: bool = False) -> tuple:
    """Train in place on the sentences ids[ends[s-1]:ends[s]] (word ids, int64).

    syn0, syn1neg: (V, D) float32, C-contiguous, updated in place. cum_table (V,) int64:
    cumulative noise weights (the unigram^0.75 table); keep_int (V,) int64: a word is kept
    when a 32-bit draw is below it (2^32 = always). words_done / total_words place these
    sentences on the linear learning-rate schedule. Returns (next seed, words trained after
    subsampling, summed loss (0 unless compute_loss)).
    """
    _check(ids, ends, syn0, syn1neg, cum_table, keep_int, window)
    r, trained, loss = _train(ids.astype(np.int64, copy=False),
                              ends.astype(np.int64, copy=False), syn0, syn1neg,
                              cum_table.astype(np.uint64), keep_int.astype(np.uint64),
                              int(window), int(negative), bool(sg), float(alpha), float(min_alpha),
                              float(words_done), float(total_words), np.uint64(seed),
                              bool(compute_loss))
    return int(r), int(trained), float(loss)


def draw_negatives(cum_table, n: int, seed: int) -> tuple:
    """(n noise words drawn as the kernel draws them, next seed)."""
    out, r = _draw(cum_table.astype(np.uint64), int(n), np.uint64(seed))
    return out, int(r)


# ---------------------------------------------------------------------- the reference twin
def _next_ref(r: int) -> int:
    return (r * LCG_A + LCG_C) & _MASK64


def draw_negatives_reference(cum_table, n: int, seed: int) -> tuple:
    r, out = seed, np.empty(n, np.int64)
    for i in range(n):
        r = _next_ref(r)
        out[i] = np.searchsorted(cum_table, (r >> 16) % int(cum_table[-1]), side="right")
    return out, r


def sgns_step_reference(l1, targets, labels, syn1neg, alpha, compute_loss=False) -> tuple:
    """One SGD step of eq. 4 for input vector l1 and (target, label) pairs, in order:
    updates syn1neg in place; returns (gradient step for l1 (neu1e), loss)."""
    neu1e = np.zeros_like(l1)
    loss = 0.0
    for t, label in zip(targets, labels):
        f = float(np.dot(l1, syn1neg[t]))
        if f > MAX_EXP:
            g = (label - 1.0) * alpha
        elif f < -MAX_EXP:
            g = label * alpha
        else:
            g = (label - 1.0 / (1.0 + math.exp(-f))) * alpha
        if compute_loss:
            z = -f if label > 0 else f
            loss += max(z, 0.0) + math.log1p(math.exp(-abs(z)))
        neu1e += np.float32(g) * syn1neg[t]
        syn1neg[t] += np.float32(g) * l1
    return neu1e, loss


def _targets_ref(word, cum, negative, r):
    targets, labels = [word], [1.0]
    for _ in range(negative):
        r = _next_ref(r)
        t = int(np.searchsorted(cum, (r >> 16) % int(cum[-1]), side="right"))
        if t != word:
            targets.append(t)
            labels.append(0.0)
    return targets, labels, r


def train_sentences_reference(ids, ends, syn0, syn1neg, cum_table, keep_int, *, window: int,
                              negative: int, sg: bool, alpha: float, min_alpha: float,
                              words_done: int, total_words: int, seed: int,
                              compute_loss: bool = False) -> tuple:
    """The same training, one NumPy row operation at a time (the test oracle)."""
    _check(ids, ends, syn0, syn1neg, cum_table, keep_int, window)
    r, loss, trained, start = int(seed), 0.0, 0, 0
    for stop in ends:
        a = np.float32(alpha - (alpha - min_alpha) * min(words_done / total_words, 1.0))
        kept = []
        for w in ids[start:stop]:
            r = _next_ref(r)
            if (r >> 32) < keep_int[w]:
                kept.append(int(w))
        words_done += int(stop) - start
        start = int(stop)
        trained += len(kept)
        n = len(kept)
        for i, word in enumerate(kept):
            r = _next_ref(r)
            b = r % window
            ctx = [kept[c] for c in range(max(0, i - window + b), min(n, i + window + 1 - b))
                   if c != i]
            if sg:
                for c in ctx:
                    targets, labels, r = _targets_ref(word, cum_table, negative, r)
                    step, lo = sgns_step_reference(syn0[c].copy(), targets, labels, syn1neg,
                                                   a, compute_loss)
                    syn0[c] += step
                    loss += lo
            elif ctx:
                h = np.mean(syn0[ctx], axis=0, dtype=np.float32)
                targets, labels, r = _targets_ref(word, cum_table, negative, r)
                step, lo = sgns_step_reference(h, targets, labels, syn1neg, a, compute_loss)
                loss += lo
                for c in ctx:
                    syn0[c] += step
    return r, trained, loss
