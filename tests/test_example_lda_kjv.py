"""examples/lda_kjv.py: a smoke run with an exact resume (the README figure is the default
run: `python examples/lda_kjv.py`, and tests/test_lda.py -m long checks the 5% claim)."""
import pytest
from example_runner import load_example


@pytest.fixture(scope="module")
def example():
    return load_example("lda_kjv")


def test_smoke_and_exact_resume(example, tmp_path):
    args = ["--topics", "3", "--docs", "60", "--no-sklearn"]
    full = example.main(args + ["--iters", "3", "--out", str(tmp_path / "full")])
    for name in ("book_topics.png", "bound.png", "topics.txt", "checkpoint.npz"):
        assert (tmp_path / "full" / name).stat().st_size > 100, name
    part = ["--out", str(tmp_path / "part")]
    example.main(args + part + ["--iters", "1"])
    resumed = example.main(args + part + ["--iters", "3", "--resume"])
    assert resumed == full
