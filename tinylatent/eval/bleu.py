"""Corpus BLEU (Papineni, Roukos, Ward & Zhu 2002, "BLEU: a method for automatic evaluation
of machine translation", sec. 2):

    p_n = sum_sentences sum_{g in n-grams(hyp)} min(count_hyp(g), max_ref count_ref(g))
          / sum_sentences (number of n-grams in hyp)                      (clipped precision)
    BP  = 1 if c > r else exp(1 - r / c)     c = total hypothesis length, r = total length
                                             of the reference closest in length to each hyp
    BLEU = BP * exp(sum_{n=1}^{N} (1/N) log p_n)          reported x 100, as sacrebleu does

Counts are summed over the corpus before dividing (corpus BLEU, not a mean of sentence
BLEUs). Sentences are token lists (or strings, split on whitespace). Smoothing for zero
counts (Chen & Cherry 2014): "none" (BLEU = 0 when some p_n = 0), "floor" (a zero numerator
becomes `epsilon`, sacrebleu's "floor"), "add-one" (numerator and denominator + 1 for
n >= 2, Lin & Och 2004).
"""
from __future__ import annotations

import collections
import math
from typing import Sequence

__all__ = ["bleu", "ngram_statistics"]


def _tokens(s, name: str) -> list:
    if isinstance(s, str):
        return s.split()
    if not isinstance(s, (list, tuple)):
        raise TypeError(f"bleu: each {name} must be a string or a list of tokens, got "
                        f"{type(s).__name__}")
    return list(s)


def _ngrams(tokens: list, n: int) -> collections.Counter:
    return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def ngram_statistics(hypotheses: Sequence, references: Sequence, max_n: int = 4):
    """(matches[n-1], totals[n-1], c, r) summed over the corpus; `references[i]` is one
    reference (a string or a token list) or several, as a list of token lists."""
    if len(hypotheses) != len(references):
        raise ValueError(f"bleu: {len(hypotheses)} hypotheses but {len(references)} "
                         "references")
    if not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"bleu: max_n must be a positive int, got {max_n!r}")
    matches, totals, c, r = [0] * max_n, [0] * max_n, 0, 0
    for hyp, refs in zip(hypotheses, references):
        hyp = _tokens(hyp, "hypothesis")
        several = isinstance(refs, (list, tuple)) and refs and isinstance(refs[0], (list, tuple))
        refs = [_tokens(x, "reference") for x in (refs if several else [refs])]
        c += len(hyp)
        # the closest reference length, the shorter on a tie (Papineni et al. sec. 2.2.2)
        r += min((abs(len(x) - len(hyp)), len(x)) for x in refs)[1]
        for n in range(1, max_n + 1):
            h = _ngrams(hyp, n)
            best = collections.Counter()
            for x in refs:
                best |= _ngrams(x, n)                       # max count over references
            matches[n - 1] += sum(min(k, best[g]) for g, k in h.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    return matches, totals, c, r


def bleu(hypotheses: Sequence, references: Sequence, max_n: int = 4, smooth: str = "none",
         epsilon: float = 0.1) -> float:
    """Corpus BLEU in [0, 100] of `hypotheses` against `references` (see the module doc)."""
    if smooth not in ("none", "floor", "add-one"):
        raise ValueError(f"bleu: smooth must be 'none', 'floor' or 'add-one', got {smooth!r}")
    matches, totals, c, r = ngram_statistics(hypotheses, references, max_n)
    if c == 0:
        return 0.0
    log_p = 0.0
    for n, (m, t) in enumerate(zip(matches, totals), 1):
        if smooth == "add-one" and n > 1:
            m, t = m + 1, t + 1
        elif smooth == "floor" and m == 0:
            m = epsilon
        if m == 0 or t == 0:
            return 0.0
        log_p += math.log(m / t) / max_n
    bp = 1.0 if c > r else math.exp(1.0 - r / c)
    return 100.0 * bp * math.exp(log_p)
