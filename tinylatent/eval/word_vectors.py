"""Evaluating word vectors: analogies by 3CosAdd and neighbour overlap between two models.

    analogy_accuracy(vectors, stoi, questions)   a : b :: c : ?  (Mikolov et al. 2013a)
    load_analogies()                             the hand-built KJV analogy set
    neighbour_overlap(a, stoi_a, b, stoi_b, words, k)   mean |N_k^a(w) & N_k^b(w)| / k

`vectors` are (V, D) rows of any model (tinylatent's Word2Vec, gensim's KeyedVectors.vectors)
indexed by `stoi` (word -> row); similarities are cosines.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["analogy_accuracy", "load_analogies", "neighbour_overlap", "ANALOGIES_PATH"]


def _unit(vectors) -> np.ndarray:
    w = np.asarray(vectors, dtype=np.float64)
    return w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)


def analogy_accuracy(vectors, stoi: dict, questions, batch: int = 512) -> tuple:
    """(accuracy, number answered) of 3CosAdd over (a, b, c, d) questions whose four words
    are in `stoi`: the fraction where argmax_x cos(x, b - a + c), x not in {a, b, c}, is d.
    vectors: (V, D) rows of any model (gensim's too), indexed by stoi."""
    w = _unit(vectors)
    q = np.asarray([[stoi[x] for x in qu] for qu in questions
                    if all(x in stoi for x in qu)], np.int64).reshape(-1, 4)   # (Q, 4)
    hits = 0
    for s in range(0, len(q), batch):
        a, b, c, d = q[s:s + batch].T
        query = w[b] - w[a] + w[c]                                          # (q, D)
        sims = query @ w.T                                                  # (q, V)
        rows = np.arange(len(a))
        for col in (a, b, c):
            sims[rows, col] = -np.inf
        hits += int((sims.argmax(axis=1) == d).sum())
    return hits / max(len(q), 1), len(q)


ANALOGIES_PATH = (Path(__file__).resolve().parents[1] / "data" / "embedded"
                  / "kjv_analogies.txt")


def load_analogies(path=None) -> dict:
    """{section: [(a, b, c, d), ...]} from a file of ": section" headers and "x y" pair
    lines (default: the hand-built KJV set, tinylatent/data/embedded/kjv_analogies.txt);
    every ordered choice of two different pairs of a section is one question."""
    path = Path(path) if path is not None else ANALOGIES_PATH
    sections, name = {}, None
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            name = line[1:].strip()
            sections[name] = []
            continue
        pair = line.split()
        if name is None or len(pair) != 2:
            raise ValueError(f"{path}: line {n}: expected ': section' or 'word word', got "
                             f"{line!r}")
        sections[name].append(tuple(pair))
    return {s: [(a, b, c, d) for i, (a, b) in enumerate(pairs)
                for j, (c, d) in enumerate(pairs) if i != j]
            for s, pairs in sections.items()}


def neighbour_overlap(vectors_a, stoi_a: dict, vectors_b, stoi_b: dict, words,
                      k: int = 10) -> float:
    """Mean over `words` of |N_k^a(w) & N_k^b(w)| / k, N_k the k nearest other words by
    cosine in each model (compared as words, so the vocabularies' orders may differ)."""
    def neighbours(vectors, stoi):
        w = _unit(vectors)
        itos = {i: s for s, i in stoi.items()}
        ids = np.asarray([stoi[x] for x in words])
        sims = w[ids] @ w.T                                                 # (Q, V)
        sims[np.arange(len(ids)), ids] = -np.inf
        return [{itos[j] for j in row} for row in np.argsort(-sims, axis=1)[:, :k]]
    a, b = neighbours(vectors_a, stoi_a), neighbours(vectors_b, stoi_b)
    return float(np.mean([len(x & y) / k for x, y in zip(a, b)]))
