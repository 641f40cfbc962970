"""word2vec (issue 20): training throughput of tinylatent's serial Numba kernel next to
gensim's (Cython + BLAS) on the same KJV sentences with the same hyperparameters.

The figure is words per second of training (raw words, gensim's count: epochs x 789,684),
both sides on one thread (gensim workers=1; our kernel is serial). It is recorded with
`bench.record` (a value, not a PyTorch ratio): the second column holds gensim's figure,
not PyTorch's. Quality side by side (neighbour overlap, analogies) is the `long` test
tests/test_word2vec.py::test_word2vec_matches_gensim_on_the_kjv.
"""
from __future__ import annotations

import os
import time

import pytest

import tinylatent as tl
from tinylatent.models.word2vec import Word2Vec, word_sentences

gensim_models = pytest.importorskip(
    "gensim.models", reason="gensim is not installed (pip install gensim, or the bench extra)")


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_word2vec_words_per_second_next_to_gensim(bench, architecture):
    sentences = word_sentences(v.text for v in tl.data.load_kjv())
    epochs = bench.pick(quick=1, full=5)
    hp = dict(window=5, negative=5, sample=1e-3, epochs=epochs)
    tl.manual_seed(0)
    ours = Word2Vec.from_sentences(sentences, min_count=5, latent_features=100,
                                   architecture=architecture, **hp)
    # compile (or load from Numba's cache) the kernel outside the timing
    Word2Vec.from_sentences([["a", "b", "c"]] * 3, min_count=1).fit([["a", "b", "c"]])
    stats = ours.fit(sentences)

    theirs = gensim_models.Word2Vec(vector_size=100, min_count=5, hs=0, workers=1, seed=1,
                                    sg=int(architecture == "skipgram"), alpha=0.025,
                                    min_alpha=1e-4, cbow_mean=1, **hp)
    theirs.build_vocab(sentences)
    # the same vocabulary (words with equal counts may come in another order)
    assert sorted(theirs.wv.index_to_key) == sorted(ours.itos)
    start = time.perf_counter()
    theirs.train(sentences, total_examples=len(sentences), epochs=epochs)
    gensim_wps = epochs * sum(map(len, sentences)) / (time.perf_counter() - start)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    notes = (f"{architecture}: tinylatent {stats['words_per_second']:,.0f} words/s, gensim "
             f"{gensim_wps:,.0f} words/s (1 thread each; second column = gensim, not "
             f"PyTorch); measured under load: 1-min load average {load:.1f} at the end")
    print(notes)
    bench.record(f"word2vec {architecture} KJV words/s (D=100, window 5, 5 negatives, "
                 f"{epochs} epochs)", stats["words_per_second"], gensim_wps,
                 unit="words/s", group="throughput", notes=notes)
    assert stats["words_per_second"] > 0 and gensim_wps > 0
