"""examples/hmm_kjv.py: a smoke run with an exact resume, and (-m long) the README figure:
a 32-state character HMM beats the unigram in held-out bits per character on the KJV."""
import pytest
from example_runner import load_example


@pytest.fixture(scope="module")
def example():
    return load_example("hmm_kjv")


def test_smoke_and_exact_resume(example, tmp_path):
    args = ["--states", "4", "--train-chars", "5000", "--test-chars", "2000"]
    full = example.main(args + ["--iters", "4", "--out", str(tmp_path / "full")])
    for name in ("loglik.png", "states.txt", "checkpoint.npz"):
        assert (tmp_path / "full" / name).stat().st_size > 100, name
    assert all(b >= a - 1e-12 for a, b in zip(full["history"], full["history"][1:]))
    part = ["--out", str(tmp_path / "part")]
    example.main(args + part + ["--iters", "2"])
    resumed = example.main(args + part + ["--iters", "4", "--resume"])
    assert resumed == full


@pytest.mark.long
def test_readme_figure_hmm_beats_unigram(example, tmp_path):
    r = example.main(["--out", str(tmp_path)])  # defaults: 32 states, 60 EM iterations
    assert r["hmm"] < r["unigram"] - 0.5, r
