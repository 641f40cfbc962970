"""examples/language_model.py end to end on Botchan: outputs, checkpoint and an exact resume
(an interrupted run continued with --resume ends where the uninterrupted run ends)."""

import pytest
from example_runner import load_example


@pytest.fixture(scope="module")
def example():
    return load_example("language_model")


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


# The README's figures: the example's default recipes, run as `pytest -m long` (minutes each;
# the thresholds are the unigram of the validation split minus a margin well inside what
# these runs measured, printed with -s).
RUNS = {("lstm", "kjv", "word"): (1200, 300, 1.5),           # measured 3.928 vs 5.707
        ("lstm", "botchan", "char"): (1500, 300, 1.3),        # measured 1.494 vs 3.095
        ("transformer", "botchan", "char"): (1500, 250, 1.2),  # measured 1.708 vs 3.095
        ("transformer", "kjv", "word"): (800, 200, 1.4)}      # measured 4.017 vs 5.707


@pytest.mark.long
@pytest.mark.parametrize("model,corpus,level", sorted(RUNS))
def test_readme_figure(example, tmp_path, model, corpus, level):
    import math

    from tinylatent.data.text import language_model_corpus
    from tinylatent.models.language_model import unigram_nll
    steps, every, margin = RUNS[(model, corpus, level)]
    history, test = example.main(["--model", model, "--corpus", corpus, "--level", level,
                                  "--steps", str(steps), "--eval-every", str(every),
                                  "--out", str(tmp_path)])
    data = language_model_corpus(corpus, level)
    unigram = unigram_nll(data.train, data.valid[1:], len(data.tokenizer))
    valid = history[-1]["valid"]
    msg = (f"{model} {corpus}/{level}: valid {valid:.3f} nats (ppl {math.exp(valid):.2f}), "
           f"test {test:.3f}, unigram {unigram:.3f} (ppl {math.exp(unigram):.2f})")
    print(msg)
    assert valid < unigram - margin, msg
