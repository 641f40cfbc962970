"""tl.eval.bleu (Papineni et al. 2002) on cases worked by hand: clipped n-gram precisions,
their geometric mean, the brevity penalty, corpus-level sums and smoothing."""
import math

import pytest

import tinylatent as tl

HYP, REF = "the cat sat on the mat", "the cat is on the mat"


def test_clipped_precisions_of_one_sentence():
    # 1-grams: the x2 (ref has 2), cat, sat (0), on, mat -> 5/6
    # 2-grams: the cat, cat sat, sat on, on the, the mat; ref has 3 of them -> 3/5
    # 3-grams: only "on the mat" -> 1/4; 4-grams: none of 3 -> 0/3
    matches, totals, c, r = tl.eval.ngram_statistics([HYP], [REF])
    assert (matches, totals, c, r) == ([5, 3, 1, 0], [6, 5, 4, 3], 6, 6)
    assert tl.eval.bleu([HYP], [REF]) == 0.0                  # p_4 = 0, no smoothing
    # floor: p_4 = 0.1 / 3; BP = 1 (c = r); (5/6 * 3/5 * 1/4 * 1/30) ** (1/4) = (1/240) ** .25
    assert tl.eval.bleu([HYP], [REF], smooth="floor") == pytest.approx(100 * 240 ** -0.25)
    # add-one for n >= 2: 5/6 * 4/6 * 2/5 * 1/4 = 1/18
    assert tl.eval.bleu([HYP], [REF], smooth="add-one") == pytest.approx(100 * 18 ** -0.25)
    assert tl.eval.bleu([HYP], [REF], max_n=2) == pytest.approx(100 * math.sqrt(5 / 6 * 3 / 5))


def test_clipping_and_brevity_penalty():
    # Papineni et al.'s sec. 2.1 example: "the" x7 is clipped to the reference's 2 -> 2/7
    assert tl.eval.bleu(["the " * 7], [REF], max_n=1) == pytest.approx(100 * 2 / 7)
    # too short: c = 2, r = 6, BP = exp(1 - 6/2); both precisions 1
    assert tl.eval.bleu(["the cat"], [REF], max_n=2) == pytest.approx(100 * math.exp(-2))
    assert tl.eval.bleu([REF], [REF]) == pytest.approx(100.0)
    assert tl.eval.bleu([[]], [REF]) == 0.0


def test_corpus_bleu_sums_counts_before_dividing():
    # p_1 = (2 + 1) / 4, p_2 = (1 + 0) / 2; a mean of sentence BLEUs would give (100 + 0) / 2
    hyps, refs = [["a", "b"], ["c", "d"]], [["a", "b"], ["c", "e"]]
    assert tl.eval.bleu(hyps, refs, max_n=2) == pytest.approx(100 * math.sqrt(3 / 4 * 1 / 2))


def test_several_references_clip_by_the_max_and_take_the_closest_length():
    # "the the cat": "the" clipped to max(1, 2) = 2 -> p_1 = 3/3; lengths 6 and 3: r = 3
    refs = [["a cat is on the mat".split(), "the the dog".split()]]
    m, t, c, r = tl.eval.ngram_statistics(["the the cat"], refs, max_n=1)
    assert (m, t, c, r) == ([3], [3], 3, 3)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        tl.eval.bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="smooth"):
        tl.eval.bleu(["a"], ["a"], smooth="exp")
    with pytest.raises(ValueError, match="max_n"):
        tl.eval.bleu(["a"], ["a"], max_n=0)
