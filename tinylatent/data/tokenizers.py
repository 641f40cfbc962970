"""Tokenizers: characters, words, and byte-pair encoding (Sennrich, Haddow & Birch 2016).

Every tokenizer maps text to a list of integer ids and back:

    tok = BPETokenizer.train(load_botchan(), num_merges=1000)
    ids = tok.encode("I was a rascal.")      # [int, ...]
    tok.decode(ids)                          # "I was a rascal ." (words joined by spaces)
    tok.save("botchan_bpe.json"); tok = load_tokenizer("botchan_bpe.json")

Special tokens (`<unk>` always, others such as `<eos>`, `[CLS]`, `[SEP]`, `[MASK]`, `<pad>`
on request) take the first ids, in the order given. Files are JSON: nothing is unpickled.
Words are runs of letters/digits/apostrophes or single punctuation marks, so
`WordTokenizer`/`BPETokenizer` decode words joined by single spaces (original spacing is not
kept); `CharTokenizer` round-trips any text made of characters it has seen.
"""
from __future__ import annotations

import collections
import heapq
import json
import os
import re
from typing import Iterable, Sequence

__all__ = ["CharTokenizer", "WordTokenizer", "BPETokenizer", "load_tokenizer", "split_words",
           "UNK", "run_bpe_tokenizer"]

UNK = "<unk>"
END_OF_WORD = "</w>"   # Sennrich et al. 2016, Sec. 3.2: marks the last symbol of a word
_WORD = re.compile(r"[\w']+|[^\w\s]")


def split_words(text: str, lower: bool = False) -> list:
    """Words and punctuation marks: "Thou art, O LORD." -> ["Thou", "art", ",", "O", ...]."""
    return _WORD.findall(text.lower() if lower else text)


class _Vocabulary:
    """Shared id bookkeeping: `itos` (id -> token), `stoi` (token -> id), specials first."""

    kind = ""

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = (UNK,)):
        specials = list(dict.fromkeys([UNK, *specials]))
        self.specials = specials
        self.itos = specials + [t for t in tokens if t not in specials]
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError(f"{type(self).__name__}: duplicate tokens in the vocabulary")
        self.unk_id = self.stoi[UNK]

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def token_to_id(self, token: str) -> int:
        return self.stoi.get(token, self.unk_id)

    def id_to_token(self, index: int) -> str:
        if not 0 <= index < len(self.itos):
            raise IndexError(f"{type(self).__name__}: id {index} outside the vocabulary "
                             f"[0, {len(self.itos)})")
        return self.itos[index]

    def _state(self) -> dict:
        return {"specials": self.specials, "tokens": self.itos[len(self.specials):]}

    def save(self, path: "str | os.PathLike") -> None:
        """Write the tokenizer as JSON (to a temporary file, then renamed into place)."""
        state = {"type": self.kind, **self._state()}
        tmp = f"{os.fspath(path)}.part"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, ensure_ascii=False)
        os.replace(tmp, path)


class CharTokenizer(_Vocabulary):
    """One id per character; characters not seen when fitting map to `<unk>`."""

    kind = "char"

    @classmethod
    def fit(cls, text: str, specials: Sequence[str] = (UNK,)) -> "CharTokenizer":
        return cls(sorted(set(text)), specials)

    def encode(self, text: str) -> list:
        return [self.token_to_id(c) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.id_to_token(int(i)) for i in ids)


class WordTokenizer(_Vocabulary):
    """Words (see `split_words`) seen at least `min_count` times; rarer words -> `<unk>`.

    Ids after the specials are ordered by decreasing count, ties alphabetically, so a
    fitted vocabulary does not depend on dictionary order.
    """

    kind = "word"

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = (UNK,),
                 lower: bool = False):
        super().__init__(tokens, specials)
        self.lower = lower

    @classmethod
    def fit(cls, texts: "str | Iterable[str]", min_count: int = 1,
            specials: Sequence[str] = (UNK,), lower: bool = False) -> "WordTokenizer":
        if min_count < 1:
            raise ValueError(f"WordTokenizer.fit: min_count must be >= 1, got {min_count}")
        texts = [texts] if isinstance(texts, str) else texts
        counts = collections.Counter(w for t in texts for w in split_words(t, lower))
        words = sorted((w for w, c in counts.items() if c >= min_count),
                       key=lambda w: (-counts[w], w))
        return cls(words, specials, lower)

    def encode(self, text: str) -> list:
        return [self.token_to_id(w) for w in split_words(text, self.lower)]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.id_to_token(int(i)) for i in ids)

    def _state(self) -> dict:
        return {**super()._state(), "lower": self.lower}


class BPETokenizer(_Vocabulary):
    """Byte-pair encoding over characters (Sennrich, Haddow & Birch 2016, Sec. 3.2, Alg. 1).

    Training starts from each word spelled as characters plus an end-of-word marker `</w>`
    and repeatedly merges the most frequent adjacent pair of symbols (counted over the
    corpus, ties broken by the pair's text so training is deterministic) into one new symbol.
    Encoding a word replays the learned merges in the order they were learned.
    """

    kind = "bpe"

    def __init__(self, merges: Sequence[tuple], alphabet: Sequence[str],
                 specials: Sequence[str] = (UNK,), lower: bool = False):
        self.merges = [tuple(m) for m in merges]
        self.alphabet = sorted(set(alphabet))
        symbols = [*self.alphabet, *(c + END_OF_WORD for c in self.alphabet)]
        symbols += [a + b for a, b in self.merges]
        super().__init__(list(dict.fromkeys(symbols)), specials)
        self.lower = lower
        self.ranks = {pair: r for r, pair in enumerate(self.merges)}
        self._cache: dict = {}

    @classmethod
    def train(cls, texts: "str | Iterable[str]", num_merges: int = 1000,
              specials: Sequence[str] = (UNK,), lower: bool = False,
              min_frequency: int = 2) -> "BPETokenizer":
        """Learn up to `num_merges` merges; stop early when no pair occurs `min_frequency` times."""
        texts = [texts] if isinstance(texts, str) else texts
        word_counts = collections.Counter(w for t in texts for w in split_words(t, lower))
        alphabet = sorted({c for w in word_counts for c in w})
        # each distinct word as a list of symbols, with its corpus count
        words = [(_spell(w), n) for w, n in word_counts.items()]
        pair_counts: collections.Counter = collections.Counter()
        where: dict = collections.defaultdict(set)   # pair -> indices of words containing it
        for k, (symbols, n) in enumerate(words):
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] += n
                where[pair].add(k)
        # a max-heap of (-count, pair); entries go stale when a count changes and are skipped
        # when popped, so finding the best pair costs O(log #pairs) instead of a full scan
        heap = [(-n, pair) for pair, n in pair_counts.items()]
        heapq.heapify(heap)
        merges = []
        while heap and len(merges) < num_merges:
            neg_count, best = heapq.heappop(heap)
            if pair_counts.get(best, 0) != -neg_count:
                continue   # stale entry
            if -neg_count < min_frequency:
                break
            merges.append(best)
            # re-spell only the words that contain the pair, updating the counts incrementally
            changed = set()
            for k in sorted(where.pop(best)):
                symbols, n = words[k]
                merged = _merge(symbols, best)
                if merged == symbols:
                    continue   # a stale index: the pair left this word in an earlier merge
                for pair in zip(symbols, symbols[1:]):
                    pair_counts[pair] -= n
                    changed.add(pair)
                words[k] = (merged, n)
                for pair in zip(merged, merged[1:]):
                    pair_counts[pair] += n
                    where[pair].add(k)
                    changed.add(pair)
            for pair in changed:
                if pair_counts[pair] > 0:
                    heapq.heappush(heap, (-pair_counts[pair], pair))
                else:
                    del pair_counts[pair]
        return cls(merges, alphabet, specials, lower)

    def tokenize(self, text: str) -> list:
        """The subword pieces of `text` (a word's last piece ends in `</w>`)."""
        pieces = []
        for word in split_words(text, self.lower):
            if word not in self._cache:
                self._cache[word] = self._bpe(word)
            pieces += self._cache[word]
        return pieces

    def _bpe(self, word: str) -> list:
        symbols = _spell(word)
        while len(symbols) > 1:
            # the earliest-learned merge present in the word goes first, as in training
            pair = min(zip(symbols, symbols[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if pair not in self.ranks:
                break
            symbols = _merge(symbols, pair)
        return symbols

    def encode(self, text: str) -> list:
        return [self.token_to_id(p) for p in self.tokenize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        text = "".join(self.id_to_token(int(i)) for i in ids)
        return text.replace(END_OF_WORD, " ").strip()

    def _state(self) -> dict:
        return {"specials": self.specials, "alphabet": self.alphabet,
                "merges": [list(m) for m in self.merges], "lower": self.lower}


def _spell(word: str) -> list:
    """"low" -> ["l", "o", "w</w>"]."""
    return [*word[:-1], word[-1] + END_OF_WORD]


def _merge(symbols: list, pair: tuple) -> list:
    """Replace every non-overlapping occurrence of `pair`, left to right, by its concatenation."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def load_tokenizer(path: "str | os.PathLike"):
    """Read a tokenizer written by `.save(path)`; a malformed file raises naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        kind = state["type"]
        if kind == "char":
            return CharTokenizer(state["tokens"], state["specials"])
        if kind == "word":
            return WordTokenizer(state["tokens"], state["specials"], state["lower"])
        if kind == "bpe":
            return BPETokenizer([tuple(m) for m in state["merges"]], state["alphabet"],
                                state["specials"], state["lower"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"load_tokenizer: {os.fspath(path)} is not a tokenizer file "
                         f"({type(e).__name__}: {e})") from None
    raise ValueError(f"load_tokenizer: {os.fspath(path)} has unknown type {kind!r}; "
                     "expected 'char', 'word' or 'bpe'")


def run_bpe_tokenizer(path: "str | os.PathLike", texts, num_merges: int, specials,
                      resume: bool = False, lower: bool = True) -> BPETokenizer:
    """A training run's BPE tokenizer: when resuming, the one saved at `path` (so a resumed run
    keeps its own vocabulary), else `BPETokenizer.train(texts, ...)`, saved to `path`."""
    if resume and os.path.exists(path):
        return load_tokenizer(path)
    tok = BPETokenizer.train(texts, num_merges=num_merges, specials=specials, lower=lower)
    tok.save(path)
    return tok
