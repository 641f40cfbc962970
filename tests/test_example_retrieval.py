"""examples/retrieval.py end to end with tiny settings (embedded MNIST and KJV): the query
picture, and both autoencoders resumed bit for bit equal to a straight run."""
import numpy as np
import pytest

import tinylatent as tl

from example_runner import load_example


pytestmark = pytest.mark.usefixtures("offline_data")


def test_queries_picture_and_exact_resume(tmp_path, capsys):
    example = load_example("retrieval")
    common = ["--limit-train", "256", "--code-dim", "8", "--ks", "1,10"]
    example.main(common + ["--epochs", "2", "--out", str(tmp_path / "a")])
    example.main(common + ["--epochs", "1", "--out", str(tmp_path / "b")])
    example.main(common + ["--epochs", "2", "--out", str(tmp_path / "b"), "--resume"])
    out = capsys.readouterr().out
    assert "P@10" in out and "BoW-AE codes (8), cosine" in out
    blob = (tmp_path / "b" / "mnist_queries.png").read_bytes()
    assert blob[:4] == b"\x89PNG" and len(blob) > 2000
    for name in ("mnist_ae", "kjv_ae"):
        a = tl.load(str(tmp_path / "a" / name / "checkpoint.npz"))
        b = tl.load(str(tmp_path / "b" / name / "checkpoint.npz"))
        assert a["epoch"] == b["epoch"] == 2
        assert [dict(h) for h in a["history"]] == [dict(h) for h in b["history"]]
        for key in a["model"]:
            np.testing.assert_array_equal(a["model"][key].numpy(), b["model"][key].numpy(),
                                          err_msg=f"{name} {key}")
