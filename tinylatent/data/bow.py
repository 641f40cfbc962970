"""Bag-of-words text data: the embedded King James Bible chapters as word counts, and tf-idf.

    counts, labels, meta = load_kjv_bow()        # 1,189 KJV chapters x 2,000 words
    features, idf = tfidf(counts)
"""
from __future__ import annotations

import os

import numpy as np

from ..tensor import Tensor

__all__ = ["load_kjv_bow", "tfidf", "KJV_BOW_PATH"]

KJV_BOW_PATH = os.path.join(os.path.dirname(__file__), "embedded", "kjv_bow.npz")


def load_kjv_bow(path: str | None = None) -> tuple:
    """The embedded King James Bible bag of words: counts (1189, V) float32 Tensor (one row
    per chapter), labels (1189,) int64 Tensor (section of the canon: 0 Law, 1 History,
    2 Poetry & Wisdom, 3 Prophets, 4 Gospels & Acts, 5 Epistles & Revelation) and a dict
    with "vocab", "label_names", "book_names", "book" and "chapter" per document. Built by
    scripts/make_kjv_bow.py from Debian's bible-kjv-text (public domain text)."""
    path = path or KJV_BOW_PATH
    try:
        with np.load(path, allow_pickle=False) as f:
            d = {key: f[key] for key in f.files}
    except (OSError, ValueError, KeyError) as e:
        raise OSError(f"load_kjv_bow: cannot read {path}: {e}") from e
    need = {"indptr", "indices", "counts", "labels", "vocab", "label_names"}
    if not need <= set(d):
        raise OSError(f"load_kjv_bow: {path} lacks arrays {sorted(need - set(d))}")
    vocab = str(d["vocab"]).split("\n")
    indptr = d["indptr"].astype(np.int64)
    if indptr[-1] != len(d["indices"]) or len(indptr) != len(d["labels"]) + 1:
        raise OSError(f"load_kjv_bow: {path} is inconsistent (indptr ends at {indptr[-1]}, "
                      f"{len(d['indices'])} entries, {len(d['labels'])} labels)")
    counts = np.zeros((len(indptr) - 1, len(vocab)), dtype=np.float32)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    counts[rows, d["indices"].astype(np.int64)] = d["counts"]
    meta = {"vocab": vocab, "label_names": str(d["label_names"]).split("\n"),
            "book_names": str(d["book_names"]).split("\n"), "book": d["book"].astype(int),
            "chapter": d["chapter"].astype(int)}
    return Tensor._make(counts), Tensor._make(d["labels"].astype(np.int64)), meta


def tfidf(counts: Tensor, idf: Tensor | None = None) -> tuple:
    """log(1 + tf) * idf rows, idf = log(N / df); returns (features, idf). A stronger
    baseline than raw counts: it down-weights words every chapter uses."""
    c = counts.array
    xp = counts.xp
    if idf is None:
        df = (c > 0).sum(0)
        idf = Tensor._make(xp.log(len(c) / xp.maximum(df, 1)).astype(c.dtype))
    return Tensor._make(xp.log1p(c) * idf.array), idf
