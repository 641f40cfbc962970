"""pytest glue for the benchmarks: the `--quick` option, the `bench` fixture, one recorder per
session, the results file and the table printed at the end. The harness itself (and how to
write a benchmark) is documented at the top of `benchmarks/harness.py`.

    python -m pytest -q benchmarks            # full mode (default)
    python -m pytest -q benchmarks --quick    # CI mode: fewer repeats, smaller workloads

Results go to benchmarks/results/local/ (git-ignored) or `--bench-out DIR`; `--bench-record`
is the deliberate way to update the committed record in benchmarks/results/.
"""
from __future__ import annotations

import zlib

import pytest

from benchmarks import harness
from tinylatent.backends.blas import describe as blas_describe

_STATE: dict = {}


def pytest_addoption(parser) -> None:
    group = parser.getgroup("tinylatent benchmarks")
    group.addoption("--quick", action="store_true", default=False,
                    help="benchmarks: fewer repeats and smaller workloads (CI; < 2 min)")
    group.addoption("--bench-no-write", action="store_true", default=False,
                    help="benchmarks: write no results file")
    group.addoption("--bench-out", default=None, metavar="DIR",
                    help="benchmarks: write the results here (default: "
                         "benchmarks/results/local/, git-ignored)")
    group.addoption("--bench-record", action="store_true", default=False,
                    help="benchmarks: write into benchmarks/results/ (the committed record; "
                         "only on a quiet machine, on purpose)")


def pytest_configure(config) -> None:
    import os
    quick = config.getoption("--quick")
    counts, warnings = harness.thread_plan(quick)
    threads = harness.set_threads(counts[-1])
    if config.getoption("--bench-record") and config.getoption("--bench-out"):
        raise pytest.UsageError("--bench-record and --bench-out both say where to write; "
                                "give one")
    out = config.getoption("--bench-out") or (
        harness.RESULTS_DIR if config.getoption("--bench-record") else None)
    _STATE["load_at_start"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    _STATE["recorder"] = harness.Recorder(quick=quick, threads=threads, thread_counts=counts,
                                          warnings=warnings, results_dir=out)


def pytest_report_header(config) -> list[str]:
    rec = _STATE.get("recorder")
    if rec is None:
        return []
    lines = [f"tinylatent benchmarks: {rec.mode} mode, threads per library "
             f"{rec.thread_counts}, passive waiting "
             f"{'on' if harness.threadenv.passive_waits_effective() else 'OFF'}, "
             f"PyTorch {'live' if rec.live else 'NOT available: ' + harness.torch_missing_reason}"]
    return lines + rec.warnings


@pytest.fixture
def bench(request) -> harness.Bench:
    """Compare tinylatent with PyTorch: `bench.compare(name, tl_fn, torch_fn, check=...)`."""
    seed = zlib.crc32(request.node.nodeid.encode())  # stable per test, differs between tests
    return harness.Bench(_STATE["recorder"], nodeid=request.node.nodeid, seed=seed)


@pytest.fixture(scope="session")
def bench_recorder() -> harness.Recorder:
    return _STATE["recorder"]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    rec: harness.Recorder | None = _STATE.get("recorder")
    if rec is None or not rec.figures:
        return
    tr = terminalreporter
    for device in rec.devices():
        figures = rec.figures_on(device)
        tr.write_sep("=", f"tinylatent / PyTorch ({rec.mode} mode, "
                          f"{harness.device_key(device)}, {device})")
        if not rec.live:
            source = rec.recorded_file(device)[1]
            if source.startswith("no recorded results"):
                tr.write_line(f"NO LIVE COMPARISON WAS POSSIBLE ({harness.torch_missing_reason}"
                              f"; {source}): tinylatent's times only.")
            else:
                tr.write_line(f"PyTorch figures are RECORDED, NOT LIVE "
                              f"({harness.torch_missing_reason}); source: {source}")
        if device == "cpu":        # every CPU figure runs at the speed of NumPy's BLAS
            tr.write_line(f"tinylatent's matmuls: {blas_describe()}")
        tr.write_line(harness.markdown_table(figures))
        rec_threads = {f["torch"].get("recorded_threads") for f in figures
                       if f.get("torch") and f["torch"].get("source") == "recorded"}
        rec_threads.discard(None)
        if rec_threads and not rec_threads <= set(rec.thread_counts):
            tr.write_line(f"NOTE: the recorded PyTorch figures were measured with "
                          f"{sorted(rec_threads)} thread(s), this run uses "
                          f"{rec.thread_counts}; set TINYLATENT_BENCH_THREADS to match.")
        over = [f["name"] for f in figures if f.get("oversubscribed")]
        if over:
            tr.write_line(f"WARNING: {len(over)} figure(s) OVERSUBSCRIBED (threads waited > "
                          f"{100 * harness.OVERSUBSCRIBED_WAIT:.0f}% of their runnable time "
                          f"for a CPU): {', '.join(over)}. Their ratios measure the "
                          "machine's load; rerun on a quieter machine" +
                          (" or with TINYLATENT_BENCH_THREADS=1." if rec.thread_counts != [1]
                           else "."))
    for line in rec.warnings:
        tr.write_line(line)
    load = _STATE.get("load_at_start")
    n = rec.thread_counts[-1]
    if load is not None and n > 1 and load > 0.75 * harness.usable_cores():
        tr.write_line(f"WARNING: the machine was busy (1-min load {load:.1f} on "
                      f"{harness.usable_cores()} cores) with {n} threads per library: "
                      "multi-threaded timings suffer from oversubscription; "
                      "TINYLATENT_BENCH_THREADS=1 gives steadier figures on a shared machine.")
    if not config.getoption("--bench-no-write"):
        for jpath, mpath in rec.write():
            tr.write_line(f"results written to {jpath} and {mpath}")
