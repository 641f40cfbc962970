"""Tests of the benchmark harness itself: the parts that decide pass/fail and what is written.

These time nothing of interest; they check that a mismatch fails, that without PyTorch the
suite compares with the recorded figures (labelled so) and skips the check with the reason,
and that results land in the right file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from benchmarks import harness


def test_machine_key_is_sanitized_cpu_model_and_cores():
    assert harness.machine_key("Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz", 8) == \
        "intel-xeon-e5-2690-v4-8c"
    assert harness.machine_key("AMD EPYC 9654 96-Core Processor", 192) == "amd-epyc-9654-192c"
    assert harness.machine_key("AMD EPYC", 2) == "amd-epyc-2c"
    assert harness.machine_key("", 4) == "unknown-cpu-4c"


def test_assert_close_passes_and_names_the_worst_element():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    harness.assert_close(a, a + 1e-7)
    b = a.copy()
    b[1, 2] += 0.5
    with pytest.raises(AssertionError, match=r"grad w.*\(1, 2\)"):
        harness.assert_close(a, b, name="grad w")
    with pytest.raises(AssertionError, match="shape"):
        harness.assert_close(a, a.T)
    with pytest.raises(AssertionError, match="non-finite"):
        harness.assert_close(np.array([np.nan, 1.0]), np.array([0.0, 1.0]))
    with pytest.raises(AssertionError, match=r"pair\[1\]"):
        harness.assert_close([a, a], [a, b], name="pair")


def _recorder(tmp_path, monkeypatch, quick=True):
    # A stand-in for PyTorch, so these run (and test the live path) without it installed.
    monkeypatch.setattr(harness, "torch", types.SimpleNamespace(__version__="stand-in"))
    monkeypatch.setenv("TINYLATENT_BENCH_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("TINYLATENT_BENCH_RECORDED", str(tmp_path / "none.json"))
    return harness.Recorder(quick=quick, threads={"requested": 1})


def test_failing_check_fails_before_any_timing(tmp_path, monkeypatch):
    rec = _recorder(tmp_path, monkeypatch)
    bench = harness.Bench(rec)
    calls = []

    def check():
        harness.assert_close(np.zeros(3), np.ones(3), name="output")

    with pytest.raises(AssertionError, match="output"):
        bench.compare("x", lambda: calls.append(1), lambda: None, check=check)
    assert calls == [] and rec.figures == []


def test_compare_records_interleaved_figure_and_writes_results(tmp_path, monkeypatch):
    rec = _recorder(tmp_path, monkeypatch)
    bench = harness.Bench(rec)
    order = []
    fig = bench.compare("tiny", lambda: order.append("tl"), lambda: order.append("pt"),
                        check=lambda: None, goal=0.5)
    assert fig["check"] == "passed" and fig["torch"]["source"] == "live"
    assert fig["ratio"] == pytest.approx(fig["tl"]["median"] / fig["torch"]["median"])
    assert fig["tl"]["n"] == fig["torch"]["n"] >= bench.min_repeats
    [(jpath, mpath)] = rec.write()
    assert jpath.parent == tmp_path and jpath.name == f"{harness.machine_key()}-cpu.json"
    data = json.loads(jpath.read_text())
    assert data["modes"]["quick"]["figures"]["tiny"]["ratio"] == fig["ratio"]
    assert data["machine"]["threads"] == {"requested": 1}
    assert "| tiny |" in mpath.read_text()


def test_without_torch_uses_recorded_figures_and_skips_check(tmp_path):
    """End to end: run a real benchmark with PyTorch disabled against a recorded file."""
    recorded = tmp_path / "recorded.json"
    name = "small graph fwd+bwd (10 ops, 8x16)"
    recorded.write_text(json.dumps({"format": 1, "modes": {"quick": {"figures": {name: {
        "name": name, "date": "2026-01-01T00:00:00+00:00",
        "torch": {"median": 1e-3, "iqr": 1e-5, "source": "live"}}}}}}))
    env = dict(os.environ, TINYLATENT_BENCH_NO_TORCH="1", TINYLATENT_BENCH_THREADS="1",
               TINYLATENT_BENCH_RESULTS_DIR=str(tmp_path),
               TINYLATENT_BENCH_RECORDED=str(recorded))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--quick",
         "benchmarks/test_bench_core.py::test_per_op_overhead"],
        cwd=str(harness.ROOT), env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 skipped" in out and "correctness check needs PyTorch" in out
    assert "recorded, not live" in out and "RECORDED, NOT LIVE" in out
    data = json.loads((tmp_path / f"{harness.machine_key()}-cpu-tl-only.json").read_text())
    fig = data["modes"]["quick"]["figures"][name]
    assert fig["torch"]["source"] == "recorded" and fig["check"] == "skipped (no PyTorch)"
    assert fig["ratio"] == pytest.approx(fig["tl"]["median"] / 1e-3)
    assert data["live_torch"] is False
    assert not (tmp_path / f"{harness.machine_key()}-cpu.json").exists()


def test_record_value_figures_render_in_their_own_table(tmp_path, monkeypatch):
    rec = _recorder(tmp_path, monkeypatch)
    bench = harness.Bench(rec)
    bench.record("VAE test loss after 1 epoch", 130.5, 129.0, unit="nats", notes="seed 1")
    bench.compare("tiny", lambda: None, lambda: None)
    table = harness.markdown_table(rec.figures)
    assert "| VAE test loss after 1 epoch | 130.5 nats | 129 nats | +1.5 nats |" in table
    assert "- VAE test loss after 1 epoch: seed 1" in table and "| tiny |" in table
    # without PyTorch, the value recorded under the same name stands in, labelled so
    monkeypatch.setattr(harness, "torch", None)
    rec.recorded = {"modes": {"quick": {"figures": {"VAE test loss after 1 epoch": rec.figures[0]}}}}
    fig = bench.record("VAE test loss after 1 epoch", 131.0)
    assert fig["torch"]["value"] == 129.0 and fig["torch"]["source"] == "recorded"
    assert "(recorded, not live)" in harness.markdown_table([fig])


def test_cuda_figures_go_to_their_own_file(tmp_path, monkeypatch):
    rec = _recorder(tmp_path, monkeypatch)
    bench = harness.Bench(rec)
    bench.compare("tiny cpu", lambda: None, lambda: None)
    bench.compare("cuda tiny", lambda: None, lambda: None)
    assert rec.devices() == ["cpu", "cuda"]
    paths = rec.write()
    names = sorted(p[0].name for p in paths)
    assert names == sorted([f"{harness.machine_key()}-cpu.json",
                            f"{harness.device_key('cuda')}-cuda.json"])
    for jpath, _ in paths:
        data = json.loads(jpath.read_text())
        assert len(data["modes"]["quick"]["figures"]) == 1
        assert data["device"] in jpath.name
