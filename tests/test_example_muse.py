"""examples/muse_kjv.py on the first 3,000 KJV verses, tiny sizes: outputs, the results
table, the word-vector files, and an exact resume (a run stopped after adversarial epoch 1
and continued with --resume ends where the uninterrupted run ends)."""

import numpy as np
import pytest
from example_runner import load_example

import tinylatent as tl

pytestmark = pytest.mark.usefixtures("offline_data")

ARGS = ["--verses", "3000", "--dim", "12", "--w2v-epochs", "2", "--epochs", "2",
        "--epoch-size", "320", "--hidden", "16", "--most-frequent", "200",
        "--eval-words", "300", "--interval", "1"]


@pytest.fixture(scope="module")
def example():
    return load_example("muse_kjv")


def test_run_outputs_and_exact_resume(example, tmp_path):
    history, rows = example.main(ARGS + ["--out", str(tmp_path / "full")])
    assert [h["epoch"] for h in history] == [1, 2]
    for name in ("a.vec", "b.vec", "results.txt", "history.json", "alignment.png",
                 "checkpoint.npz"):
        assert (tmp_path / "full" / name).stat().st_size > 100, name
    words, vectors = tl.data.load_word_vectors(tmp_path / "full" / "a.vec")
    assert vectors.shape == (len(words), 12)
    assert set(rows) >= {"adversarial", "adversarial + refinement"}
    assert any("upper bound" in name for name in rows)
    for r in rows.values():
        for method in ("nn", "csls"):
            assert 0 <= r[method]["p@1"] <= r[method]["p@5"] <= 1
    part = ["--out", str(tmp_path / "part")]
    first, _ = example.main(ARGS + part + ["--stop-after", "1"])
    assert [h["epoch"] for h in first] == [1]
    resumed, rows_resumed = example.main(ARGS + part + ["--resume"])
    assert resumed == history and rows_resumed == rows
    a = tl.load(str(tmp_path / "full" / "checkpoint.npz"))["model"]["weight"]
    b = tl.load(str(tmp_path / "part" / "checkpoint.npz"))["model"]["weight"]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
