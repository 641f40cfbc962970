"""Sentence pairs for contrastive sentence encoders (SimCSE, examples/simcse_kjv.py).

    corrupt_words("In the beginning God created", rng, drop=0.3)  -> "God the In"
    chapter_triples(keys, rng)   -> (M, 3) (anchor, same-chapter positive, other-book negative)

`keys` are the (book, chapter) of each verse: a verse's positive is another verse of its
chapter (same passage: the "entailment" role of SimCSE's NLI pairs, sec. 4) and its hard
negative a verse of another book (the "contradiction" role).
"""
from __future__ import annotations

import numpy as np

__all__ = ["corrupt_words", "chapter_triples"]


def corrupt_words(text: str, rng: np.random.Generator, drop: float = 0.3) -> str:
    """Drop each whitespace-separated word with probability `drop` (at least one word is
    kept), then shuffle the kept words."""
    if not 0.0 <= drop < 1.0:
        raise ValueError(f"corrupt_words: drop must be in [0, 1), got {drop}")
    words = text.split()
    if not words:
        raise ValueError("corrupt_words: empty text")
    kept = [w for w in words if rng.random() >= drop] or [words[rng.integers(len(words))]]
    return " ".join(rng.permutation(kept))


def chapter_triples(keys, rng: np.random.Generator) -> np.ndarray:
    """(M, 3) int64 rows (i, j, k) over verses with (book, chapter) keys[i]: j != i in the
    same chapter (uniform), k in another book (uniform); verses alone in their chapter are
    skipped."""
    keys = list(keys)
    books = np.array([k[0] for k in keys])
    by_chapter = {}
    for i, k in enumerate(keys):
        by_chapter.setdefault(k, []).append(i)
    rows = []
    for i, k in enumerate(keys):
        same = by_chapter[k]
        if len(same) < 2:
            continue
        j = same[(same.index(i) + 1 + rng.integers(len(same) - 1)) % len(same)]   # not i
        other = np.flatnonzero(books != k[0])
        if len(other):
            rows.append((i, j, other[rng.integers(len(other))]))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)
