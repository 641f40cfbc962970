"""The fully unsupervised initialisation and stochastic self-learning of Artetxe et al. 2018
("A robust self-learning method for fully unsupervised cross-lingual mappings of word
embeddings", ACL), MUSE's `init="similarity"`: an alternative to the adversarial game.

1. Seed dictionary from similarity distributions (Sec. 3.2). If the two spaces were exactly
   isometric, M_X = X X^T and M_Z = Z Z^T would be the same matrix up to a permutation of
   rows and columns; sorting each row removes the column permutation, so a word's sorted
   similarity row is a language-independent fingerprint. As the paper (and vecmap's code),
   the fingerprint is the sorted row of sqrt(M_X) = U S U^T (X = U S V^T) on the `n` most
   frequent words, normalised (unit, center, unit); fingerprints are matched by CSLS, both
   directions ("union"):

       D_0 = {(i, argmax_j CSLS(i, j))} u {(argmax_i CSLS(i, j), j)}

2. Self-learning (Sec. 3.3-3.4): W = Procrustes(D); D = the CSLS nearest neighbours of
   every source word (forward) and every target word (backward) under W, each similarity
   entry kept with probability p (stochastic dictionary induction: zeroed otherwise, as
   vecmap's dropout) so the process can leave a poor local optimum; p starts at
   `keep_prob` and is multiplied by `multiplier` whenever the objective (the mean best
   cosine both ways) has not improved by 1e-6 for `interval` iterations; once p = 1 has
   stalled too, the last W is final. (vecmap's last re-weighting / whitening step, Sec. 3.4,
   is not done: W stays orthogonal, as MUSE's.)

Rows are word vectors most frequent first; x maps to W x, so mapped rows are x @ W^T.
"""
from __future__ import annotations

import numpy as np

from ..eval import cross_lingual as xl

__all__ = ["similarity_seed", "self_learning"]


def _topk_mean(sims: np.ndarray, k: int) -> np.ndarray:
    """Mean of each row's k largest entries, (n,)."""
    k = min(k, sims.shape[1])
    return np.partition(sims, -k, axis=1)[:, -k:].mean(axis=1)


def _fingerprints(v: np.ndarray) -> np.ndarray:
    """Sorted rows of sqrt(V V^T) = U S U^T, normalised unit, center, unit. (n, n)"""
    u, s, _ = np.linalg.svd(v, full_matrices=False)                  # v (n, d): u (n, d)
    sim = np.sort((u * s) @ u.T, axis=1)                              # (n, n)
    return xl.normalize_embeddings(sim, "renorm,center,renorm")


def similarity_seed(x, z, n: int = 4000, csls_k: int = 10) -> np.ndarray:
    """The initial dictionary D_0 of Sec. 3.2 on the min(n, |x|, |z|) most frequent words
    of each language: pairs (i, j), (2 m, 2), forward then backward."""
    x, z = xl.normalize_embeddings(x), xl.normalize_embeddings(z)
    n = min(n, len(x), len(z))
    if n < 2:
        raise ValueError(f"similarity_seed: need n >= 2 words in each language, got {n}")
    sim = _fingerprints(x[:n]) @ _fingerprints(z[:n]).T                # (n, n)
    # CSLS on the fingerprints (vecmap: sim - r_fwd / 2 - r_bwd / 2)
    sim -= _topk_mean(sim, csls_k)[:, None] / 2 + _topk_mean(sim.T, csls_k)[None, :] / 2
    i = np.arange(n)
    return np.stack([np.r_[i, sim.argmax(axis=0)], np.r_[sim.argmax(axis=1), i]], axis=1)


def _induce(xw, z, csls_k, keep_prob, rng) -> tuple:
    """One dictionary induction both ways under entry dropout (unit rows): the forward CSLS
    translation of each xw row among z, the backward one of each z row among xw, and the
    objective (the mean best cosine both ways). (n,), (m,), float"""
    sims = (xw @ z.T).astype(np.float32)                              # (n, m)
    sims_t = np.ascontiguousarray(sims.T)                             # (m, n)
    objective = (sims.max(axis=1).mean() + sims_t.max(axis=1).mean()) / 2
    # CSLS's order per row only needs the other side's r / 2 (vecmap: sim - r_bwd / 2)
    r_x, r_z = _topk_mean(sims, csls_k), _topk_mean(sims_t, csls_k)   # (n,), (m,)
    found = []
    for scores, r in ((sims, r_z), (sims_t, r_x)):
        scores -= r[None, :] / 2
        if keep_prob < 1:
            scores *= rng.random(scores.shape, np.float32) < keep_prob
        found.append(scores.argmax(axis=1))
    return found[0], found[1], float(objective)


def self_learning(x, z, pairs, csls_k: int = 10, keep_prob: float = 0.1,
                  multiplier: float = 2.0, interval: int = 50, max_iterations: int = 10000,
                  seed: int = 0, callback=None) -> tuple:
    """Sec. 3.3-3.4 from the dictionary `pairs` (p, 2) over all rows of x (n, d) and
    z (m, d) (rows made unit length: cosines). callback(iteration, objective, keep_prob) after
    each dictionary induction. Returns (W (d, d) orthogonal, iterations)."""
    x, z = xl.normalize_embeddings(x, "renorm"), xl.normalize_embeddings(z, "renorm")
    if not 0 < keep_prob <= 1 or multiplier <= 1 or interval < 1:
        raise ValueError(f"self_learning: need keep_prob in (0, 1], multiplier > 1, "
                         f"interval >= 1, got {keep_prob}, {multiplier}, {interval}")
    rng = np.random.default_rng(seed)
    src, trg = np.asarray(pairs)[:, 0], np.asarray(pairs)[:, 1]
    best, last_improvement, end = -np.inf, 0, False
    for it in range(1, max_iterations + 1):
        if it - last_improvement > interval:        # stalled: keep more of the similarities
            end = keep_prob >= 1.0
            keep_prob, last_improvement = min(1.0, multiplier * keep_prob), it
        w = xl.procrustes(x[src], z[trg])                              # (d, d)
        if end:
            break
        trg_fwd, src_bwd, objective = _induce(x @ w.T, z, csls_k, keep_prob, rng)
        src = np.r_[np.arange(len(x)), src_bwd]
        trg = np.r_[trg_fwd, np.arange(len(z))]
        if objective - best >= 1e-6:
            last_improvement, best = it, objective
        if callback is not None:
            callback(it, objective, keep_prob)
    return w, it
