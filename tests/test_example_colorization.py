"""examples/colorization.py, tracking_colorization.py, mae_finetune.py and mae_sweep.py with
tiny settings on the embedded data: pictures, result tables, checkpoints, and --resume
continuing exactly."""
import numpy as np
import pytest

import tinylatent as tl

from example_runner import assert_png, load_example

pytestmark = pytest.mark.usefixtures("offline_data")


def test_colorization_short_run_and_resume(tmp_path):
    example = load_example("colorization")
    common = ["--limit-train", "128", "--limit-train-batches", "2", "--probe-train", "100",
              "--limit-test", "100", "--hidden-channels", "4", "8", "--grid-step", "20"]
    result = example.main(common + ["--epochs", "1", "--out", str(tmp_path)])
    assert np.isfinite(result["test_ab_error"])
    assert set(result["baselines_ab_error"]) == {"gray", "mean colour"}
    assert set(result["probe"]) == {"pixels", "trained", "random init"}
    assert all(0.1 < a <= 1 for a in result["probe"].values())
    for name in ("colorization", "loss_curve"):
        assert_png(tmp_path / f"{name}.png")
    again = example.main(common + ["--epochs", "2", "--out", str(tmp_path), "--resume"])
    straight = example.main(common + ["--epochs", "2", "--out", str(tmp_path / "b")])
    assert again == straight     # resume continues bit for bit


def test_colorization_cifar10_needs_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="CIFAR-10"):
        load_example("colorization").main(["--dataset", "cifar10", "--image-size", "32",
                                           "--out", str(tmp_path)])


def test_tracking_colorization_short_run_and_resume(tmp_path):
    example = load_example("tracking_colorization")
    common = ["--num-train", "32", "--num-test", "8", "--num-frames", "4", "--size", "32",
              "--hidden-channels", "4", "8", "--latent-features", "8", "--num-colors", "4",
              "--limit-train-batches", "2", "--batch-size", "8"]
    result = example.main(common + ["--epochs", "1", "--out", str(tmp_path)])
    assert set(result["mean"]) == {"trained", "random init", "nearest pixel"}
    assert all(len(v) == 3 and all(0 <= a <= 1 for a in v) for v in result["per_frame"].values())
    for name in ("accuracy", "propagation", "loss_curve"):
        assert_png(tmp_path / f"{name}.png")
    again = example.main(common + ["--epochs", "2", "--out", str(tmp_path), "--resume"])
    straight = example.main(common + ["--epochs", "2", "--out", str(tmp_path / "b")])
    assert again == straight


def test_mae_finetune_short_run_and_resume(tmp_path):
    example = load_example("mae_finetune")
    common = ["--limit-train", "128", "--labelled", "64", "--limit-test", "100",
              "--limit-train-batches", "2", "--hidden-features", "16", "--num-layers", "1"]
    result = example.main(common + ["--epochs", "1", "--finetune-epochs", "1",
                                    "--out", str(tmp_path)])
    assert set(result["test_accuracy"]) == {"finetune", "scratch"}
    assert all(0 <= a <= 1 for a in result["test_accuracy"].values())
    assert_png(tmp_path / "finetune.png")
    for phase in ("pretrain", "finetune", "scratch"):
        assert tl.load(tmp_path / phase / "checkpoint.npz")["epoch"] == 1
    args = ["--epochs", "1", "--finetune-epochs", "2"]
    again = example.main(common + args + ["--out", str(tmp_path), "--resume"])
    straight = example.main(common + args + ["--out", str(tmp_path / "b")])
    assert again == straight


def test_mae_sweep_short_run(tmp_path):
    results = load_example("mae_sweep").main([
        "--ratios", "0.5", "0.75", "--out", str(tmp_path), "--epochs", "1", "--limit-train",
        "128", "--limit-train-batches", "2", "--probe-train", "100", "--limit-test", "100",
        "--hidden-features", "16", "--num-layers", "1"])
    assert [r["mask_ratio"] for r in results] == [0.5, 0.75]
    assert_png(tmp_path / "sweep.png")
    table = (tmp_path / "sweep.md").read_text()
    assert "| 50% (8/16) |" in table and "| 75% (12/16) |" in table
