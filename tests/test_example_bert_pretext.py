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


@pytest.mark.long
def test_readme_figures(example, tmp_path):
    """The README's table: the example's defaults (4 objectives x 2,000 steps, 3 fine-tuning
    seeds). Each pre-trained encoder must beat the encoder from scratch with 16 labels."""
    r = example.main(["--out", str(tmp_path)])
    scratch = np.mean(r["table"]["scratch"][0], 0)[1]
    for name in ("mlm+nsp", "denoise", "shuffle", "delete"):
        assert np.mean(r["table"][name][0], 0)[1] > scratch, (name, r["table"])
