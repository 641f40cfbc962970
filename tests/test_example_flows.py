"""examples/flows_mnist.py end to end (embedded data, tiny flows): samples, checkpoint, a
resumed run equal bit for bit to a straight one, and a resume with other settings refused."""
import numpy as np
import pytest

import tinylatent as tl

from example_runner import load_example


pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(scope="module")
def example():
    return load_example("flows_mnist")


# (MAF runs the same loop; its sampling inverts 784 dimensions one at a time, a minute here)
@pytest.mark.parametrize("model", ["realnvp", "glow"])
def test_samples_checkpoint_and_exact_resume(example, tmp_path, model):
    common = ["--model", model, "--hidden", "4", "--flow-steps", "1", "--batch-size", "8",
              "--eval-every", "2", "--n-test", "16"]
    straight = example.main(common + ["--steps", "4", "--out", str(tmp_path / "straight")])
    example.main(common + ["--steps", "2", "--out", str(tmp_path / "resumed")])
    resumed = example.main(common + ["--steps", "4", "--out", str(tmp_path / "resumed"),
                                     "--resume"])
    assert (tmp_path / "resumed" / f"{model}_samples.png").read_bytes()[:4] == b"\x89PNG"
    assert [h["step"] for h in straight] == [2, 4]
    a = tl.load(str(tmp_path / "straight" / "checkpoint.npz"))
    b = tl.load(str(tmp_path / "resumed" / "checkpoint.npz"))
    for key in ("train_bpd", "test_bpd"):
        assert [h[key] for h in straight] == [h[key] for h in resumed], key
    assert a["step"] == b["step"] == 4
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key].numpy(), b["model"][key].numpy(),
                                      err_msg=key)
    with pytest.raises(SystemExit, match="cannot resume"):
        example.main(common[:-2] + ["--n-test", "8", "--steps", "6", "--resume",
                                    "--out", str(tmp_path / "resumed")])
