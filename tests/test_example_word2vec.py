"""examples/word2vec_kjv.py on the first 2,000 KJV verses: outputs, checkpoint and an exact
resume (a run stopped after epoch 1 and continued with --resume ends where the uninterrupted
run ends)."""

import numpy as np
import pytest
from example_runner import load_example


@pytest.fixture(scope="module")
def example():
    return load_example("word2vec_kjv")


def test_run_outputs_and_exact_resume(example, tmp_path):
    args = ["--verses", "2000", "--dim", "16", "--epochs", "2", "--architecture", "cbow"]
    history, scores = example.main(args + ["--out", str(tmp_path / "full")])
    assert [h["epoch"] for h in history] == [1, 2] and history[1]["loss"] < history[0]["loss"]
    for name in ("neighbours.txt", "analogies.txt", "projection.png", "checkpoint.npz"):
        assert (tmp_path / "full" / name).stat().st_size > 100, name
    assert 0 <= scores["all"][0] <= 1
    part = ["--out", str(tmp_path / "part")]
    first, _ = example.main(args + part + ["--stop-after", "1"])
    assert [h["epoch"] for h in first] == [1]
    resumed, scores_resumed = example.main(args + part + ["--resume"])
    assert [h["loss"] for h in resumed] == [h["loss"] for h in history]
    assert scores_resumed == scores
    import tinylatent as tl
    a = tl.load(str(tmp_path / "full" / "checkpoint.npz"))["model"]["weight"]
    b = tl.load(str(tmp_path / "part" / "checkpoint.npz"))["model"]["weight"]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
