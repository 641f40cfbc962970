"""Noisy Student (issue 22 item 6): the pieces exactly (pseudo-labels and their confidence
threshold, stochastic depth's train / eval semantics, soft targets = labels when one-hot,
per-iteration student configs, the validation rule for the number of iterations), and
(-m long) the README figures: with 500 labels (Fashion-MNIST: 54,500 unlabelled, 5,000
validation, 10,000 test) every noised student beats the first teacher by >= 1 point of test
accuracy and the last beats the last of the run without noise (met, seeds 0 and 1); with the
number of iterations chosen on validation by a rule fixed before reading test (iterate while
the student gains >= 1 validation point on its own teacher: one iteration on both seeds),
every kept student beats its own teacher by >= 1 test point (met); all three students doing
so (Xie et al.'s iteration run three times) is not met after the first student (nor with
the CNN option, --arch cnn, whose figures the README row gives: it is not the default)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models import NoisyStudent
from tinylatent.models.noisy_student import (NoisyStudentConfig, balance_pseudo_labels,
                                             iterations_by_validation, self_train,
                                             train_classifier)

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "noisy_student.py"


def _example():
    spec = importlib.util.spec_from_file_location("noisy_student_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_self_train_grows_students_and_the_ablation_drops_all_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 1, 2, 3)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    cfg = NoisyStudentConfig(in_features=6, hidden_features=4, out_features=3)
    widths = [NoisyStudentConfig(in_features=6, hidden_features=h, out_features=3)
              for h in (5, 7)]  # students wider than the teacher, one per iteration
    for noise in (True, False):
        runs = self_train(x[:10], y, x[10:], cfg, iterations=2, noise=noise, steps=2,
                          student_config=widths)
        got = [(r["model"].config.hidden_features, r["model"].config.dropout,
                r["model"].config.stochastic_depth) for r in runs]
        assert got == [(4, 0.5 * noise, 0.2 * noise), (5, 0.5 * noise, 0.2 * noise),
                       (7, 0.5 * noise, 0.2 * noise)]
    with pytest.raises(ValueError, match="2 configs for 3 iterations"):
        self_train(x[:10], y, x[10:], cfg, iterations=3, steps=2, student_config=widths)


def test_iterations_by_validation_stops_at_the_first_small_gain():
    # 0.7874 -> 0.8152 (+2.78 points) -> 0.8228 (+0.76): one iteration kept at 1 point
    assert iterations_by_validation([0.7874, 0.8152, 0.8228, 0.84], 0.01) == 1
    assert iterations_by_validation([0.80, 0.81, 0.82], 0.01) == 2  # exactly +1 point counts
    assert iterations_by_validation([0.80, 0.805, 0.90], 0.01) == 0  # later gains ignored
    assert iterations_by_validation([0.80], 0.01) == 0
    assert iterations_by_validation([0.80, 0.805, 0.806], 0.0) == 2


def test_conv_stem_takes_images_or_flat_pixels():
    tl.manual_seed(0)
    m = NoisyStudent(hidden_channels=(2, 4), hidden_features=8, image_size=12)
    assert [type(c).__name__ for c in m.conv] == ["Conv2d", "ReLU", "MaxPool2d"] * 2
    assert m.stem.weight.shape[1] == 4 * 3 * 3  # 12 -> 6 -> 3 pixels a side
    m.eval()
    x = np.random.default_rng(0).random((5, 1, 12, 12)).astype(np.float32)
    a = m(tl.tensor(x)).detach().numpy()
    assert a.shape == (5, 10)
    np.testing.assert_allclose(m(tl.tensor(x.reshape(5, -1))).detach().numpy(), a, rtol=1e-6)


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


_RUNS = {}


def _readme_runs(seed, tmp_path_factory):
    """The README command for one seed, run once for both goals."""
    if seed not in _RUNS:
        out = tmp_path_factory.mktemp(f"noisy_student_seed{seed}")
        _RUNS[seed] = _example().main(["--seed", str(seed), "--out", str(out)])
    return _RUNS[seed]


def _not_met(reason):
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason="issue 22 goal "
                             "(every student >= teacher + 1 point) not met: " + reason)


@pytest.mark.long
@pytest.mark.parametrize("seed", [0, 1])
def test_readme_figure_students_beat_the_first_teacher(seed, tmp_path_factory):
    # teacher 78.44% -> students 80.77 / 81.00 / 80.60% (seed 0), 78.50% -> 80.47 / 81.00 /
    # 80.52% (seed 1); without noise the last student has 77.88% / 79.57%
    runs = _readme_runs(seed, tmp_path_factory)
    noisy, plain = runs["noisy"], runs["no noise"]
    for student in noisy[1:]:
        assert student["test"] >= noisy[0]["test"] + 0.01, runs
    assert noisy[-1]["test"] > plain[-1]["test"], runs


@pytest.mark.long
@pytest.mark.parametrize("seed", [0, 1])
def test_readme_figure_iterations_chosen_on_validation_each_gain_a_point(seed,
                                                                        tmp_path_factory):
    # the rule: iterate while the student gains >= 1 validation point on its own teacher;
    # both seeds keep one (validation +2.74 then +0.76, +2.12 then +0.00), on test +2.33 / +1.97
    noisy = _readme_runs(seed, tmp_path_factory)["noisy"]
    k = iterations_by_validation([r["val"] for r in noisy], 0.01)
    assert k >= 1, noisy
    for teacher, student in zip(noisy[:k], noisy[1:k + 1]):
        assert student["test"] >= teacher["test"] + 0.01, noisy


@pytest.mark.long
@pytest.mark.parametrize("seed", [0, 1])
@_not_met("three iterations regardless of validation (each student >= its own teacher + 1 "
          "point): test gains +2.33 / +0.23 / -0.40 points (seed 0), +1.97 / +0.53 / -0.48 "
          "(seed 1)")
def test_readme_figure_each_student_beats_its_own_teacher(seed, tmp_path_factory):
    noisy = _readme_runs(seed, tmp_path_factory)["noisy"]
    for teacher, student in zip(noisy, noisy[1:]):
        assert student["test"] >= teacher["test"] + 0.01, noisy


def test_example_smoke(tmp_path):
    module = _example()
    args = ["--dataset", "mnist", "--val", "200", "--steps", "5", "--student-steps", "5",
            "--iterations", "1", "--limit-unlabelled", "100", "--hidden", "32",
            "--student-hidden", "48", "--out", str(tmp_path)]
    runs = module.main(args)
    assert (tmp_path / "accuracy.png").stat().st_size > 100
    kept = [r["kept"] for r in runs["noisy"]]  # balanced: 10 a class, for those present
    assert kept[0] == 0 and 0 < kept[1] <= 100 and kept[1] % 10 == 0
    assert module.main(args + ["--resume"]) == runs
