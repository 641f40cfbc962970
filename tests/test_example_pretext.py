"""examples/pretext_images.py and examples/mae_mnist.py with tiny settings on the embedded
data: pictures, probe tables, checkpoint, and --resume continuing exactly."""
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl

from example_runner import load_example

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("offline_data")


def assert_png(path: Path):
    assert path.is_file(), f"{path.name} was not written"
    blob = path.read_bytes()
    assert blob[:8] == PNG_MAGIC and len(blob) > 2000, path


def test_pretext_images_rotation_short_run(tmp_path):
    example = load_example("pretext_images")
    common = ["--limit-train", "256", "--limit-train-batches", "2", "--probe-train", "100",
              "--limit-test", "100",
              "--hidden-channels", "4", "8"]
    result = example.main(common + ["--epochs", "1", "--out", str(tmp_path)])
    assert 0 <= result["pretext_test_accuracy"] <= 1
    probe = result["probe"]
    assert len(probe["trained"]) == len(probe["random init"]) == 2 and len(probe["pixels"]) == 1
    assert all(0.1 < a <= 1 for accs in probe.values() for a in accs)
    for name in ("probe", "rotations", "loss_curve"):
        assert_png(tmp_path / f"{name}.png")
    again = example.main(common + ["--epochs", "2", "--out", str(tmp_path), "--resume"])
    straight = example.main(common + ["--epochs", "2", "--out", str(tmp_path / "b")])
    assert again == straight     # resume continues bit for bit (the probes see equal weights)


def test_mae_mnist_short_run(tmp_path):
    example = load_example("mae_mnist")
    common = ["--limit-train", "256", "--limit-train-batches", "2", "--probe-train", "100",
              "--limit-test", "100",
              "--hidden-features", "16", "--num-layers", "1"]
    result = example.main(common + ["--epochs", "1", "--out", str(tmp_path)])
    assert result["mask_ratio"] == 0.75
    assert np.isfinite(result["test_masked_mse"]) and result["mean_patch_baseline"] > 0
    assert set(result["probe"]) == {"pixels", "trained", "random init"}
    for name in ("reconstructions", "loss_curve"):
        assert_png(tmp_path / f"{name}.png")
    ckpt = tl.load(tmp_path / "checkpoint.npz")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 2


def test_pretext_images_jigsaw_short_run(tmp_path):
    result = load_example("pretext_images").main([
        "--task", "jigsaw", "--epochs", "1", "--limit-train", "64", "--limit-train-batches",
        "1", "--probe-train", "100", "--limit-test", "100", "--hidden-channels", "4",
        "--out", str(tmp_path)])
    assert 0 <= result["pretext_test_accuracy"] <= 1
    assert len(result["probe"]["trained"]) == 1 and len(result["probe"]["random init"]) == 1
    assert_png(tmp_path / "loss_curve.png")


def test_pretext_images_exemplar_short_run(tmp_path):
    result = load_example("pretext_images").main([
        "--task", "exemplar", "--epochs", "1", "--num-exemplars", "32", "--probe-train", "100",
        "--limit-test", "100", "--hidden-channels", "4", "--out", str(tmp_path)])
    assert 0 <= result["pretext_test_accuracy"] <= 1
    assert len(result["probe"]["trained"]) == 1
