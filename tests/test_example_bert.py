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


@pytest.mark.long
def test_readme_figures(example, tmp_path):
    """The README's figures: the example's defaults (~35 min on 2 shared cores). Measured
    (seed 1): held-out MLM accuracy 0.337 vs the unigram baseline's 0.069; NSP 0.654 (the
    85% goal NOT met); balanced accuracy pre-trained vs scratch 0.717 / 0.614 (16 labels),
    0.730 / 0.676 (64), 0.761 / 0.762 (256). The bounds sit inside those figures. The
    lexical-overlap baseline on the same truncated pairs (bert_eval.nsp_overlap_baseline) scores
    0.718 held-out: NSP at 4,000 steps is below it (underfitted: train NSP accuracy 0.667 ~
    held-out, still rising: 0.713 at 8,000 steps, tests/test_example_bert_pretext.py)."""
    r = example.main(["--out", str(tmp_path)])
    assert r["mlm"] > 3 * r["unigram"], r
    assert r["nsp"] > 0.6, r
    assert 0.7 < r["nsp_baseline"] < 0.74, r
    assert r["pretrained"][0][1] > r["scratch"][0][1] + 0.05, r     # 16 labels
