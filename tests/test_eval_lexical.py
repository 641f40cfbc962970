"""tl.eval.bm25_scores and tl.eval.tfidf_scores (the ICT baselines) against hand-worked
values on a three-passage corpus."""
import numpy as np
import pytest

import tinylatent as tl


def test_bm25_matches_the_okapi_formula():
    passages = ["a b", "a c c", "d"]                          # lengths 2, 3, 1: mean 2
    s = tl.eval.bm25_scores(["c", "a d", "zzz"], passages)
    k1, b = 1.2, 0.75
    idf_c = np.log(1 + (3 - 1 + 0.5) / (1 + 0.5))             # df(c) = 1
    idf_a = np.log(1 + (3 - 2 + 0.5) / (2 + 0.5))             # df(a) = 2
    idf_d = idf_c

    def term(idf, tf, length):
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / 2))
    expected = np.array([[0, term(idf_c, 2, 3), 0],
                         [term(idf_a, 1, 2), term(idf_a, 1, 3), term(idf_d, 1, 1)],
                         [0, 0, 0]])                            # unseen words score 0
    np.testing.assert_allclose(s, expected, rtol=1e-12)
    # a repeated query word counts once (distinct words, as Robertson et al.'s query model)
    np.testing.assert_allclose(tl.eval.bm25_scores(["c c"], passages), s[:1])


def test_tfidf_is_a_cosine_with_passage_idf():
    passages = ["a b", "a c c", "d"]
    s = tl.eval.tfidf_scores(passages + ["A, b"], passages)   # lower case; "," is a word
    np.testing.assert_allclose(np.diag(s[:3]), 1.0, rtol=1e-12)
    assert s[0, 2] == 0 and s[2, 0] == 0
    # idf: "a" in two of three passages log(3/2); "b", "c" in one log 3; tf weight log(1 + tf)
    ia, ib = np.log(1.5), np.log(3.0)
    assert s[3, 0] == pytest.approx(1.0)                       # the unseen "," adds nothing
    q = np.log(2) * np.array([ia, ib, 0.0])                    # "a b ," over (a, b, c)
    p = np.array([np.log(2) * ia, 0.0, np.log(3) * ib])        # "a c c"
    assert s[3, 1] == pytest.approx(q @ p / (np.linalg.norm(q) * np.linalg.norm(p)))
