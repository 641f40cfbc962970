"""examples/language_model.py end to end on Botchan: outputs, checkpoint and an exact resume
(an interrupted run continued with --resume ends where the uninterrupted run ends)."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "language_model.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("language_model_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("model,level", [
    ("lstm", "char"),
    pytest.param("transformer", "word", marks=pytest.mark.long)])   # ~20 s: -m long
def test_run_outputs_and_exact_resume(example, tmp_path, model, level):
    args = ["--model", model, "--corpus", "botchan", "--level", level, "--steps", "4",
            "--eval-every", "2", "--sample-length", "20"]
    history, test = example.main(args + ["--out", str(tmp_path / "full")])
    assert [h["step"] for h in history] == [2, 4]
    for name in ("loss_curve.png", "samples.txt", "checkpoint.npz"):
        assert (tmp_path / "full" / name).stat().st_size > 100, name
    # the same run interrupted after step 2, then continued with --resume
    part = ["--out", str(tmp_path / "part")]
    first, _ = example.main(args + part + ["--stop-after", "2"])
    assert [h["step"] for h in first] == [2]
    resumed, test_resumed = example.main(args + part + ["--resume"])
    assert resumed == history
    assert test_resumed == test
