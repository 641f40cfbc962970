"""Two languages with a known dictionary, for the learning-to-map family (issue 21).

There is no second language offline, so "language B" is the KJV under a hidden cipher: a
random bijection of the whole vocabulary (words and punctuation) onto made-up words, then a
deterministic local reordering (each block of `block` consecutive tokens reversed). Both steps
are known, so the ground-truth dictionary and the reference translation of every sentence are
exact, which a real language pair never gives.

    pair = cipher_pair(seed=0)
    pair.a_train, pair.b_train        # monolingual sentences (token lists) of disjoint chapters
    pair.valid, pair.test             # held-out chapters: (a_tokens, b_tokens) parallel pairs
    pair.cipher.dictionary["lord"]    # the hidden translation of a word, e.g. "kavo"

The two training halves come from different chapters, so embeddings trained on each (with
different seeds) are two separately learned spaces, as MUSE (Conneau et al. 2018) assumes of
two languages; `cipher.encipher(sentence)` is the supervised reference a parallel corpus
would give. `load_parallel_text` reads a user's own sentence-aligned files instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from .tokenizers import split_words

__all__ = ["Cipher", "CipherPair", "cipher_pair", "load_parallel_text"]

# Made-up words are syllables consonant + vowel: 16 x 5 = 80 syllables, 2-4 per word
_CONSONANTS = "bdfghklmnprstvzw"
_VOWELS = "aeiou"


def _made_up_words(count: int, rng: np.random.Generator, avoid: set) -> list:
    """`count` distinct pronounceable strings, none of them in `avoid`."""
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    words, seen = [], set(avoid)
    while len(words) < count:
        n = int(rng.integers(2, 5))
        word = "".join(syllables[i] for i in rng.integers(0, len(syllables), size=n))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _reverse_blocks(tokens: Sequence[str], block: int) -> list:
    """Each run of `block` consecutive tokens reversed (the last, shorter run too).

    An involution: applying it twice gives `tokens` back, so it is its own inverse.
    """
    out = []
    for start in range(0, len(tokens), block):
        out.extend(reversed(tokens[start:start + block]))
    return out


class Cipher:
    """Language A -> B: word substitution by a random bijection, then block reversal.

    vocabulary: every token language A may use (B has exactly as many);
    block: the reordering block length (1 = no reordering).
    """

    def __init__(self, vocabulary: Sequence[str], seed: int = 0, block: int = 2):
        vocabulary = list(dict.fromkeys(vocabulary))
        if not vocabulary:
            raise ValueError("Cipher: empty vocabulary")
        if not isinstance(block, int) or block < 1:
            raise ValueError(f"Cipher: block must be a positive int, got {block!r}")
        rng = np.random.default_rng(seed)
        made_up = _made_up_words(len(vocabulary), rng, avoid=set(vocabulary))
        self.block = block
        self.seed = seed
        self.dictionary = dict(zip(vocabulary, made_up))              # A word -> B word
        self.inverse = {b: a for a, b in self.dictionary.items()}     # B word -> A word

    def __len__(self) -> int:
        return len(self.dictionary)

    def __repr__(self) -> str:
        return f"Cipher({len(self)} words, seed={self.seed}, block={self.block})"

    @staticmethod
    def _lookup(table: dict, tokens: Sequence[str], side: str) -> list:
        missing = [t for t in tokens if t not in table]
        if missing:
            raise KeyError(f"Cipher: {len(missing)} token(s) not in language {side}'s "
                           f"vocabulary, e.g. {missing[:3]}")
        return [table[t] for t in tokens]

    def encipher(self, tokens: Sequence[str]) -> list:
        """The language-B sentence of A tokens: substitute each word, then reverse blocks."""
        return _reverse_blocks(self._lookup(self.dictionary, tokens, "A"), self.block)

    def decipher(self, tokens: Sequence[str]) -> list:
        """The language-A sentence of B tokens (exact inverse of `encipher`)."""
        return self._lookup(self.inverse, _reverse_blocks(list(tokens), self.block), "B")


class CipherPair(NamedTuple):
    cipher: Cipher
    a_train: list      # language A sentences (lists of tokens) from the A half of chapters
    b_train: list      # language B sentences from the other, disjoint half
    valid: list        # (a_tokens, b_tokens) parallel pairs from held-out chapters
    test: list         # (a_tokens, b_tokens) parallel pairs from other held-out chapters


def cipher_pair(verses=None, seed: int = 0, block: int = 2, held_out: float = 0.05) -> CipherPair:
    """The KJV split by chapter into A-monolingual, B-monolingual, validation and test parts.

    verses: `Verse`s (default: `load_kjv()`); sentences are their lower-cased tokens
    (`split_words`). Chapters are shuffled with `seed`; `held_out` of them go to each of
    valid and test, and the rest are split in half: A sentences from one half, the
    enciphered sentences of the other half as language B. The cipher's vocabulary is every
    token of `verses`, so every held-out sentence has an exact reference translation.
    """
    if not 0 < held_out < 0.5:
        raise ValueError(f"cipher_pair: held_out must be in (0, 0.5), got {held_out}")
    if verses is None:
        from .text import load_kjv
        verses = load_kjv()
    chapters: dict = {}
    for v in verses:
        chapters.setdefault((v.book, v.chapter), []).append(split_words(v.text, lower=True))
    keys = list(chapters)
    if len(keys) < 4:
        raise ValueError(f"cipher_pair: need at least 4 chapters, got {len(keys)}")
    vocabulary = [t for k in keys for s in chapters[k] for t in s]
    cipher = Cipher(vocabulary, seed=seed, block=block)
    order = np.random.default_rng(seed).permutation(len(keys))
    n_held = max(1, int(round(held_out * len(keys))))
    valid_keys = [keys[i] for i in order[:n_held]]
    test_keys = [keys[i] for i in order[n_held:2 * n_held]]
    rest = [keys[i] for i in order[2 * n_held:]]
    half = len(rest) // 2

    position = {k: i for i, k in enumerate(keys)}

    def sentences(ks):                           # in canonical (book, chapter) order
        return [s for k in sorted(ks, key=position.get) for s in chapters[k]]

    def parallel(ks):
        return [(s, cipher.encipher(s)) for s in sentences(ks)]

    return CipherPair(cipher, sentences(rest[:half]),
                      [cipher.encipher(s) for s in sentences(rest[half:])],
                      parallel(valid_keys), parallel(test_keys))


def load_parallel_text(source: "str | os.PathLike", target: "str | os.PathLike",
                       lower: bool = False) -> list:
    """Sentence-aligned files (UTF-8, one sentence per line) as (source, target) token lists.

    Tokens as `split_words`. Both files must have the same number of lines and no empty line,
    since a misaligned corpus silently teaches the wrong translation.
    """
    texts = []
    for path in (Path(source).expanduser(), Path(target).expanduser()):
        try:
            texts.append(path.read_text(encoding="utf-8").splitlines())
        except OSError as e:
            raise FileNotFoundError(f"load_parallel_text: cannot read {path}: {e}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"load_parallel_text: {path} is not UTF-8 ({e})") from None
    (src, tgt), names = texts, (source, target)
    if len(src) != len(tgt):
        raise ValueError(f"load_parallel_text: {names[0]} has {len(src)} lines but {names[1]} "
                         f"has {len(tgt)}; the files must be sentence-aligned")
    pairs = []
    for n, (s, t) in enumerate(zip(src, tgt), 1):
        a, b = split_words(s, lower), split_words(t, lower)
        if not a or not b:
            empty = names[0] if not a else names[1]
            raise ValueError(f"load_parallel_text: line {n} of {empty} is empty")
        pairs.append((a, b))
    return pairs
