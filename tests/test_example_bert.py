"""examples/bert_kjv.py with tiny settings: pre-training (fresh pairs, and pairs drawn
once), held-out figures, fine-tuning table, outputs, and an exact resume through
tl.train.Trainer's checkpoint (the learning-rate schedule's and the pair draws' position
included)."""

import pytest
from example_runner import load_example

TINY = ["--chapters", "40", "--layers", "1", "--dim", "32", "--heads", "2", "--max-len", "24",
        "--merges", "60", "--steps-per-epoch", "2", "--batch-size", "8", "--labels", "8",
        "--finetune-steps", "2", "--warmup", "1"]


@pytest.fixture(scope="module")
def example():
    return load_example("bert_kjv")


def test_run_outputs_and_exact_resume(example, tmp_path):
    full = example.main(TINY + ["--epochs", "2", "--out", str(tmp_path / "full")])
    assert [h["epoch"] for h in full["history"]] == [1, 2]
    assert all(0 <= h["valid_nsp_accuracy"] <= 1 for h in full["history"])  # validation split
    for name in ("loss_curve.png", "finetune.png", "results.txt", "tokenizer.json",
                 "checkpoint.npz"):
        assert (tmp_path / "full" / name).stat().st_size > 100, name
    assert 0 <= full["nsp"] <= 1 and 0 <= full["unigram"] <= 1
    assert len(full["pretrained"]) == len(full["scratch"]) == 1
    static = example.main(TINY + ["--epochs", "1", "--dupe-factor", "2", "--out",
                                  str(tmp_path / "static")])      # pairs drawn once, twice
    assert static["history"][0]["nsp_accuracy"] != full["history"][0]["nsp_accuracy"]
    part = ["--out", str(tmp_path / "part")]
    example.main(TINY + part + ["--epochs", "1", "--decay-epochs", "2"])  # stopped half-way
    resumed = example.main(TINY + part + ["--epochs", "2", "--decay-epochs", "2", "--resume"])
    assert resumed["history"] == full["history"]
    assert resumed["nsp"] == full["nsp"] and resumed["mlm"] == full["mlm"]


NSP_NOT_MET = ("issue 20 goal NSP >= 0.85 on held-out span pairs not met: 0.800 after 7,000 "
               "steps of 32 x 128 on freshly drawn pairs (warm-up + linear decay, peak 1e-3), "
               "barely above the lexical-overlap baseline's 0.795; validation NSP 0.809")


@pytest.fixture(scope="module")
def readme_run(example, tmp_path_factory):
    """The README's run: the example's defaults, 7,000 steps of 32 span pairs of 128 tokens
    drawn afresh whenever a draw is used up (peak rate 1e-3 after 700 warm-up steps, linear
    decay to 0), then 3 fine-tuning seeds (~79 min in all on 2 cores shared with other runs).
    Measured (seed 1), validation NSP (913 pairs of training chapters kept out of training)
    after 500, 1,000, ... 7,000 steps: 0.547, 0.510, 0.631, 0.629, 0.710, 0.733, 0.758, 0.774,
    0.760, 0.785, 0.773, 0.793, 0.798, 0.809 (the lexical baseline: 0.782); training NSP
    (with dropout) at the same steps 0.505 ... 0.799 (5,000) ... 0.833; validation MLM 0.191
    at the end."""
    return example.main(["--out", str(tmp_path_factory.mktemp("bert_kjv"))])


@pytest.mark.long
def test_readme_figures(readme_run):
    """Bounds inside the measured figures: MLM 0.201 vs unigram 0.069; NSP 0.800 (988 held-out
    pairs, 51.0% IsNext) vs the lexical-overlap logistic regression on the same span pairs
    0.795; validation NSP 0.809 at the end; Old/New Testament balanced accuracy pre-trained
    vs scratch, mean of 3 seeds: 0.760 / 0.543 (16 labels), 0.835 / 0.631 (64), 0.848 / 0.702
    (256)."""
    r = readme_run
    assert r["mlm"] > 2.5 * r["unigram"], r
    assert r["nsp"] > 0.78 and 0.78 < r["nsp_baseline"] < 0.81, r
    assert r["history"][-1]["valid_nsp_accuracy"] > 0.79, r["history"][-1]
    assert abs(r["next_rate"] - 0.5) < 0.03, r
    assert r["pretrained"][0][1] > r["scratch"][0][1] + 0.1, r      # 16 labels
    for (_, pre), (_, scratch) in zip(r["pretrained"], r["scratch"]):
        assert pre > scratch + 0.04, r


@pytest.mark.long
@pytest.mark.xfail(reason=NSP_NOT_MET, strict=True, raises=AssertionError)
def test_readme_nsp_goal(readme_run):
    assert readme_run["nsp"] >= 0.85, readme_run["nsp"]
