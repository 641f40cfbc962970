"""examples/autoregressive_mnist.py end to end (embedded data, tiny models): a sample grid, a
checkpoint per epoch, and a resumed run equal bit for bit to a straight one for each model
(MADE's mask cycle, both random generators and the optimizer restored)."""
import numpy as np
import pytest

import tinylatent as tl

from example_runner import load_example


pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(scope="module")
def example():
    return load_example("autoregressive_mnist")


@pytest.mark.parametrize("model", ["made", "nade", "planar_vae"])
def test_checkpoint_and_exact_resume(example, tmp_path, model):
    common = ["--model", model, "--hidden", "8", "--masks", "3", "--flows", "2",
              "--n-train", "120", "--batch-size", "50", "--samples",
              "4" if model == "made" else "0"]
    straight = example.main(common + ["--epochs", "2", "--out", str(tmp_path / "straight")])
    example.main(common + ["--epochs", "1", "--out", str(tmp_path / "resumed")])
    resumed = example.main(common + ["--epochs", "2", "--out", str(tmp_path / "resumed"),
                                     "--resume"])
    assert [h["epoch"] for h in resumed] == [1, 2]
    for key in ("train", "test"):
        assert [h[key] for h in straight] == [h[key] for h in resumed], key
    a = tl.load(str(tmp_path / "straight" / "checkpoint.npz"))
    b = tl.load(str(tmp_path / "resumed" / "checkpoint.npz"))
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key].numpy(), b["model"][key].numpy(),
                                      err_msg=key)
    if model == "made":
        assert (tmp_path / "resumed" / "made_samples.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="cannot resume"):
        example.main(common + ["--epochs", "3", "--lr", "0.5", "--resume",
                               "--out", str(tmp_path / "resumed")])
