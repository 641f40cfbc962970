"""examples/bert_pretext_kjv.py with tiny settings: pre-training under each objective, the
fine-tuning table, outputs, and an exact resume through tl.train.Trainer's checkpoints."""

import numpy as np
import pytest
from example_runner import load_example

pytestmark = pytest.mark.usefixtures("offline_data")

TINY = ["--chapters", "30", "--layers", "1", "--dim", "16", "--heads", "2", "--max-len", "20",
        "--merges", "40", "--steps-per-epoch", "2", "--batch-size", "8", "--labels", "8",
        "--finetune-steps", "2", "--finetune-seeds", "2", "--objectives", "shuffle", "delete"]


@pytest.fixture(scope="module")
def example():
    return load_example("bert_pretext_kjv")


def test_run_outputs_and_exact_resume(example, tmp_path):
    full = example.main(TINY + ["--epochs", "2", "--out", str(tmp_path / "full")])
    assert set(full["table"]) == {"shuffle", "delete", "scratch"}
    assert np.shape(full["table"]["scratch"]) == (1, 2, 2)          # labels, seeds, 2
    assert [h["epoch"] for h in full["history"]["delete"]] == [1, 2]
    for name in ("finetune.png", "results.txt", "tokenizer.json", "shuffle/checkpoint.npz",
                 "delete/loss_curve.png"):
        assert (tmp_path / "full" / name).stat().st_size > 100, name
    part = ["--out", str(tmp_path / "part")]
    example.main(TINY + part + ["--epochs", "1"])
    resumed = example.main(TINY + part + ["--epochs", "2", "--resume"])
    assert resumed == full


@pytest.mark.parametrize("pair_len", ["0", "24"])
def test_mlm_nsp_on_verse_pairs_and_on_span_pairs(example, tmp_path, pair_len):
    """MLM + NSP pre-trains on verse pairs (the README's table) or, with --pair-len N, on
    span pairs of N tokens (tl.data.NextSpanPairs, as examples/bert_kjv.py)."""
    args = TINY[:TINY.index("--objectives")] + ["--objectives", "mlm+nsp", "--pair-len",
                                                pair_len, "--epochs", "1",
                                                "--out", str(tmp_path)]
    r = example.main(args)
    assert set(r["table"]) == {"mlm+nsp", "scratch"}
    nsp = r["history"]["mlm+nsp"][-1]["valid_nsp_accuracy"]
    assert 0.0 <= nsp <= 1.0


@pytest.mark.long
def test_readme_figures(example, tmp_path):
    """The README's table: the example's defaults (4 objectives x 2,000 steps of 32, then
    3 fine-tuning seeds; ~65 min on 2 shared cores). NOT rerun since MLM + NSP pre-trains on
    128-token span pairs (tl.data.NextSpanPairs): its figures below were measured with the
    single-verse pairs of tl.data.NextSentencePairs (48 tokens, commit 3a628cf); the span
    pairs' NSP is in tests/test_example_bert.py. Measured (seed 1), held-out chapters
    against each baseline on the same verses: denoise MLM accuracy 0.202 (unigram 0.069),
    shuffle order accuracy 0.108 (uniform 0.031), delete gap accuracy 0.884 (always "none"
    0.856) and missing word 0.276 (unigram 0.070); MLM+NSP's NSP 0.629 (lexical-overlap
    logistic regression 0.718: not met). Fine-tuning, balanced accuracy mean over seeds
    1-3, pre-trained (mlm+nsp / denoise / shuffle / delete) vs scratch: 16 labels 0.583 /
    0.553 / 0.574 / 0.580 vs 0.602; 64: 0.654 / 0.649 / 0.622 / 0.621 vs 0.647; 256: 0.698 /
    0.688 / 0.703 / 0.685 vs 0.741 - at this budget no objective beats the encoder from
    scratch (NOT met). The bounds sit inside those figures."""
    r = example.main(["--out", str(tmp_path)])
    last = {k: h[-1] for k, h in r["history"].items()}
    base = r["baselines"]
    assert last["denoise"]["valid_mlm_accuracy"] > 2 * base["denoise"]["mlm_accuracy"], r
    assert last["shuffle"]["valid_order_accuracy"] > 2 * base["shuffle"]["order_accuracy"], r
    assert last["delete"]["valid_gap_accuracy"] > base["delete"]["gap_accuracy"] + 0.01, r
    assert last["delete"]["valid_word_accuracy"] > 2 * base["delete"]["word_accuracy"], r
    assert last["mlm+nsp"]["valid_nsp_accuracy"] > 0.6, r
    for name, table in r["table"].items():        # every encoder learns the task
        assert np.mean(table[-1], 0)[1] > 0.65, (name, table)
