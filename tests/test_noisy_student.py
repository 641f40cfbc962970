"""Noisy Student (issue 22 item 6): the pieces exactly (pseudo-labels and their confidence
threshold, stochastic depth's train / eval semantics, soft targets = labels when one-hot),
and (-m long) the README figures: with 500 labels (Fashion-MNIST: 59,500 unlabelled, 10,000
test; embedded MNIST: 3,500 / 1,000) every noised student beats the teacher by >= 1 point of
test accuracy, and the last beats the last of the run without noise."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import NoisyStudent
from tinylatent.models.noisy_student import balance_pseudo_labels, train_classifier

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "noisy_student.py"
# the README's Fashion-MNIST command: equal-size students, balanced hard pseudo-labels, 1 : 1
FASHION = ["--dataset", "fashion-mnist", "--student-hidden", "512", "--balance",
           "--unlabelled-ratio", "1"]


def _example():
    spec = importlib.util.spec_from_file_location("noisy_student_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_goal(runs):
    noisy, plain = runs["noisy"], runs["no noise"]
    assert noisy[-1]["accuracy"] > plain[-1]["accuracy"], runs
    for student in noisy[1:]:  # the goal holds at every iteration
        assert student["accuracy"] >= noisy[0]["accuracy"] + 0.01, runs


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


def test_balance_keeps_the_most_confident_and_duplicates_the_rare():
    # teacher classes: 0 (five images, one not kept), 1 (one image), 2 (none)
    conf = np.array([0.9, 0.5, 0.8, 0.6, 0.95, 0.7])
    cls = np.array([0, 0, 0, 0, 0, 1])
    probs = np.zeros((6, 3))
    probs[np.arange(6), cls] = conf
    probs[np.arange(6), (cls + 1) % 3] = 1 - conf
    keep = np.array([True, True, True, True, False, True])
    idx = balance_pseudo_labels(probs, keep, per_class=3)
    np.testing.assert_array_equal(idx, [0, 2, 3, 5, 5, 5])  # 0.9, 0.8, 0.6; not 4 (dropped)
    assert len(balance_pseudo_labels(probs, keep)) == 5 // 3 * 2  # per_class = kept // C


def test_student_batches_hold_the_labelled_share():
    x = np.arange(40, dtype=np.float32).reshape(40, 1, 1, 1)  # an image's value is its row
    seen = []

    def record(batch, generator):
        seen.append(batch.reshape(-1).copy())
        return batch
    model = NoisyStudent(in_features=1, hidden_features=4, out_features=2)
    train_classifier(model, x, np.zeros(40, dtype=np.int64), steps=5, batch_size=16,
                     augment=record, labelled=10, unlabelled_ratio=3.0)
    assert all((b < 10).sum() == 4 for b in seen) and len(seen) == 5  # 16 / (1 + 3)


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


def _not_met(reason):
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason="issue 22 goal "
                             "(every student >= teacher + 1 point) not met: " + reason)


@pytest.mark.long
@pytest.mark.parametrize("argv", [
    pytest.param([], id="mnist", marks=_not_met(
        "teacher 94.8% -> students 95.2 / 95.8 / 96.0% (+0.4 / +1.0 / +1.2; the first falls "
        "short); without noise 88.4 -> 88.9 / 87.8 / 90.2%")),
    pytest.param(FASHION, id="fashion-mnist", marks=_not_met(
        "teacher 76.57% -> students 77.54 / 78.28 / 77.41% (+0.97 / +1.71 / +0.84); without "
        "noise 78.25 -> 78.80 / 78.50 / 78.91%, above the noised run at every stage")),
])
def test_readme_figure_student_beats_teacher(argv, tmp_path):
    _assert_goal(_example().main(argv + ["--out", str(tmp_path)]))


def test_example_smoke(tmp_path):
    module = _example()
    args = ["--dataset", "mnist", "--steps", "5", "--student-steps", "5", "--iterations", "1",
            "--limit-unlabelled", "100", "--hidden", "32", "--student-hidden", "48",
            "--threshold", "0", "--balance", "--soft", "--out", str(tmp_path)]
    runs = module.main(args)
    assert (tmp_path / "accuracy.png").stat().st_size > 100
    kept = [r["kept"] for r in runs["noisy"]]  # balanced: 10 a class, for those present
    assert kept[0] == 0 and 0 < kept[1] <= 100 and kept[1] % 10 == 0
    assert module.main(args + ["--resume"]) == runs
