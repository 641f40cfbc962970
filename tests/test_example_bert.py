"""examples/bert_kjv.py with tiny settings: pre-training, held-out figures, fine-tuning
table, outputs, and an exact resume through tl.train.Trainer's checkpoint."""

import pytest
from example_runner import load_example

TINY = ["--chapters", "40", "--layers", "1", "--dim", "32", "--heads", "2", "--max-len", "24",
        "--merges", "60", "--steps-per-epoch", "2", "--batch-size", "8", "--labels", "8",
        "--finetune-steps", "2"]


@pytest.fixture(scope="module")
def example():
    return load_example("bert_kjv")


def test_run_outputs_and_exact_resume(example, tmp_path):
    full = example.main(TINY + ["--epochs", "2", "--out", str(tmp_path / "full")])
    assert [h["epoch"] for h in full["history"]] == [1, 2]
    for name in ("loss_curve.png", "finetune.png", "results.txt", "tokenizer.json",
                 "checkpoint.npz"):
        assert (tmp_path / "full" / name).stat().st_size > 100, name
    assert 0 <= full["nsp"] <= 1 and 0 <= full["unigram"] <= 1
    assert len(full["pretrained"]) == len(full["scratch"]) == 1
    part = ["--out", str(tmp_path / "part")]
    example.main(TINY + part + ["--epochs", "1"])
    resumed = example.main(TINY + part + ["--epochs", "2", "--resume"])
    assert resumed["history"] == full["history"]
    assert resumed["nsp"] == full["nsp"] and resumed["mlm"] == full["mlm"]


NSP_NOT_MET = ("issue 20 goal NSP >= 0.85 on held-out span pairs not met: 0.736 after 4,000 "
               "steps of 32 x 128 (train 0.762), below the lexical-overlap baseline's 0.795")


@pytest.fixture(scope="module")
def readme_run(example, tmp_path_factory):
    """The README's run: the example's defaults, 4,000 steps of 32 span pairs of 128 tokens,
    then 3 fine-tuning seeds (~60 min pre-training, ~17 min evaluation and fine-tuning, on 2
    heavily loaded cores). Measured (seed 1), held-out NSP (train NSP, with dropout) after
    500, 1,000, ... 4,000 steps: 0.510 (0.498), 0.536 (0.513), 0.663 (0.587), 0.694 (0.658),
    0.693 (0.695), 0.735 (0.726), 0.730 (0.739), 0.736 (0.762); held-out MLM 0.175 (the
    single-verse pairs of commit 3a628cf gave NSP 0.654 and MLM 0.337 after as many steps)."""
    return example.main(["--out", str(tmp_path_factory.mktemp("bert_kjv"))])


@pytest.mark.long
def test_readme_figures(readme_run):
    """Bounds inside the measured figures: MLM 0.175 vs unigram 0.069; NSP 0.736 (988 held-out
    pairs, 51.0% IsNext) vs the lexical-overlap logistic regression on the same span pairs
    0.795; Old/New Testament balanced accuracy pre-trained vs scratch, mean of 3 seeds:
    0.769 / 0.598 (16 labels), 0.799 / 0.643 (64), 0.818 / 0.737 (256)."""
    r = readme_run
    assert r["mlm"] > 2 * r["unigram"], r
    assert r["nsp"] > 0.7 and 0.78 < r["nsp_baseline"] < 0.81, r
    assert abs(r["next_rate"] - 0.5) < 0.03, r
    assert r["pretrained"][0][1] > r["scratch"][0][1] + 0.1, r      # 16 labels
    for (_, pre), (_, scratch) in zip(r["pretrained"], r["scratch"]):
        assert pre > scratch + 0.04, r


@pytest.mark.long
@pytest.mark.xfail(reason=NSP_NOT_MET, strict=True, raises=AssertionError)
def test_readme_nsp_goal(readme_run):
    assert readme_run["nsp"] >= 0.85, readme_run["nsp"]
