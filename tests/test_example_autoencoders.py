"""examples/autoencoders_mnist.py end to end (embedded data): pictures, checkpoint, and a
resumed run equal bit for bit to a straight one (the example trains with tl.train.Trainer)."""
import numpy as np
import pytest

import tinylatent as tl

from example_runner import load_example


pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(scope="module")
def example():
    return load_example("autoencoders_mnist")


def test_pictures_checkpoint_and_exact_resume(example, tmp_path):
    common = ["--model", "denoising", "--limit-train", "256", "--batch-size", "64"]
    example.main(common + ["--epochs", "2", "--out", str(tmp_path / "straight")])
    example.main(common + ["--epochs", "1", "--out", str(tmp_path / "resumed")])
    example.main(common + ["--epochs", "2", "--out", str(tmp_path / "resumed"), "--resume"])
    for name in ("reconstructions.png", "loss_curve.png", "codes.png"):
        assert (tmp_path / "resumed" / name).read_bytes()[:4] == b"\x89PNG"
    a = tl.load(str(tmp_path / "straight" / "checkpoint.npz"))
    b = tl.load(str(tmp_path / "resumed" / "checkpoint.npz"))
    assert a["epoch"] == b["epoch"] == 2
    assert [dict(h) for h in a["history"]] == [dict(h) for h in b["history"]]
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key].numpy(), b["model"][key].numpy(),
                                      err_msg=key)
    with pytest.raises(ValueError, match="noise_level: 0.5 -> 0.3"):
        example.main(common + ["--epochs", "3", "--noise-level", "0.3", "--resume",
                               "--out", str(tmp_path / "resumed")])
