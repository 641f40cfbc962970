"""Building blocks shared by the translation models (issue 21): a joint two-language
vocabulary, an attentional LSTM encoder-decoder with language embeddings, and word-by-word
translation through a bilingual dictionary.

Seq2Seq (Bahdanau et al. 2015 encoder, Luong et al. 2015 "general" attention):
    e_s = E[x_s] + L[src_lang],  (h_1..h_S) = W_p BiLSTM(e),                encoder, (B, S, H)
    d_t = E[y_{t-1}] + L[tgt_lang],  s_t = LSTM(d_t, s_{t-1}),  s_0 = tanh(W_0 mean_s h_s)
    a_t = softmax_s(s_t^T W_a h_s),  c_t = sum_s a_ts h_s,  o_t = tanh(W_c [s_t; c_t])
    p(y_t | y_<t, x) = softmax(W_o o_t)
One embedding table covers both languages' words (the ids are disjoint), and the target
language's embedding L[tgt_lang] tells the shared decoder which language to write, as the
language-specific start symbol of Lample et al. (2018, sec. 2.1) does.
"""
from __future__ import annotations

import collections
import os
from typing import Sequence

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Categorical
from tinylatent.tensor import Tensor

__all__ = ["JointVocabulary", "Seq2Seq", "WordByWord", "SPECIALS", "corpus_bleu",
           "muse_dictionary", "bilingual_dictionary", "save_dictionary", "load_dictionary"]

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")      # ids 0..3 in every config below
PAD, BOS, EOS, UNK = range(4)


class JointVocabulary:
    """Specials, then the `size` most frequent words of language 0, then of language 1.

    Ids are disjoint between the languages (a word in both gets one id per language), so
    one embedding table serves a shared encoder and decoder; `lang` (V,) is each id's
    language (-1 for the specials)."""

    def __init__(self, corpora: Sequence[Sequence[Sequence[str]]], size: int = 2000):
        self.itos, self.lang, self.stoi = list(SPECIALS), [-1] * len(SPECIALS), []
        for k, corpus in enumerate(corpora):
            counts = collections.Counter(w for s in corpus for w in s)
            words = sorted(counts, key=lambda w: (-counts[w], w))[:size]
            self.stoi.append({w: len(self.itos) + i for i, w in enumerate(words)})
            self.itos += words
            self.lang += [k] * len(words)
        self.lang = np.array(self.lang)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, sentences: Sequence[Sequence[str]], lang: int, max_length: int):
        """(N, max_length + 1) ids: the words (unknown ones as <unk>), <eos>, then <pad>.
        Sentences longer than max_length are an error: filter them first."""
        out = np.full((len(sentences), max_length + 1), PAD, dtype=np.int64)
        for i, s in enumerate(sentences):
            if len(s) > max_length:
                raise ValueError(f"JointVocabulary.encode: sentence {i} has {len(s)} tokens "
                                 f"> max_length={max_length}")
            out[i, :len(s)] = [self.stoi[lang].get(w, UNK) for w in s]
            out[i, len(s)] = EOS
        return out

    def decode(self, ids) -> list:
        """Token lists from (N, T) ids, each cut at its first <eos> (pads dropped)."""
        ids = ids.numpy() if isinstance(ids, Tensor) else np.asarray(ids)
        return [[self.itos[i] for i in row[:_length(row)] if i != PAD] for row in ids]


def _length(row) -> int:
    """Tokens before the first <eos> (all of them if none)."""
    hits = np.flatnonzero(np.asarray(row) == EOS)
    return int(hits[0]) if len(hits) else len(row)


class WordByWord:
    """Translation word by word through `dictionary` (language-0 word -> language-1 word),
    e.g. the one `MUSE.induce_dictionary` returns; the reverse direction uses the inverse
    (a language-1 word reached by several words maps to the first, in vocabulary order).
    Words outside the dictionary or the target vocabulary become <unk>; order is kept."""

    def __init__(self, dictionary: dict, vocab: JointVocabulary):
        self.table = np.arange(len(vocab))                  # specials map to themselves
        self.table[len(SPECIALS):] = UNK
        for a, i in vocab.stoi[0].items():
            j = vocab.stoi[1].get(dictionary.get(a), UNK)
            self.table[i] = j
            if j != UNK and self.table[j] == UNK:
                self.table[j] = i

    def __call__(self, x, src_lang=None, tgt_lang=None) -> Tensor:
        """x (B, T) ids in one language -> (B, T) ids in the other."""
        x = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
        return tl.tensor(self.table[x])


class Seq2Seq(nn.Module):
    """The attentional encoder-decoder above: V = vocab, E = embedding, H = hidden sizes."""

    def __init__(self, V: int, E: int, H: int, num_languages: int = 2):
        super().__init__()
        self.vocab_size = V
        self.embedding = nn.Embedding(V, E, padding_idx=PAD)
        self.language = nn.Embedding(num_languages, E)
        self.encoder = nn.LSTM(E, H, batch_first=True, bidirectional=True)
        self.enc_proj = nn.Linear(2 * H, H)
        self.init_state = nn.Linear(H, H)
        self.decoder = nn.LSTM(E, H, batch_first=True)
        self.attn = nn.Linear(H, H, bias=False)
        self.combine = nn.Linear(2 * H, H)
        self.output = nn.Linear(H, V)

    def _embed(self, x: Tensor, lang: int) -> Tensor:
        return self.embedding(x) + self.language(tl.tensor([lang]))  # (B, T, E)

    def encode_states(self, x: Tensor, lang: int):
        """(h (B, S, H), mask (B, S) 1 on real tokens and <eos>)."""
        mask = (x != PAD).float()
        out, _ = self.encoder(self._embed(x, lang))                 # (B, S, 2H)
        return self.enc_proj(out), mask

    def encode(self, x: Tensor, lang: int = 0) -> Tensor:
        """The sentence code: mean of the encoder states over real tokens, (B, H)."""
        h, mask = self.encode_states(x, lang)
        return (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)

    def _start(self, h, mask):
        """(s_0, c_0) of the decoder: s_0 = tanh(W_0 mean_s h_s), each (1, B, H)."""
        mean = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)  # (B, H)
        s0 = self.init_state(mean).tanh().unsqueeze(0)
        return s0, tl.zeros_like(s0)

    def _attend(self, s, h, mask):
        """o_t for decoder states s (B, T, H) over encoder states h (B, S, H)."""
        scores = self.attn(s) @ h.transpose(1, 2)                   # (B, T, S)
        scores = scores.masked_fill(mask.unsqueeze(1) == 0, -1e9)
        ctx = scores.softmax(-1) @ h                                # (B, T, H)
        return self.combine(tl.cat([s, ctx], axis=-1)).tanh()

    def logits(self, src: Tensor, src_lang: int, tgt: Tensor, tgt_lang: int) -> Tensor:
        """Teacher-forced logits (B, T, V) of tgt (B, T) given src (B, S)."""
        h, mask = self.encode_states(src, src_lang)
        bos = tl.full((tgt.shape[0], 1), BOS, dtype=tgt.dtype)
        inputs = tl.cat([bos, tgt[:, :-1]], axis=1)                 # (B, T) shifted right
        s, _ = self.decoder(self._embed(inputs, tgt_lang), self._start(h, mask))
        return self.output(self._attend(s, h, mask))

    def log_prob(self, src, src_lang, tgt, tgt_lang) -> Tensor:
        """log p(tgt | src) per sentence, (B,): the sum over tgt's tokens up to its <eos>."""
        lp = Categorical(logits=self.logits(src, src_lang, tgt, tgt_lang)).log_prob(tgt)
        return (lp * (tgt != PAD).float()).sum(1)

    def nll(self, src, src_lang, tgt, tgt_lang) -> Tensor:
        """Cross-entropy per target token (padding masked), the training loss, scalar."""
        mask = (tgt != PAD).float()
        return -self.log_prob(src, src_lang, tgt, tgt_lang).sum() / mask.sum()

    def generate(self, src: Tensor, src_lang: int, tgt_lang: int, max_length: int,
                 greedy: bool = True, generator=None, temperature: float = 1.0) -> Tensor:
        """Translations (B, <= max_length) without a graph: argmax (or sampled) tokens one
        step at a time; a sentence stops at its <eos> (pads after it), and decoding stops
        once every sentence has ended."""
        with tl.no_grad():
            h, mask = self.encode_states(src, src_lang)
            state = self._start(h, mask)
            B, V = src.shape[0], self.vocab_size
            never = tl.tensor(np.where(np.isin(np.arange(V), (PAD, BOS)), -1e9,
                                             0.0).astype(np.float32))
            tok = np.full((B, 1), BOS, dtype=np.int64)
            done = np.zeros(B, dtype=bool)
            out = []
            for _ in range(max_length):
                s, state = self.decoder(self._embed(tl.tensor(tok), tgt_lang), state)
                logits = self.output(self._attend(s, h, mask))[:, -1]  # (B, V)
                logits = logits + never                   # no <pad> / <bos> emitted
                if greedy:
                    nxt = logits.argmax(-1).numpy()
                else:
                    nxt = Categorical(logits=logits / temperature).sample(
                        generator=generator).numpy()
                nxt = np.where(done, PAD, nxt)
                out.append(nxt)
                done |= nxt == EOS
                tok = nxt.reshape(B, 1).astype(np.int64)
                if done.all():
                    break
        return tl.tensor(np.stack(out, 1).astype(np.int64))         # (B, steps)


def corpus_bleu(translate, vocab: JointVocabulary, pairs, src_lang: int, batch_size=100,
                max_n: int = 4) -> tuple:
    """(BLEU, hypotheses) of `translate` (ids (B, S) -> ids (B, T)) on parallel `pairs`
    [(A tokens, B tokens)] from language `src_lang` into the other, against the full
    reference tokens (words outside the vocabulary count as misses, never as matches)."""
    src = [p[src_lang] for p in pairs]
    refs = [p[1 - src_lang] for p in pairs]
    length = max(len(s) for s in src)
    hyps = []
    for i in range(0, len(src), batch_size):
        x = vocab.encode(src[i:i + batch_size], src_lang, length)
        hyps += vocab.decode(translate(tl.tensor(x)))
    return tl.eval.bleu(hyps, refs, max_n=max_n), hyps


def muse_dictionary(a_sentences, b_sentences, latent_features: int = 100, epochs: int = 5,
                    min_count: int = 5, seed: int = 0, progress=None, **muse_overrides):
    """An A -> B dictionary induced without any parallel data (Lample et al. 2018, sec. 2.4:
    the word-by-word translation of iteration 0): two skip-gram spaces trained apart (seeds
    seed + 1, seed + 2) on the monolingual sentences, aligned by MUSE (Conneau et al. 2018:
    adversarial map, Procrustes refinement), then each A word's CSLS translation.
    Returns (dictionary, the fitted MUSE)."""
    from .muse import MUSE
    from .word2vec import Word2Vec
    spaces = []
    for k, sentences in enumerate((a_sentences, b_sentences)):
        tl.manual_seed(seed + 1 + k)
        w2v = Word2Vec.from_sentences(sentences, min_count=min_count,
                                      latent_features=latent_features)
        w2v.seed = seed + 1 + k                         # the SGD kernel's random state
        w2v.fit(sentences, epochs=epochs)
        spaces.append((w2v.vectors(normalized=False), list(w2v.itos)))
    tl.manual_seed(seed)
    muse = MUSE(in_features=latent_features, seed=seed, **muse_overrides)
    muse.set_embeddings(spaces[0][0], spaces[1][0], spaces[0][1], spaces[1][1])
    muse.fit(progress=progress)
    return muse.induce_dictionary(), muse


def save_dictionary(dictionary: dict, path) -> None:
    """One "source<TAB>target" line per entry (UTF-8)."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{a}\t{b}\n" for a, b in dictionary.items())


def load_dictionary(path) -> dict:
    """The {source: target} of a "source<TAB>target" file (other lines skipped)."""
    with open(path, encoding="utf-8") as f:
        return dict(line.rstrip("\n").split("\t")[:2] for line in f if "\t" in line)


def bilingual_dictionary(name: str, pair, cache) -> dict:
    """The A -> B dictionary of a cipher pair: "cipher" (the hidden truth: development and
    upper bounds only), "muse" (`muse_dictionary`: adversarial MUSE), "similarity"
    (`muse_dictionary` with MUSE's init="similarity", Artetxe et al. 2018, on 15-epoch
    spaces as examples/muse_kjv.py), each computed once and kept in the file `cache` (its
    precision against the truth printed), or a path to a TSV file."""
    if name == "cipher":
        return dict(pair.cipher.dictionary)
    if name in ("muse", "similarity"):
        if not os.path.exists(cache):
            options = {} if name == "muse" else dict(
                init="similarity", normalize="renorm,center,renorm", epochs=15)
            found, muse = muse_dictionary(pair.a_train, pair.b_train, **options)
            print(f"{name} dictionary against the hidden one:",
                  muse.evaluate(pair.cipher.dictionary, n_words=2000), flush=True)
            save_dictionary(found, cache)
        name = cache
    return load_dictionary(name)
