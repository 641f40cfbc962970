"""examples/glo_mnist.py end to end with tiny settings (embedded data): pictures, results, and
a resumed run (codes, generator, Adam state) equal bit for bit to a straight one."""
import numpy as np
import pytest

import tinylatent as tl

from example_runner import load_example


pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(scope="module")
def example():
    return load_example("glo_mnist")


def test_pictures_results_and_exact_resume(example, tmp_path):
    common = ["--limit-train", "256", "--batch-size", "64", "--latent-dim", "8"]
    _, results = example.main(common + ["--epochs", "2", "--out", str(tmp_path / "a")])
    example.main(common + ["--epochs", "1", "--out", str(tmp_path / "b")])
    example.main(common + ["--epochs", "2", "--out", str(tmp_path / "b"), "--resume"])
    for name in ("reconstructions.png", "interpolations.png", "samples.png", "loss_curve.png"):
        blob = (tmp_path / "b" / name).read_bytes()
        assert blob[:4] == b"\x89PNG" and len(blob) > 2000, name
    assert 0 < results["pca_train_mse"] < results["glo_train_mse"] < 0.25   # 8 steps: not yet
    a = tl.load(str(tmp_path / "a" / "checkpoint.npz"))
    b = tl.load(str(tmp_path / "b" / "checkpoint.npz"))
    assert a["epoch"] == b["epoch"] == 2
    assert [dict(h) for h in a["history"]] == [dict(h) for h in b["history"]]
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key].numpy(), b["model"][key].numpy(),
                                      err_msg=key)
    norms = np.linalg.norm(b["model"]["codes"].numpy(), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
