"""examples/ebm.py end to end with tiny settings: 2-D pictures and results, a resumed run
(replay buffer in the checkpoint) equal bit for bit to a straight one, and the MNIST pictures."""
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl

from example_runner import load_example


pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(scope="module")
def example():
    return load_example("ebm")


def png(path):
    blob = Path(path).read_bytes()
    assert blob[:4] == b"\x89PNG" and len(blob) > 2000, path


def test_toy_run_pictures_results_and_exact_resume(example, tmp_path):
    common = ["--dataset", "8gaussians", "--n-train", "128", "--batch-size", "64"]
    _, results = example.main(common + ["--epochs", "2", "--out", str(tmp_path / "a")])
    example.main(common + ["--epochs", "1", "--out", str(tmp_path / "b")])
    history, _ = example.main(common + ["--epochs", "2", "--out", str(tmp_path / "b"),
                                        "--resume"])
    png(tmp_path / "b" / "energy.png")
    assert np.isfinite(results["test_nll"]) and 1.0 < results["kde_test_nll"] < 4.0
    assert "val_nll" in history[-1]
    a = tl.load(str(tmp_path / "a" / "checkpoint.npz"))
    b = tl.load(str(tmp_path / "b" / "checkpoint.npz"))
    assert a["epoch"] == b["epoch"] == 2 and {"ebm.buffer", "ebm.tempered"} <= set(a["model"])
    assert [dict(h) for h in a["history"]] == [dict(h) for h in b["history"]]
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key].numpy(), b["model"][key].numpy(),
                                      err_msg=key)


def test_mnist_pictures(example, tmp_path):
    example.main(["--dataset", "mnist", "--epochs", "1", "--limit-train", "128",
                  "--out", str(tmp_path / "m")])
    png(tmp_path / "m" / "samples_buffer.png")
    png(tmp_path / "m" / "samples_noise.png")
