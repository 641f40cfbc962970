"""Noisy Student (issue 22 item 6): the pieces exactly (pseudo-labels and their confidence
threshold, stochastic depth's train / eval semantics, soft targets = labels when one-hot),
and (-m long) the README figure: on MNIST with 500 labels the noised student beats its
teacher by >= 1 point of test accuracy, and beats the students of the run without noise."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import NoisyStudent

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "noisy_student.py"


def test_pseudo_labels_threshold_and_soft_targets():
    tl.manual_seed(0)
    m = NoisyStudent(in_features=6, hidden_features=8, out_features=3)
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    probs, keep_all = m.pseudo_label(x, soft=True)
    assert probs.shape == (50, 3) and np.allclose(probs.sum(1), 1, atol=1e-6)
    assert keep_all.all()
    tau = float(np.median(probs.max(1)))
    hard, keep = m.pseudo_label(x, soft=False, threshold=tau)
    np.testing.assert_array_equal(hard, probs.argmax(1))
    np.testing.assert_array_equal(keep, probs.max(1) >= tau)
    assert m.training  # pseudo-labelling does not leave the model in eval mode
    m.eval()  # deterministic: soft one-hot targets give the integer-label loss
    y = hard
    a, _ = m.loss((tl.tensor(x), tl.tensor(y)))
    b, _ = m.loss((tl.tensor(x), tl.tensor(np.eye(3, dtype=np.float32)[y])))
    assert abs(a.item() - b.item()) < 1e-6


def test_stochastic_depth_train_and_eval():
    tl.manual_seed(0)
    m = NoisyStudent(in_features=5, hidden_features=4, num_blocks=1, stochastic_depth=1.0,
                     dropout=0.0)
    x = tl.tensor(np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32))
    stem = m.stem(x).relu()
    m.train()  # survival probability 0: the block never runs in training
    np.testing.assert_allclose(m.encode(x).detach().numpy(), stem.detach().numpy())
    m2 = NoisyStudent(in_features=5, hidden_features=4, num_blocks=2, stochastic_depth=0.5)
    m2.eval()  # evaluation: h + p_l f_l(h), p = (0.75, 0.5)
    h = m2.stem(x).relu()
    for block, p in zip(m2.blocks, (0.75, 0.5)):
        h = h + p * block(h)
    np.testing.assert_allclose(m2.encode(x).detach().numpy(), h.detach().numpy(), rtol=1e-6)


@pytest.mark.long
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="issue 22 goal not met yet: measured teacher 94.8% -> students "
                          "94.4 / 95.5 / 94.7% (best +0.7 points; equal-size students: "
                          "95.5 / 95.1 / 95.2%)")
def test_readme_figure_student_beats_teacher(tmp_path):
    spec = importlib.util.spec_from_file_location("noisy_student_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runs = module.main(["--out", str(tmp_path)])
    noisy, plain = runs["noisy"], runs["no noise"]
    assert noisy[-1]["accuracy"] >= noisy[0]["accuracy"] + 0.01, runs
    assert noisy[-1]["accuracy"] > plain[-1]["accuracy"], runs


def test_example_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("noisy_student_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = ["--steps", "5", "--student-steps", "5", "--iterations", "1", "--limit-unlabelled",
            "100", "--hidden", "32", "--student-hidden", "48", "--out", str(tmp_path)]
    runs = module.main(args)
    assert (tmp_path / "accuracy.png").stat().st_size > 100
    assert [r["kept"] for r in runs["noisy"]] == [0, 100]
    assert module.main(args + ["--resume"]) == runs
