"""The recipe twins' checkpoints (benchmarks/twin_checkpoint.py): a run interrupted after a
checkpoint and resumed prints and returns exactly what the uninterrupted run does, for both
loops (per-epoch: MADE / NADE; per-step: RealNVP / Glow / MAF). Tiny models, a few seconds."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.harness import torch

pytestmark = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")   # the embedded subset, never the network


class Interrupted(Exception):
    pass


def interrupted_then_resumed(run, path, stop_after: int, capsys):
    """run(checkpoint, resume) -> results: straight through, then stopped after `stop_after`
    checkpoint saves and resumed; both runs' results and printed tables."""
    from benchmarks.twin_checkpoint import TwinCheckpoint
    straight = run(TwinCheckpoint(None, {}), False)
    out_straight = capsys.readouterr().out
    ckpt = TwinCheckpoint(str(path), {"test": "twins"})
    save, count = ckpt.save, [0]

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        count[0] += 1
        if count[0] == stop_after:
            raise Interrupted
    ckpt.save = save_then_stop
    with pytest.raises(Interrupted):
        run(ckpt, False)
    capsys.readouterr()
    resumed = run(TwinCheckpoint(str(path), {"test": "twins"}), True)
    out_resumed = capsys.readouterr().out
    return straight, resumed, out_straight, out_resumed


def _without_times(text: str) -> list:
    """The printed table (headers and rows) without the rows' timing columns (the last two)
    and without the resume notice."""
    return [" ".join(line.split()[:-2]) if line[:5].strip().isdigit() else line
            for line in text.splitlines() if not line.startswith("resuming from")]


@pytest.mark.parametrize("stop_after", [1, 3])      # inside seed 0; inside seed 1
def test_epoch_twin_resumes_exactly(tmp_path, capsys, stop_after):
    from benchmarks.made_reference import SideBySide, run_table

    def run(checkpoint, resume):
        return run_table(SideBySide, "MADE", 2, [0, 1], checkpoint, resume, hidden=8,
                         num_masks=2, n_test=20, batch_size=500)
    a, b, out_a, out_b = interrupted_then_resumed(run, tmp_path / "made.npz", stop_after, capsys)
    np.testing.assert_array_equal(a, b)
    assert _without_times(out_a) == _without_times(out_b)
    assert "resuming from" in out_b


@pytest.mark.parametrize("stop_after", [1, 3])
def test_step_twin_resumes_exactly(tmp_path, capsys, stop_after):
    from benchmarks.flow_reference import run_table
    from benchmarks.maf_reference import SideBySide

    def run(checkpoint, resume):
        return run_table(lambda seed: SideBySide(seed, hidden=8, steps=1, n_test=20),
                         "MAF", 4, 2, [0, 1], checkpoint, resume)
    a, b, out_a, out_b = interrupted_then_resumed(run, tmp_path / "maf.npz", stop_after, capsys)
    np.testing.assert_array_equal(a, b)
    assert _without_times(out_a) == _without_times(out_b)


def test_resume_refuses_another_run(tmp_path, capsys):
    from benchmarks.flow_reference import run_table
    from benchmarks.maf_reference import SideBySide
    from benchmarks.twin_checkpoint import TwinCheckpoint

    def make(seed):
        return SideBySide(seed, hidden=8, steps=1, n_test=20)
    path = str(tmp_path / "maf.npz")
    run_table(make, "MAF", 2, 2, [0], TwinCheckpoint(path, {"steps": 2, "lr": 1e-3}))
    with pytest.raises(SystemExit, match="lr: 0.001 -> 0.01"):
        run_table(make, "MAF", 2, 2, [0], TwinCheckpoint(path, {"steps": 2, "lr": 1e-2}), True)
    with pytest.raises(SystemExit, match="needs --checkpoint"):
        run_table(make, "MAF", 2, 2, [0], TwinCheckpoint(None, {}), True)
