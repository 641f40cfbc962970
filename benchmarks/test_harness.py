"""Tests of the benchmark harness itself: the parts that decide pass/fail and what is written.

These time nothing of interest; they check that a mismatch fails, that without PyTorch the
suite compares with the recorded figures (labelled so) and skips the check with the reason,
and that results land in the right file.
"""
from __future__ import annotations

import json
import statistics
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
    # a model name without a model number takes the family / model ids (Zen 3 vs Zen 5 VMs)
    assert harness.machine_key("AMD EPYC", 2, {"cpu family": "26", "model": "2"}) == \
        "amd-epyc-f26m2-2c"
    assert harness.machine_key("Intel(R) Xeon(R) CPU @ 2.20GHz", 4,
                               {"cpu family": "6", "model": "85"}) == "intel-xeon-f6m85-4c"
    assert harness.machine_key("AMD EPYC 7B13 64-Core Processor", 2,
                               {"cpu family": "25", "model": "1"}) == "amd-epyc-7b13-2c"
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
    assert data["machine"]["threads"] == {"requested": 1, "measured_at": [1]}
    assert fig["by_threads"]["1"]["ratio"] == fig["ratio"] and "cpu_wait_share" in fig["tl"]
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


# ------------------------------------------------------------------------------ threads
def test_thread_plan_defaults_are_honest(monkeypatch):
    monkeypatch.delenv("TINYLATENT_BENCH_THREADS", raising=False)
    # a quiet machine with passive waiting: the real core count (and 1 in full mode)
    assert harness.thread_plan(True, cores=2, load1=0.1, passive=True) == ([2], [])
    assert harness.thread_plan(False, cores=4, load1=0.1, passive=True) == ([1, 4], [])
    # busy: 1 thread, said loudly
    counts, warn = harness.thread_plan(False, cores=2, load1=3.8, passive=True)
    assert counts == [1] and "busy" in warn[0] and "TINYLATENT_BENCH_THREADS=2" in warn[0]
    # spin-waiting runtimes: 1 thread, said loudly
    counts, warn = harness.thread_plan(True, cores=8, load1=0.0, passive=False)
    assert counts == [1] and "spin" in warn[0]
    # the user's choice wins
    assert harness.thread_plan(True, requested="2,1", cores=2, load1=9.0) == ([1, 2], [])
    with pytest.raises(ValueError, match="TINYLATENT_BENCH_THREADS"):
        harness.parse_threads("two")


def test_passive_waiting_is_set_before_numpy_and_torch_load():
    """A fresh interpreter importing the harness first gets passive waits in effect."""
    code = ("import os, benchmarks.harness as h; s = h.threadenv.state(); "
            "print(s['passive_waits_effective'], os.environ['OMP_WAIT_POLICY'], "
            "os.environ['GOMP_SPINCOUNT'])")
    env = {k: v for k, v in os.environ.items()
           if k not in harness.threadenv.PASSIVE and k != "TINYLATENT_BENCH_ACTIVE_WAIT"}
    out = subprocess.run([sys.executable, "-c", code], cwd=str(harness.ROOT), env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "PASSIVE", "0"]


def test_run_queue_wait_is_measured():
    before = harness.sched_ns()
    if before is None:
        pytest.skip("no /proc/self/task/*/schedstat on this system")
    sum(i * i for i in range(200_000))
    after = harness.sched_ns()
    assert after[0] > before[0] and after[1] >= before[1]


# ------------------------------------------------------------------------------ where results go
def test_a_users_run_writes_to_a_git_ignored_directory(monkeypatch):
    monkeypatch.delenv("TINYLATENT_BENCH_RESULTS_DIR", raising=False)
    jpath, mpath = harness.results_paths("cpu")
    assert jpath.parent == harness.LOCAL_RESULTS_DIR
    git = subprocess.run(["git", "check-ignore", "-q", str(jpath)], cwd=str(harness.ROOT))
    if git.returncode == 128:
        pytest.skip("not a git checkout")
    assert git.returncode == 0, f"{jpath} is not git-ignored"
    # a deliberate record goes to the committed directory
    assert harness.results_paths("cpu", directory=harness.RESULTS_DIR)[0].parent == \
        harness.RESULTS_DIR


def test_closest_recorded_machine(tmp_path):
    for name in ("amd-epyc-2c", "intel-xeon-8c", "intel-core-i7-2c"):
        (tmp_path / f"{name}-cpu.json").write_text("{}")
    (tmp_path / "intel-xeon-2c-cpu-tl-only.json").write_text("{}")
    pick = lambda key: harness.closest_recorded(key, "cpu", tmp_path).name  # noqa: E731
    assert pick("intel-xeon-2c") == "intel-core-i7-2c-cpu.json"     # same vendor and cores
    assert pick("amd-epyc-9654-2c") == "amd-epyc-2c-cpu.json"
    assert pick("amd-epyc-f25m1-2c") == "amd-epyc-2c-cpu.json"     # another family: closest
    assert pick("arm-neoverse-8c") == "intel-xeon-8c-cpu.json"      # same core count
    assert harness.closest_recorded("x-2c", "cuda", tmp_path) is None


def test_a_figure_missing_from_this_machines_record_comes_from_the_closest_other(
        tmp_path, monkeypatch):
    """A partial record of this machine (some files only) does not turn the other rows into
    n/a: their PyTorch figure comes from the closest other machine's record, named."""
    def record(key, names):
        figs = {n: {"name": n, "date": "d", "threads": 1,
                    "torch": {"median": 2.0, "source": "live"}} for n in names}
        (tmp_path / f"{key}-cpu.json").write_text(json.dumps(
            {"format": 1, "modes": {"full": {"figures": figs}}}))
    monkeypatch.setattr(harness, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(harness, "machine_key", lambda *a, **k: "amd-epyc-f25m1-2c")
    monkeypatch.delenv("TINYLATENT_BENCH_RECORDED", raising=False)
    record("amd-epyc-f25m1-2c", ["conv"])
    record("amd-epyc-f26m2-2c", ["conv", "flow"])
    rec = harness.Recorder(quick=False, threads={"requested": 1}, results_dir=tmp_path / "o")
    own, other = rec.recorded_torch("conv"), rec.recorded_torch("flow")
    assert own["recorded_machine"].endswith("amd-epyc-f25m1-2c-cpu.json")
    assert "amd-epyc-f26m2-2c-cpu.json (closest recorded machine with this figure" in \
        other["recorded_machine"]
    assert rec.recorded_torch("absent") is None


def test_without_torch_or_record_the_table_says_no_comparison_was_possible(tmp_path,
                                                                           monkeypatch):
    monkeypatch.setattr(harness, "torch", None)
    monkeypatch.setenv("TINYLATENT_BENCH_RECORDED", str(tmp_path / "absent.json"))
    rec = harness.Recorder(quick=True, threads={"requested": 1}, results_dir=tmp_path)
    harness.Bench(rec).compare("tiny", lambda: None)
    [(jpath, mpath)] = rec.write()
    text = mpath.read_text()
    assert "No live comparison was possible" in text
    assert "not measured (no PyTorch, nothing recorded)" in text


# ------------------------------------------------------------------------------ the method
def _busy_reason() -> str | None:
    if os.environ.get("TINYLATENT_BENCH_FORCE_TIMING_TESTS", "").strip() not in ("", "0"):
        return None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    cores = harness.usable_cores()
    if load >= 0.5 * cores:
        return (f"timing-method test skipped under load (1-min load {load:.1f} on {cores} "
                "cores): other processes, not the method, would decide it; "
                "TINYLATENT_BENCH_FORCE_TIMING_TESTS=1 runs it anyway")
    return None


@pytest.mark.skipif(harness.torch is None, reason=f"needs PyTorch ({harness.torch_missing_reason})")
def test_interleaving_with_tinylatent_leaves_pytorch_median_unchanged():
    """The measurement method, not any library's speed: a PyTorch op timed alone and timed
    in alternation with a tinylatent op (both at the machine's thread count) has the same
    median within 15%. Standalone and interleaved measurements themselves alternate, round
    by round, so drift of the machine hits both; the medians of the rounds are compared."""
    reason = _busy_reason()
    if reason:
        pytest.skip(reason)
    import tinylatent as tl
    torch = harness.torch
    n = harness.usable_cores()
    harness.set_threads(n)
    rng = np.random.default_rng(0)
    z_np = rng.standard_normal((512, 128)).astype(np.float32)
    z_pt, z_tl = torch.from_numpy(z_np), tl.tensor(z_np)

    def torch_fn():             # the NT-Xent core: similarity GEMM + row logsumexp
        return torch.logsumexp(z_pt @ z_pt.T / 0.5, dim=1)

    def tl_fn():
        return (z_tl @ z_tl.T / 0.5).logsumexp(axis=1)

    numbers = [harness._calibrate(fn, 0.01, 0.05)[0] for fn in (tl_fn, torch_fn)]
    alone, mixed = [], []
    for _ in range(5):
        [pt] = harness.measure_alternating([torch_fn], numbers[1:], 3, 3, 3, 0.0)
        alone.append(statistics.median(pt.samples))
        _, pt = harness.measure_alternating([tl_fn, torch_fn], numbers, 3, 3, 3, 0.0)
        mixed.append(statistics.median(pt.samples))
    ratio = statistics.median(mixed) / statistics.median(alone)
    assert abs(ratio - 1) <= 0.15, (
        f"PyTorch's median interleaved / standalone = {ratio:.2f} at {n} threads "
        f"(alone {[f'{a * 1e3:.2f}' for a in alone]} ms, interleaved "
        f"{[f'{m * 1e3:.2f}' for m in mixed]} ms): the thread pools collide")
