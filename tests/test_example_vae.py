"""examples/vae_mnist.py end to end on the embedded data: pictures, checkpoint, exact resume."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl

from example_runner import load_example

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "vae_mnist.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(scope="module")
def example():
    return load_example("vae_mnist")


def assert_png(path: Path):
    assert path.is_file(), f"{path.name} was not written"
    blob = path.read_bytes()
    assert blob[:8] == PNG_MAGIC and len(blob) > 2000, path


def test_short_run_writes_pictures_and_checkpoint(example, tmp_path):
    out = tmp_path / "run"
    history = example.main(["--epochs", "1", "--limit-train-batches", "4", "--latent-dim", "2",
                            "--out", str(out), "--iwae-k", "3"])
    assert len(history) == 1
    h = history[0]
    # an untrained model costs ~543 nats per image; 4 steps of Adam already help
    assert 150 < h["test"] < 540 and np.isfinite(h["train"])
    for name in ("reconstructions", "interpolations", "samples", "loss_curve", "manifold",
                 "latent_codes"):
        assert_png(out / f"{name}.png")
    ckpt = tl.load(out / "checkpoint.npz")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 4 and ckpt["history"] == history
    assert set(ckpt["model"]) == {f"{m}.{p}" for m in ("enc_hidden", "enc_mu", "enc_logvar",
                                                       "dec_hidden", "dec_out")
                                  for p in ("weight", "bias")}


def test_resume_continues_exactly(example, tmp_path):
    """2 epochs straight == 1 epoch, stop, --resume, 1 more: bit for bit."""
    common = ["--limit-train-batches", "3", "--latent-dim", "4", "--seed", "7",
              "--kl-anneal-epochs", "1.5", "--free-bits", "0.1"]
    straight = example.main(common + ["--epochs", "2", "--out", str(tmp_path / "a")])
    example.main(common + ["--epochs", "1", "--out", str(tmp_path / "b")])
    resumed = example.main(common + ["--epochs", "2", "--out", str(tmp_path / "b"),
                                     "--resume"])
    assert resumed == straight                       # the loss history, exactly
    a, b = tl.load(tmp_path / "a" / "checkpoint.npz"), tl.load(tmp_path / "b" / "checkpoint.npz")
    for k in a["model"]:
        np.testing.assert_array_equal(a["model"][k].numpy(), b["model"][k].numpy(), err_msg=k)
    for i, state in a["optimizer"]["state"].items():
        for name, v in state.items():
            np.testing.assert_array_equal(np.asarray(v), np.asarray(b["optimizer"]["state"][i]
                                                                    [name]))
    assert a["rng"] == b["rng"] and a["shuffle_rng"] == b["shuffle_rng"]
    assert a["step"] == b["step"] == 6


def test_command_line_runs_offline(tmp_path):
    """The README's first command, as a user types it (shortened to 2 steps)."""
    env = dict(os.environ, TINYLATENT_OFFLINE="1", PYTHONPATH=str(ROOT),
               MPLBACKEND="Agg", TINYLATENT_DATA=str(tmp_path / "empty_cache"))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "1",
                           "--limit-train-batches", "2", "--out", str(tmp_path / "cli")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "embedded 5,000-image subset" in proc.stderr
    assert proc.stderr.count("tinylatent: MNIST from") == 1      # said once
    assert "epoch   1  train loss" in proc.stdout
    assert_png(tmp_path / "cli" / "samples.png")
