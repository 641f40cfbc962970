"""examples/cyclegan_mnist.py for a few steps with tiny settings: the triplet picture, the
metrics, and a resumed run (weights, both Adam states, history pools) equal bit for bit to a
straight one."""
import numpy as np
import pytest

import tinylatent as tl

from example_runner import load_example

pytestmark = pytest.mark.usefixtures("offline_data")

TINY = ["--domain", "thick-inverted", "--hidden-channels", "2", "--n-blocks", "1",
        "--batch-size", "8", "--n-eval", "50", "--classifier-epochs", "1",
        "--limit-train-batches", "2"]


def test_cyclegan_mnist_short_run_and_exact_resume(tmp_path, capsys):
    example = load_example("cyclegan_mnist")
    a, b = tmp_path / "a", tmp_path / "b"
    history = example.main(TINY + ["--out", str(a), "--epochs", "2"])
    h = history[-1]
    assert len(history) == 2 and 0.0 <= h["acc_ab"] <= 1.0 and 0.0 <= h["acc_b"] <= 1.0
    assert 0.0 < h["test_cycle_l1"] < 1.0 and np.isfinite(h["g_loss"] + h["d_loss"])
    for name in ("triplets", "loss_curve"):
        blob = (a / f"{name}.png").read_bytes()
        assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 2000, name
    example.main(TINY + ["--out", str(b), "--epochs", "1"])
    example.main(TINY + ["--out", str(b), "--epochs", "2", "--resume"])
    assert "resumed from" in capsys.readouterr().out
    sa, sb = tl.load(str(a / "checkpoint.npz")), tl.load(str(b / "checkpoint.npz"))
    assert sa["step"] == sb["step"] == 4
    for key in sa["model"]:
        np.testing.assert_array_equal(sa["model"][key].numpy(), sb["model"][key].numpy(),
                                      err_msg=key)
    assert int(sb["model"]["pool_a.count"].numpy()) == 32
