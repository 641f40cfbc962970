"""examples/hessian_sam.py: a smoke run with an exact resume; (-m long) the README figure:
SGD and SAM trained to the same training loss, SAM's top Hessian eigenvalue and trace lower."""
import pytest
from example_runner import load_example

SMALL = ["--train", "256", "--batch-size", "64", "--hessian-examples", "64",
         "--lanczos-steps", "4", "--hutchinson", "3", "--slq-runs", "1"]


@pytest.fixture(scope="module")
def example():
    return load_example("hessian_sam")


def test_smoke_and_exact_resume(example, tmp_path):
    full = example.main(SMALL + ["--max-epochs", "2", "--out", str(tmp_path / "full")])
    assert (tmp_path / "full" / "density.png").stat().st_size > 100
    assert full["sgd"]["epochs"] == full["sam"]["epochs"] == 2
    part = ["--out", str(tmp_path / "part")]
    example.main(SMALL + part + ["--max-epochs", "1"])
    resumed = example.main(SMALL + part + ["--max-epochs", "2", "--resume"])
    for name in ("sgd", "sam"):
        assert resumed[name]["train_loss"] == full[name]["train_loss"], name
        assert resumed[name]["top_eigenvalue"] == pytest.approx(full[name]["top_eigenvalue"],
                                                                rel=1e-6)


@pytest.mark.long
def test_readme_figure_sam_is_flatter(example, tmp_path):
    r = example.main(["--out", str(tmp_path)])
    sgd, sam = r["sgd"], r["sam"]
    assert max(sgd["train_loss"], sam["train_loss"]) <= 0.05, r
    assert sam["top_eigenvalue"] < sgd["top_eigenvalue"], r
    assert sam["trace"] < sgd["trace"], r
