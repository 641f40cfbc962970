"""examples/bayes_logreg.py: a smoke run with an exact resume; (-m long) the README figure:
the mean-field VI predictive is as accurate as Laplace's with a test NLL no worse than it +
0.01, and the reparameterised gradient has lower variance than the score function's."""
import pytest
from example_runner import load_example

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def example():
    return load_example("bayes_logreg")


def test_smoke_and_exact_resume(example, tmp_path):
    fast = ["--variance-repeats", "4"]
    full = example.main(["--steps", "200", "--out", str(tmp_path / "full")] + fast)
    for name in ("predictive.png", "grad_variance.png", "checkpoint.npz"):
        assert (tmp_path / "full" / name).stat().st_size > 100, name
    part = ["--out", str(tmp_path / "part")]
    example.main(["--steps", "100"] + part + fast)
    resumed = example.main(["--steps", "200", "--resume"] + part + fast)
    assert resumed["elbo"] == full["elbo"]
    assert resumed["mean-field VI"] == full["mean-field VI"]


@pytest.mark.long
def test_readme_figure(example, tmp_path):
    r = example.main(["--out", str(tmp_path)])
    assert r["mean-field VI"]["accuracy"] >= r["Laplace"]["accuracy"] - 0.01, r
    assert r["mean-field VI"]["nll"] <= r["Laplace"]["nll"] + 0.01, r
    v = r["grad_variance"]
    assert all(a < b for a, b in zip(v["reparameterised"], v["score function"])), v
