"""examples/cmc.py and examples/simcse_kjv.py with tiny settings: each writes its pictures,
results and a checkpoint, and --resume continues from it."""

import pytest

import tinylatent as tl

from example_runner import load_example

pytestmark = pytest.mark.usefixtures("offline_data")


def _pictures(out, names):
    for name in names:
        blob = (out / f"{name}.png").read_bytes()
        assert blob[:4] == b"\x89PNG" and len(blob) > 2000, name


def test_cmc_short_run_writes_pictures_and_resumes(tmp_path):
    example = load_example("cmc")
    out = tmp_path / "cmc"
    args = ["--epochs", "1", "--limit-train-batches", "1", "--limit-images", "150",
            "--batch-size", "32", "--num-negatives", "16", "--out", str(out)]
    history, results = example.main(args)
    assert len(history) == 1 and "view 1: CMC f (frozen)" in results
    _pictures(out, ("embedding", "retrieval", "probe", "loss_curve"))
    assert "view 2: raw pixels" in (out / "results.txt").read_text()
    assert tl.load(out / "checkpoint.npz")["epoch"] == 1
    history, _ = example.main(args[:1] + ["2"] + args[2:] + ["--resume"])
    assert [h["epoch"] for h in history] == [1, 2]


@pytest.mark.parametrize("mode", ["unsup", "sup"])
def test_simcse_short_run_writes_pictures_and_resumes(tmp_path, mode):
    example = load_example("simcse_kjv")
    out = tmp_path / mode
    args = ["--mode", mode, "--epochs", "1", "--limit-train-batches", "1", "--chapters", "20",
            "--dim", "16", "--layers", "1", "--merges", "50", "--batch-size", "8",
            "--test-verses", "40", "--out", str(out)]
    history, results = example.main(args)
    assert len(history) == 1 and f"SimCSE {mode}" in results
    assert set(results) >= {"avg word emb. (init)", "untrained encoder"}
    _pictures(out, ("recall", "similarity", "loss_curve"))
    assert tl.load(out / "checkpoint.npz")["epoch"] == 1
    if mode == "sup":
        return
    history, _ = example.main(args[:3] + ["2"] + args[4:] + ["--resume"])
    assert [h["epoch"] for h in history] == [1, 2]
