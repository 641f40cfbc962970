"""examples/gan_2d.py and examples/gan_mnist.py for a few steps with tiny settings: pictures,
checkpoint, resume through tl.train.Trainer with two optimizers."""
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


def test_gan_2d_short_run_and_resume(tmp_path, capsys):
    example = load_example("gan_2d")
    out = tmp_path / "run"
    args = ["--n-train", "512", "--batch-size", "64", "--hidden", "16", "--out", str(out),
            "--limit-train-batches", "3"]
    history = example.main(args + ["--epochs", "1"])
    assert len(history) == 1
    h = history[0]
    assert 0.0 <= h["hq"] <= 1.0 and 0.0 <= h["min_mode"] <= 0.125 + 1e-9
    assert np.isfinite(h["d_loss"]) and np.isfinite(h["g_loss"])
    for name in ("samples", "loss_curve"):
        assert_png(out / f"{name}.png")
    history = example.main(args + ["--epochs", "2", "--resume"])
    assert "resumed from" in capsys.readouterr().out
    assert len(history) == 2 and tl.load(str(out / "checkpoint.npz"))["step"] == 6


@pytest.mark.parametrize("model", ["dcgan", "wgangp"])
def test_gan_mnist_short_run_and_resume(tmp_path, model, capsys):
    example = load_example("gan_mnist")
    out = tmp_path / model
    args = ["--model", model, "--hidden-channels", "4", "--latent-dim", "8", "--n-eval", "200",
            "--batch-size", "16", "--out", str(out), "--limit-train-batches", "2"]
    history = example.main(args + ["--epochs", "1"])
    h = history[0]
    assert h["fd"] > 0 and 0.0 <= h["coverage"] <= 1.0 and np.isfinite(h["d_loss"])
    if model == "wgangp":
        assert "gradient_penalty" in h and "wasserstein" in h
    for name in ("samples", "interpolation", "loss_curve"):
        assert_png(out / f"{name}.png")
    history = example.main(args + ["--epochs", "2", "--resume"])
    assert "resumed from" in capsys.readouterr().out and len(history) == 2
    with pytest.raises(ValueError, match="hidden_channels: 4 -> 8"):
        example.main([a if a != "4" else "8" for a in args] + ["--epochs", "3", "--resume"])
