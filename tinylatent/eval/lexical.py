"""Lexical retrieval baselines (issue 20, ICT): every passage scored for every query by
word overlap, the figures a learned retriever has to beat on the same split.

    bm25_scores(queries, passages)     Okapi BM25 (Robertson et al. 1994), k1 = 1.2, b = 0.75
    tfidf_scores(queries, passages)    cosine of log(1 + tf) * idf vectors

Both take lists of strings, split them with tl.data.tokenizers.split_words (lower case;
punctuation marks count as words) and return a (Q, P) NumPy array; idf comes from the
passages only.
"""
from __future__ import annotations

import collections

import numpy as np

from ..data.bow import tfidf
from ..data.tokenizers import split_words
from ..tensor import Tensor

__all__ = ["bm25_scores", "tfidf_scores"]


def bm25_scores(queries, passages, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """sum over the query's distinct words w of
    idf(w) tf(w, p) (k1 + 1) / (tf(w, p) + k1 (1 - b + b |p| / avg |p|)),
    idf(w) = log(1 + (N - df(w) + 0.5) / (df(w) + 0.5)): (Q, P)."""
    docs = [collections.Counter(split_words(p, lower=True)) for p in passages]
    df = collections.Counter(w for d in docs for w in d)
    n, avg = len(docs), np.mean([sum(d.values()) for d in docs])
    vocab = {w: i for i, w in enumerate(df)}
    tf = np.zeros((len(vocab), n))                                      # (V, P)
    for j, d in enumerate(docs):
        for w, c in d.items():
            tf[vocab[w], j] = c
    length = tf.sum(0)
    dfs = np.asarray(list(df.values()))
    idf = np.log(1 + (n - dfs + 0.5) / (dfs + 0.5))
    weight = idf[:, None] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg))
    out = np.zeros((len(queries), n))
    for i, q in enumerate(queries):
        ids = [vocab[w] for w in set(split_words(q, lower=True)) if w in vocab]
        out[i] = weight[ids].sum(0)
    return out


def tfidf_scores(queries, passages) -> np.ndarray:
    """Cosine of log(1 + tf) * idf vectors (tl.data.tfidf), idf from the passages: (Q, P)."""
    vocab = {w: i for i, w in enumerate(sorted({w for p in passages
                                                for w in split_words(p, lower=True)}))}

    def counts(texts):
        c = np.zeros((len(texts), len(vocab)), np.float64)             # (N, V)
        for i, t in enumerate(texts):
            for w in split_words(t, lower=True):
                if w in vocab:
                    c[i, vocab[w]] += 1
        return Tensor._make(c)
    p, idf = tfidf(counts(passages))
    q, _ = tfidf(counts(queries), idf)
    p, q = p.numpy(), q.numpy()
    p /= np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    return q @ p.T
