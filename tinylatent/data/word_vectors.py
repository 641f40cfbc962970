"""Word vectors in the word2vec text format, the format fastText, MUSE and gensim exchange.

    7 3                      <- header: number of words n, vector size d
    the 0.1 -0.2 0.3         <- n lines: a word (no whitespace in it), then d numbers
    lord 0.5 0.0 -1.25
    ...

    words, vectors = load_word_vectors("wiki.en.vec", limit=200000)   # list, (n, d) float32
    save_word_vectors("out.vec", words, vectors)                      # atomic write

A malformed file raises a `WordVectorFormatError` (a ValueError) naming the file and the
line, since a silently misread embedding only shows up later as a poor translation score.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..serialization import atomic_write

__all__ = ["load_word_vectors", "save_word_vectors", "WordVectorFormatError"]


class WordVectorFormatError(ValueError):
    """A word-vector file that does not follow the word2vec text format."""


def _header(path, line: str) -> tuple:
    fields = line.split()
    try:
        n, d = (int(f) for f in fields)
    except ValueError:
        raise WordVectorFormatError(
            f"load_word_vectors: {path}, line 1: expected the header 'n d' (two integers: "
            f"number of words, vector size), got {line[:60]!r}") from None
    if n < 0 or d < 1:
        raise WordVectorFormatError(f"load_word_vectors: {path}, line 1: header gives {n} "
                                    f"words of size {d}; need n >= 0 and d >= 1")
    return n, d


def load_word_vectors(path: "str | os.PathLike", limit: "int | None" = None) -> tuple:
    """(words, vectors): the words in file order and their (n, d) float32 vectors.

    limit: read only the first `limit` words (files are usually sorted by frequency, so
    this keeps the most frequent ones, as MUSE's `max_vocab`). The header's n must match
    the number of word lines when the whole file is read.
    """
    path = Path(path).expanduser()
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"load_word_vectors: limit must be a non-negative int, got {limit!r}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise FileNotFoundError(f"load_word_vectors: cannot read {path}: {e}") from None
    lines = raw.splitlines()
    if not lines:
        raise WordVectorFormatError(f"load_word_vectors: {path} is empty (expected the "
                                    "header 'n d' on line 1)")

    def text(number: int) -> str:           # number: 1-based line number
        try:
            return lines[number - 1].decode("utf-8")
        except UnicodeDecodeError as e:
            raise WordVectorFormatError(f"load_word_vectors: {path}, line {number} is not "
                                        f"UTF-8 ({e.reason} at byte {e.start})") from None

    n, d = _header(path, text(1))
    body = [i for i in range(2, len(lines) + 1) if lines[i - 1].strip()]   # skip blank lines
    if limit is None and len(body) != n:
        raise WordVectorFormatError(f"load_word_vectors: {path}: the header says {n} words "
                                    f"but the file has {len(body)} word lines")
    count = min(n, len(body)) if limit is None else min(n, limit, len(body))
    words, seen = [], {}
    vectors = np.empty((count, d), np.float32)
    for row, number in enumerate(body[:count]):
        fields = text(number).rstrip().split(" ")   # as gensim: single spaces
        word, values = fields[0], fields[1:]
        if len(values) != d:
            raise WordVectorFormatError(
                f"load_word_vectors: {path}, line {number}: word {word!r} has {len(values)} "
                f"numbers, the header says vectors have {d}")
        try:
            vectors[row] = np.asarray(values, dtype=np.float32)
        except ValueError:
            raise WordVectorFormatError(f"load_word_vectors: {path}, line {number}: word "
                                        f"{word!r} has a value that is not a number") from None
        if word in seen:
            raise WordVectorFormatError(f"load_word_vectors: {path}, line {number}: word "
                                        f"{word!r} already appeared on line {seen[word]}")
        seen[word] = number
        words.append(word)
    return words, vectors


def save_word_vectors(path: "str | os.PathLike", words, vectors) -> None:
    """Write `words` and their (n, d) `vectors` in the word2vec text format, atomically (as
    tl.save: a temporary file in the same directory renamed over `path`), so an interrupted
    save never leaves a truncated file that a later load would misread."""
    words = list(words)
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(words) != vectors.shape[0] or vectors.shape[1] < 1:
        raise ValueError(f"save_word_vectors: need n words and (n, d) vectors, got "
                         f"{len(words)} words and vectors of shape {vectors.shape}")
    for i, w in enumerate(words):
        if not isinstance(w, str) or not w or any(c.isspace() for c in w):
            raise ValueError(f"save_word_vectors: word {i} ({w!r}) must be a non-empty "
                             "string without whitespace")
    if len(set(words)) != len(words):
        seen = set()
        dup = next(w for w in words if w in seen or seen.add(w))
        raise ValueError(f"save_word_vectors: word {dup!r} occurs twice")
    if not np.all(np.isfinite(vectors)):
        raise ValueError("save_word_vectors: vectors hold NaN or inf")
    rows = vectors.astype(np.float32)

    def write(f):
        f.write(f"{len(words)} {vectors.shape[1]}\n".encode("utf-8"))
        for w, v in zip(words, rows):
            # 9 significant digits read back to the same float32 (IEEE 754, Sec. 5.12.2)
            f.write((w + " " + " ".join(np.char.mod("%.9g", v)) + "\n").encode("utf-8"))
    atomic_write(Path(path).expanduser(), write)
