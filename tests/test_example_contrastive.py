"""examples/contrastive.py with tiny settings on the embedded data: every model writes its
pictures and a checkpoint, and --resume continues from it."""

import pytest

import tinylatent as tl

from example_runner import load_example


pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(scope="module")
def example():
    return load_example("contrastive")


@pytest.mark.parametrize("model,pictures,first", [
    ("triplet", ("embedding", "retrieval", "loss_curve"), "raw pixels"),
    ("simclr", ("embedding", "retrieval", "similarity", "loss_curve"), "raw pixels"),
    ("deepcluster", ("embedding", "retrieval", "loss_curve"), "raw pixels"),
    ("clip", ("embedding", "retrieval", "similarity", "loss_curve"), "zero-shot"),
])
def test_short_run_writes_pictures_checkpoint_and_resumes(example, tmp_path, model, pictures,
                                                          first):
    out = tmp_path / model
    args = ["--model", model, "--epochs", "1", "--limit-train-batches", "2", "--out", str(out),
            "--limit-images", "600", "--batch-size", "32"]
    history, results = example.main(args)
    assert len(history) == 1 and first in results
    for name in pictures:
        blob = (out / f"{name}.png").read_bytes()
        assert blob[:4] == b"\x89PNG" and len(blob) > 2000, name
    assert tl.load(out / "checkpoint.npz")["epoch"] == 1
    if model != "triplet":
        return
    history, _ = example.main(args[:3] + ["2"] + args[4:] + ["--resume"])
    assert [h["epoch"] for h in history] == [1, 2]
    with pytest.raises(ValueError, match="lr"):              # a changed setting is refused
        example.main(args[:3] + ["3"] + args[4:] + ["--resume", "--lr", "0.5"])


def test_simclr_sweep_writes_table_and_picture_and_resumes(tmp_path):
    sweep = load_example("simclr_sweep")
    args = ["--batch-sizes", "16,32", "--temperatures", "0.2", "--epochs", "1",
            "--limit-train-batches", "1", "--limit-images", "100", "--out", str(tmp_path)]
    done = sweep.main(args)
    assert set(done) == {"raw pixels", "random-init h", "b16_t0.2", "b32_t0.2"}
    assert all(0.0 <= v <= 1.0 for v in done.values())
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "| 32 |" in (tmp_path / "results.txt").read_text()
    assert tl.load(tmp_path / "b32_t0.2" / "checkpoint.npz")["epoch"] == 1
    again = sweep.main(args[:1] + ["16,32,64"] + args[2:] + ["--resume"])   # one new row
    assert {k: again[k] for k in done} == done and "b64_t0.2" in again


def test_validate_scores_on_held_out_training_images_and_never_loads_the_test_split(
        example, monkeypatch):
    """--validate (settings are chosen with it): the last 10% of the training images stand in
    for the test split, which is not even loaded."""
    load_mnist, splits = tl.data.load_mnist, []
    monkeypatch.setattr(tl.data, "load_mnist",
                        lambda name, split: splits.append(split) or load_mnist(name, split))
    x, y, xv, yv = example.load("mnist", validate=True)
    assert splits == ["train"]
    full, labels = load_mnist("mnist", "train")
    n = len(full) * 9 // 10
    assert x.shape == (n, 1, 28, 28) and xv.shape == (len(full) - n, 1, 28, 28)
    assert (xv[:, 0] * 255.0 == full[n:]).all() and (yv == labels[n:]).all()
    assert (y == labels[:n]).all()
