"""Text data: the King James Bible and "Botchan" (both embedded), and datasets built on them.

    verses = load_kjv()                              # 31,102 Verse(book, chapter, verse, text)
    tok = WordTokenizer.fit((v.text for v in verses), min_count=3, specials=("<unk>", "<eos>"))
    stream = LanguageModelStream(encode_lines(tok, [v.text for v in verses]), batch_size=20)
    for data, target in stream:                      # (bptt, 20) int64 each, target = data + 1
        ...

Where the text comes from: `path` if given (a file in the embedded format), else the copy
embedded in tinylatent (checked against its SHA-256); the loader says once which it used.
Both texts are public domain; see embedded/README.md for sources and licences.
The datasets follow the papers that use them: BPTT batching as pytorch/examples
word_language_model, next-sentence pairs as BERT (Devlin et al. 2019, Sec. 3.1: 50% the
true next sentence, 50% a random one), and the inverse cloze task of Lee, Chang & Toutanova
2019 (Sec. 5: the query sentence is removed from its context 90% of the time).
"""
from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from ..tensor import Tensor
from .dataset import Dataset, TensorDataset
from .mnist import _announce
from .transforms import as_numpy_generator

__all__ = ["Verse", "load_kjv", "kjv_books", "kjv_chapter_split", "kjv_testament",
           "load_botchan", "split_sentences",
           "encode_lines", "pad_sequences", "LanguageModelStream", "LMCorpus",
           "language_model_corpus", "VerseDataset",
           "NextSentencePairs", "NextSpanPairs", "InverseClozePairs", "TextFormatError",
           "EMBEDDED_TEXT"]

EMBEDDED = Path(__file__).parent / "embedded"
EMBEDDED_TEXT = {"kjv": EMBEDDED / "kjv.tsv.xz", "botchan": EMBEDDED / "botchan.txt.xz"}
# SHA-256 of the embedded files, as printed by scripts/make_embedded_text.py
SHA256 = {"kjv": "5bab1554453228b9ae04032f4a075effd4a9c79c61c08e9f929ded7181e4c8fd",
          "botchan": "4ce424c062fefbd68d3a377d3ff7f427327bddb2c84fe9903ffaf8902e1ab549"}


# the 27 books of the New Testament, as the embedded KJV names them
NEW_TESTAMENT = ("Matthew", "Mark", "Luke", "John", "Acts", "Romans", "1 Corinthians",
                 "2 Corinthians", "Galatians", "Ephesians", "Philippians", "Colossians",
                 "1 Thessalonians", "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus",
                 "Philemon", "Hebrews", "James", "1 Peter", "2 Peter", "1 John", "2 John",
                 "3 John", "Jude", "Revelation")


class TextFormatError(ValueError):
    """A text file that is corrupt, truncated or not in the expected format."""


class Verse(NamedTuple):
    book: str
    chapter: int
    verse: int
    text: str


def _read_text(path: Path, expected_sha256: str | None) -> str:
    """Bytes of `path` (xz or gzip decompressed by suffix) as UTF-8, after the checksum."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise FileNotFoundError(f"cannot read {path}: {e}") from None
    if expected_sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected_sha256:
            raise TextFormatError(f"{path}: SHA-256 {digest} != expected {expected_sha256} "
                                  "(corrupt or modified file; reinstall tinylatent)")
    try:
        if path.suffix == ".xz":
            raw = lzma.decompress(raw)
        elif path.suffix == ".gz":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8")
    except (lzma.LZMAError, OSError, EOFError, UnicodeDecodeError) as e:
        raise TextFormatError(f"{path}: corrupt or truncated ({type(e).__name__}: {e})") from None


def _source(name: str, path) -> tuple:
    if path is not None:
        return Path(path).expanduser(), None, f"{name} from {path}"
    return EMBEDDED_TEXT[name], SHA256[name], f"{name} from the embedded copy (public domain)"


def load_kjv(path: "str | os.PathLike | None" = None) -> list:
    """The King James Bible as 31,102 `Verse(book, chapter, verse, text)` in canonical order.

    path: a file in the embedded format (UTF-8 lines `book<TAB>chapter<TAB>verse<TAB>text`,
    optionally .xz/.gz; scripts/make_embedded_text.py writes it), else the embedded copy.
    """
    file, sha, message = _source("kjv", path)
    verses = []
    for n, line in enumerate(_read_text(file, sha).splitlines(), 1):
        parts = line.split("\t")
        if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
            raise TextFormatError(f"{file}: line {n} is not 'book<TAB>chapter<TAB>verse<TAB>"
                                  f"text': {line[:60]!r}")
        verses.append(Verse(parts[0], int(parts[1]), int(parts[2]), parts[3]))
    if not verses:
        raise TextFormatError(f"{file}: no verses")
    _announce("kjv", str(file), message)
    return verses


def kjv_books(verses: Sequence[Verse]) -> list:
    """Book names in the order they first appear (66 for the whole Bible)."""
    return list(dict.fromkeys(v.book for v in verses))


def kjv_chapter_split(verses: Sequence[Verse], every: int = 10,
                      chapters: int | None = None) -> tuple:
    """(train, test) lists of chapters (each a list of its verses): chapter k is held out
    when k % every == every - 1. chapters: keep only N chapters spread evenly (both
    testaments stay), for quick runs."""
    docs: dict = {}
    for v in verses:
        docs.setdefault((v.book, v.chapter), []).append(v)
    docs = list(docs.values())
    if chapters:
        docs = docs[::max(1, len(docs) // chapters)][:chapters]
    return ([d for i, d in enumerate(docs) if i % every != every - 1],
            [d for i, d in enumerate(docs) if i % every == every - 1])


def kjv_testament(verses: Sequence[Verse]) -> np.ndarray:
    """0 for the Old Testament (Genesis to Malachi), 1 for the New (Matthew on), int64 (N,)."""
    new = set(NEW_TESTAMENT)
    return np.asarray([int(v.book in new) for v in verses], dtype=np.int64)


def load_botchan(path: "str | os.PathLike | None" = None) -> str:
    """The text of "Botchan" (Natsume Soseki, tr. Morri), without the Gutenberg header/licence.

    Line breaks are kept ("\n"); `split_sentences` joins lines into running text.
    path: a plain/xz/gz copy of Project Gutenberg eBook #8868, else the embedded copy.
    """
    file, sha, message = _source("botchan", path)
    text = _read_text(file, sha).lstrip("\ufeff").replace("\r\n", "\n")
    start = re.search(r"\*\*\* ?START OF TH(IS|E) PROJECT GUTENBERG EBOOK[^\n]*\n", text)
    end = re.search(r"\*\*\* ?END OF TH(IS|E) PROJECT GUTENBERG EBOOK", text)
    if start is None or end is None or end.start() < start.end():
        raise TextFormatError(f"{file}: no '*** START/END OF THIS PROJECT GUTENBERG EBOOK' "
                              "markers; is this the Gutenberg text of Botchan?")
    _announce("botchan", str(file), message)
    body = text[start.end():end.start()].strip()
    if body.startswith("Produced by"):           # the e-text's credits line
        body = body.split("\n", 1)[1]
    if body.splitlines()[-1].startswith("End of Project Gutenberg"):
        body = body.rsplit("\n", 1)[0]
    return body.strip()


# A sentence ends at . ! or ? (and closing quotes/brackets), followed by space and then an
# upper-case letter or an opening quote; not after Mr. Mrs. Dr. St. or an initial ("J. R.").
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!\bMr\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bSt\.)"
                           r"(?<!\b[A-Z]\.)[\"')\]]*\s+(?=[\"'(\[]?[A-Z])")


def split_sentences(text: str) -> list:
    """Sentences of running text (line breaks become spaces); empty pieces are dropped."""
    text = " ".join(text.split())
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        # keep closing quotes with the sentence they close
        end = m.start() + len(m.group(0).rstrip())
        out.append(text[start:end].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def encode_lines(tokenizer, lines: Sequence[str], eos: str | None = "<eos>") -> np.ndarray:
    """One int64 id stream: each line encoded, followed by `eos` if the tokenizer has it."""
    eos_id = tokenizer.stoi.get(eos) if eos is not None else None
    ids = []
    for line in lines:
        ids += tokenizer.encode(line)
        if eos_id is not None:
            ids.append(eos_id)
    return np.asarray(ids, dtype=np.int64)


def pad_sequences(seqs: Sequence[Sequence[int]], max_len: int, pad_id: int = 0) -> tuple:
    """(ids (N, max_len) int64, lengths (N,) int64): truncated to max_len, padded with pad_id."""
    if max_len < 1:
        raise ValueError(f"pad_sequences: max_len must be >= 1, got {max_len}")
    ids = np.full((len(seqs), max_len), pad_id, dtype=np.int64)
    lengths = np.zeros(len(seqs), dtype=np.int64)
    for i, s in enumerate(seqs):
        s = list(s)[:max_len]
        ids[i, :len(s)] = s
        lengths[i] = len(s)
    return ids, lengths


class LanguageModelStream:
    """A token stream cut into `batch_size` columns and read in windows of `bptt` steps.

    As pytorch/examples word_language_model (`batchify`, `get_batch`): the stream of N ids is
    trimmed to T = N // batch_size rows and laid out as data (T, B), column b holding ids
    [b*T, (b+1)*T); `get_batch(i)` returns rows [i, i+L) as input and rows [i+1, i+1+L) as
    target, L = min(bptt, T - 1 - i), both (L, B) int64 Tensors. Hidden state carries over
    from one window to the next within a column (truncated backpropagation through time).
    """

    def __init__(self, ids, batch_size: int, bptt: int = 35):
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if batch_size < 1 or bptt < 1:
            raise ValueError(f"LanguageModelStream: batch_size and bptt must be >= 1, got "
                             f"{batch_size} and {bptt}")
        rows = len(ids) // batch_size
        if rows < 2:
            raise ValueError(f"LanguageModelStream: {len(ids)} ids are too few for "
                             f"batch_size={batch_size} (need at least 2 rows)")
        self.data = ids[:rows * batch_size].reshape(batch_size, rows).T.copy()  # (T, B)
        self.batch_size, self.bptt = batch_size, bptt

    def __len__(self) -> int:
        return -(-(len(self.data) - 1) // self.bptt)

    def get_batch(self, i: int) -> tuple:
        if not 0 <= i < len(self.data) - 1:
            raise IndexError(f"LanguageModelStream.get_batch: i={i} outside [0, "
                             f"{len(self.data) - 1})")
        seq_len = min(self.bptt, len(self.data) - 1 - i)
        data = self.data[i:i + seq_len]                # (L, B)
        target = self.data[i + 1:i + 1 + seq_len]      # (L, B), the next token of each
        return Tensor._make(data), Tensor._make(target)

    def __iter__(self):
        for i in range(0, len(self.data) - 1, self.bptt):
            yield self.get_batch(i)


class LMCorpus(NamedTuple):
    train: np.ndarray      # int64 id streams
    valid: np.ndarray
    test: np.ndarray
    tokenizer: object


def language_model_corpus(corpus: str = "kjv", level: str = "word", min_count: int = 3,
                          path=None) -> LMCorpus:
    """Train / valid / test id streams of a corpus for language modelling.

    kjv: whole chapters (1,189) go to one split: chapter k to valid if k % 20 == 18, to test
    if k % 20 == 19, else to train (about 90/5/5 of the text, every part of the Bible in each
    split); a verse is a line. botchan: the running text cut 90/5/5 in order (as nanoGPT
    cuts Shakespeare), a sentence a line at word level, the raw text (line breaks kept) at
    char level. Word level: `WordTokenizer` of the words seen `min_count` times in train,
    `<eos>` after each line; char level: `CharTokenizer` of train's characters. Tokenizers
    are fitted on train only, so valid/test words never seen there are `<unk>`.
    """
    from .tokenizers import CharTokenizer, WordTokenizer
    if corpus not in ("kjv", "botchan") or level not in ("word", "char"):
        raise ValueError(f"language_model_corpus: corpus must be 'kjv' or 'botchan' and level "
                         f"'word' or 'char', got {corpus!r}, {level!r}")
    if corpus == "kjv":
        verses = load_kjv(path)
        chapter = {key: k for k, key in enumerate(dict.fromkeys((v.book, v.chapter)
                                                                 for v in verses))}
        parts = [[], [], []]
        for v in verses:
            k = chapter[(v.book, v.chapter)] % 20
            parts[1 if k == 18 else 2 if k == 19 else 0].append(v.text)
    else:
        text = load_botchan(path)
        if level == "word":
            sentences = split_sentences(text)
            a, b = int(0.9 * len(sentences)), int(0.95 * len(sentences))
            parts = [sentences[:a], sentences[a:b], sentences[b:]]
        else:
            a, b = int(0.9 * len(text)), int(0.95 * len(text))
            parts = [[text[:a]], [text[a:b]], [text[b:]]]
    if level == "word":
        tok = WordTokenizer.fit(parts[0], min_count=min_count, specials=("<unk>", "<eos>"))
        ids = [encode_lines(tok, p) for p in parts]
    else:
        joined = ["\n".join(p) for p in parts]       # a verse a line; Botchan as it is
        tok = CharTokenizer.fit(joined[0])
        ids = [np.asarray(tok.encode(t), dtype=np.int64) for t in joined]
    return LMCorpus(*ids, tok)


class VerseDataset(TensorDataset):
    """Verses (or any labelled sentences) as padded ids with labels.

    Items: (ids (max_len,) int64, length, book index, chapter) for the KJV; `texts`, `books`
    keep the raw text and the book names. Book indices follow `kjv_books(verses)`.
    """

    def __init__(self, verses: Sequence[Verse], tokenizer, max_len: int = 64,
                 pad_id: int | None = None):
        self.texts = [v.text for v in verses]
        self.books = kjv_books(verses)
        pad = tokenizer.stoi.get("<pad>", tokenizer.unk_id) if pad_id is None else pad_id
        ids, lengths = pad_sequences([tokenizer.encode(t) for t in self.texts], max_len, pad)
        book_of = {b: i for i, b in enumerate(self.books)}
        super().__init__(ids, lengths, np.asarray([book_of[v.book] for v in verses]),
                         np.asarray([v.chapter for v in verses], dtype=np.int64))


class NextSentencePairs(Dataset):
    """(first, second, is_next) text triples for next-sentence prediction (BERT, Sec. 3.1).

    documents: sentences grouped by document (e.g. the verses of each KJV chapter). For each
    sentence with a successor in its document, `second` is that successor with probability
    `p_next` (is_next = 1) and otherwise a sentence drawn uniformly from another document
    (is_next = 0). Drawn once from `generator`, so a seed fixes the dataset.
    """

    def __init__(self, documents: Sequence[Sequence[str]], p_next: float = 0.5,
                 generator=None):
        docs = [list(d) for d in documents]
        if len(docs) < 2:
            raise ValueError("NextSentencePairs: need at least two documents for random pairs")
        rng = as_numpy_generator(generator)
        flat = [(d, s) for d, doc in enumerate(docs) for s in doc]
        self.pairs = []
        for d, doc in enumerate(docs):
            for k in range(len(doc) - 1):
                if rng.random() < p_next:
                    self.pairs.append((doc[k], doc[k + 1], 1))
                    continue
                while True:  # a sentence of another document, so the label is never wrong
                    other_doc, other = flat[rng.integers(len(flat))]
                    if other_doc != d:
                        break
                self.pairs.append((doc[k], other, 0))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple:
        return self.pairs[index]

    def encode(self, tokenizer, max_len: int = 64, pad_id: int | None = None) -> TensorDataset:
        """(first ids, first length, second ids, second length, is_next) as a TensorDataset."""
        pad = tokenizer.stoi.get("<pad>", tokenizer.unk_id) if pad_id is None else pad_id
        a = pad_sequences([tokenizer.encode(p[0]) for p in self.pairs], max_len, pad)
        b = pad_sequences([tokenizer.encode(p[1]) for p in self.pairs], max_len, pad)
        return TensorDataset(*a, *b, np.asarray([p[2] for p in self.pairs], dtype=np.int64))


class NextSpanPairs(Dataset):
    """(first, second, is_next) spans of consecutive sentences for next-sentence prediction
    as BERT pre-trains it (Devlin et al. 2019, Sec. 3.1 and Appendix A.2): a "sentence" is
    "an arbitrary span of contiguous text", and A and B together fill a budget of
    `max_tokens` tokens (BERT's max length less [CLS] and two [SEP]).

    Each document is cut, from its start, into chunks: the most consecutive sentences whose
    token counts (`len(tokenizer.encode(s))`) sum to at most `max_tokens`, but at least two
    (a lone last sentence of a document, with nothing to follow it, starts no pair). A chunk
    is split at a uniform point: A = its first part; with probability `p_next` B = the rest
    (is_next = 1, B starts with the sentence that follows A's last), otherwise B = the most
    consecutive sentences, at least one, that fit in what A leaves of the budget, from a
    uniform start in a uniformly drawn OTHER document (is_next = 0, so a label is never
    wrong). As google-research/bert create_pretraining_data.py, except that the next chunk
    starts after the whole chunk either way (the reference puts a NotNext chunk's unused
    sentences back, which makes NotNext more frequent than the paper's 50%) and no 10% of
    shorter budgets. A span's sentences are joined by `joiner`; a tokenizer that encodes word
    by word (all of tl.data's) gives the joined span the sum of its sentences' counts, so
    A + B exceeds the budget only where two sentences (or one of B) alone do, and
    `encode_pair` truncates. Drawn once from `generator`, so a seed fixes the dataset;
    `spans` holds ((doc, start, end) of A, (doc, start, end) of B) for each pair.
    """

    def __init__(self, documents: Sequence[Sequence[str]], tokenizer, max_tokens: int,
                 p_next: float = 0.5, generator=None, joiner: str = " "):
        docs = [list(d) for d in documents]
        if sum(len(d) > 0 for d in docs) < 2 or max_tokens < 2 or not 0.0 <= p_next <= 1.0:
            raise ValueError(f"NextSpanPairs: need two non-empty documents, max_tokens >= 2 "
                             f"and p_next in [0, 1], got {sum(len(d) > 0 for d in docs)}, "
                             f"{max_tokens}, {p_next}")
        rng = as_numpy_generator(generator)
        lengths = [[len(tokenizer.encode(s)) for s in doc] for doc in docs]
        self.max_tokens, self.pairs, self.spans = max_tokens, [], []
        for d, doc in enumerate(docs):
            i = 0
            while i + 1 < len(doc):
                end = max(i + 2, self._fill(lengths[d], i, max_tokens))   # chunk doc[i:end]
                a_end = int(rng.integers(i + 1, end))
                if rng.random() < p_next:
                    b = (d, a_end, end)
                else:
                    while True:   # another (non-empty) document, so the label is never wrong
                        other = int(rng.integers(len(docs)))
                        if other != d and docs[other]:
                            break
                    start = int(rng.integers(len(docs[other])))
                    budget = max_tokens - sum(lengths[d][i:a_end])
                    b = (other, start, self._fill(lengths[other], start, budget))
                self.spans.append(((d, i, a_end), b))
                self.pairs.append((joiner.join(doc[i:a_end]),
                                   joiner.join(docs[b[0]][b[1]:b[2]]), int(b[0] == d)))
                i = end

    @staticmethod
    def _fill(lengths: Sequence[int], start: int, budget: int) -> int:
        """End of the most consecutive sentences from `start` within `budget` (>= start+1)."""
        end, total = start + 1, lengths[start]
        while end < len(lengths) and total + lengths[end] <= budget:
            total += lengths[end]
            end += 1
        return end

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple:
        return self.pairs[index]


class InverseClozePairs(Dataset):
    """(sentence, context, kept) for the inverse cloze task (Lee, Chang & Toutanova 2019).

    For sentence i of a document, the context is the sentences i-k..i+k (k = `context_size`,
    clipped at the document's ends). With probability `p_remove` (0.9 in the paper, Sec. 5)
    sentence i is removed from its context, so the model must learn semantics, not just
    matching words; otherwise it stays (kept = 1), so it also learns word matching.
    Documents with one sentence have no context and are skipped.
    """

    def __init__(self, documents: Sequence[Sequence[str]], context_size: int = 2,
                 p_remove: float = 0.9, generator=None):
        if context_size < 1 or not 0.0 <= p_remove <= 1.0:
            raise ValueError(f"InverseClozePairs: need context_size >= 1 and p_remove in "
                             f"[0, 1], got {context_size} and {p_remove}")
        rng = as_numpy_generator(generator)
        self.items = []
        for doc in documents:
            doc = list(doc)
            if len(doc) < 2:
                continue
            for i, sentence in enumerate(doc):
                lo, hi = max(0, i - context_size), min(len(doc), i + context_size + 1)
                kept = int(rng.random() >= p_remove)
                context = doc[lo:hi] if kept else doc[lo:i] + doc[i + 1:hi]
                self.items.append((sentence, " ".join(context), kept))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple:
        return self.items[index]
