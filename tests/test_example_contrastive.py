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
