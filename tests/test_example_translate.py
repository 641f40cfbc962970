"""examples/translate_kjv.py end to end at toy size: BLEU curves, samples, checkpoint, and an
interrupted run continued with --resume ending exactly where the straight run ends; and the
README's figures as `-m long` runs (each well over ten minutes on two shared cores)."""
import numpy as np
import pytest

import tinylatent as tl

from example_runner import load_example

pytestmark = pytest.mark.usefixtures("offline_data")

TOY = ["--dictionary", "cipher", "--vocab", "60", "--hidden", "8", "--batch-size", "4",
       "--test-verses", "6", "--eval-every", "2", "--iteration-steps", "2",
       "--parallel", "20"]


@pytest.fixture(scope="module")
def example():
    return load_example("translate_kjv")


def test_outputs_and_exact_resume(example, tmp_path):
    args = TOY + ["--model", "unsupervised"]
    straight = example.main(args + ["--steps", "4", "--out", str(tmp_path / "a")])
    example.main(args + ["--steps", "2", "--out", str(tmp_path / "b")])
    resumed = example.main(args + ["--steps", "4", "--out", str(tmp_path / "b"), "--resume"])
    assert [h[0] for h in straight["history"]] == [2, 4]
    assert straight == resumed
    for name in ("samples.txt", "bleu.png", "checkpoint.npz"):
        assert (tmp_path / "b" / name).stat().st_size > 100, name
    a, b = (tl.load(str(tmp_path / d / "checkpoint.npz")) for d in "ab")
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key].numpy(), b["model"][key].numpy(),
                                      err_msg=key)
    assert "A->B" in (tmp_path / "b" / "samples.txt").read_text()


def test_dual_and_supervised_run(example, tmp_path):
    for model in ("dual", "supervised"):
        r = example.main(TOY + ["--model", model, "--steps", "2", "--out", str(tmp_path)])
        assert [h[0] for h in r["history"]] == [2] and 0 <= r["history"][0][2] <= 100


# The README's figures (measured values in the comments; thresholds well inside them)
@pytest.mark.long
def test_readme_supervised_beats_word_by_word(example, tmp_path):
    r = example.main(["--model", "supervised", "--dictionary", "cipher", "--steps", "2000",
                      "--out", str(tmp_path)])
    bleu_ab, bleu_ba = r["history"][-1][2:4]
    print("supervised", r["history"][-1], "word-by-word", r["word_by_word"])
    # measured 59.62 / 10.56 (word-by-word through the true dictionary: 0.00 / 0.00 BLEU-4,
    # 84.60 BLEU-1: in-vocabulary words right, every bigram broken by the block reversal)
    assert bleu_ab > r["word_by_word"][0][0] + 40 and bleu_ba > r["word_by_word"][1][0] + 5


UNSUP_NOT_MET = ("not met: the MUSE dictionary this branch merged is at chance on the cipher "
                 "pair (p@1 0.1% of 1,929 words; 0 of the 100 most frequent right), so word-by-"
                 "word translation is noise and back-translation has nothing to start from; "
                 "measured BLEU 0.00 / 0.00 after 250 steps")


@pytest.mark.long
@pytest.mark.xfail(reason=UNSUP_NOT_MET, strict=True, raises=AssertionError)
def test_readme_unsupervised_between_word_by_word_and_supervised(example, tmp_path):
    """Lample et al. with the MUSE dictionary (induced here, minutes) against word-by-word
    translation through it; the supervised figure is test_readme_supervised_beats_word_by_word."""
    r = example.main(["--model", "unsupervised", "--dictionary", "muse", "--steps", "250",
                      "--out", str(tmp_path / "unsupervised")])
    print("unsupervised", r["history"][-1], "word-by-word", r["word_by_word"])
    for lang in (0, 1):
        assert r["history"][-1][2 + lang] > r["word_by_word"][lang][0] + 1.0


@pytest.mark.long
def test_readme_unsupervised_from_the_similarity_dictionary(example, tmp_path):
    """Lample et al. from a dictionary induced without any parallel data by MUSE with
    init="similarity" (Artetxe et al. 2018; p@1 58.5% on the 1,929 scored of the 2,000 most
    frequent A words): 600 steps of iteration 0, 600 of iteration 1. Measured BLEU-4
    5.00 / 5.15 (BLEU-1 36.11 / 31.43) against word-by-word through the same dictionary
    0.00 / 0.00 (BLEU-1 80.76 / 79.02: the cipher's pair reversal breaks every bigram, so
    only on BLEU-4 does the model win) and the supervised model's 59.62 / 10.56."""
    r = example.main(["--model", "unsupervised", "--dictionary", "similarity", "--steps",
                      "1200", "--iteration-steps", "600", "--eval-every", "200",
                      "--out", str(tmp_path / "unsupervised")])
    print("unsupervised, similarity dictionary", r["history"][-1], r["word_by_word"])
    for lang, supervised in ((0, 59.62), (1, 10.56)):
        assert r["word_by_word"][lang][0] + 1.0 < r["history"][-1][2 + lang] < supervised


@pytest.mark.long
def test_unsupervised_machinery_with_the_true_dictionary(example, tmp_path):
    """Development check of the method itself (not its README figure): iteration 0 by
    word-by-word translation through the hidden true dictionary, 600 steps, then 600 of
    iteration 1 from the frozen model. Measured BLEU-4 5.18 / 5.60 (BLEU-1 34.3 / 30.9)
    against word-by-word 0.00 / 0.00 (BLEU-1 84.6) and the supervised model's 59.62 / 10.56."""
    r = example.main(["--model", "unsupervised", "--dictionary", "cipher", "--steps", "1200",
                      "--iteration-steps", "600", "--eval-every", "250", "--out", str(tmp_path)])
    print("unsupervised, true dictionary", r["history"][-1], r["word_by_word"])
    for lang in (0, 1):
        assert r["history"][-1][2 + lang] > r["word_by_word"][lang][0] + 2.0
    assert r["history"][-1][2] < 40.0                    # below the supervised A->B


DUAL_NOT_MET = ("not met at this budget: measured test BLEU A->B 0.00 / B->A 7.00 with the "
                "loops against 0.00 / 7.08 supervised-only (the primal A->B model had not "
                "started translating after 900 supervised steps on 1,000 pairs, so the loops "
                "had no signal to amplify; He et al. warm-start from trained models)")


@pytest.mark.long
@pytest.mark.xfail(reason=DUAL_NOT_MET, strict=True, raises=AssertionError)
def test_readme_joint_dual_against_supervised_only(example, tmp_path):
    """1,000 parallel pairs: supervised-only for 1,200 steps against supervised-only for 900
    steps then JointDual's loops for 300 (He et al.'s warm start), by test BLEU both ways."""
    base = ["--model", "dual", "--dictionary", "cipher", "--parallel", "1000"]
    example.main(base + ["--lambda-dual", "0", "--steps", "900", "--eval-every", "300",
                         "--out", str(tmp_path / "b")])
    init = tmp_path / "init.npz"
    init.write_bytes((tmp_path / "b" / "checkpoint.npz").read_bytes())
    sup = example.main(base + ["--lambda-dual", "0", "--steps", "1200", "--eval-every", "300",
                               "--resume", "--out", str(tmp_path / "b")])
    dual = example.main(base + ["--lambda-dual", "0.5", "--steps", "300", "--eval-every",
                                "150", "--init", str(init), "--out", str(tmp_path / "d")])
    print("supervised only", sup["history"][-1], "dual", dual["history"][-1])
    assert sum(dual["history"][-1][2:4]) > sum(sup["history"][-1][2:4]) + 1.0
