"""examples/lda_kjv.py: a smoke run with an exact resume (the README figure is the default
run: `python examples/lda_kjv.py`, and tests/test_lda.py -m long checks the 5% claim)."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "lda_kjv.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("lda_kjv_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_and_exact_resume(example, tmp_path):
    args = ["--topics", "3", "--docs", "60", "--no-sklearn"]
    full = example.main(args + ["--iters", "3", "--out", str(tmp_path / "full")])
    for name in ("book_topics.png", "bound.png", "topics.txt", "checkpoint.npz"):
        assert (tmp_path / "full" / name).stat().st_size > 100, name
    part = ["--out", str(tmp_path / "part")]
    example.main(args + part + ["--iters", "1"])
    resumed = example.main(args + part + ["--iters", "3", "--resume"])
    assert resumed == full
