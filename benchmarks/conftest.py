"""pytest glue for the benchmarks: the `--quick` option, the `bench` fixture, one recorder per
session, the results file and the table printed at the end. The harness itself (and how to
write a benchmark) is documented at the top of `benchmarks/harness.py`.

    python -m pytest -q benchmarks            # full mode (default)
    python -m pytest -q benchmarks --quick    # CI mode: fewer repeats, smaller workloads
"""
from __future__ import annotations

import zlib

import pytest

from benchmarks import harness

_STATE: dict = {}


def pytest_addoption(parser) -> None:
    group = parser.getgroup("tinylatent benchmarks")
    group.addoption("--quick", action="store_true", default=False,
                    help="benchmarks: fewer repeats and smaller workloads (CI; < 2 min)")
    group.addoption("--bench-no-write", action="store_true", default=False,
                    help="benchmarks: do not write benchmarks/results/*")


def pytest_configure(config) -> None:
    import os
    n = int(os.environ.get("TINYLATENT_BENCH_THREADS") or harness.usable_cores())
    threads = harness.set_threads(n)
    _STATE["load_at_start"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    _STATE["recorder"] = harness.Recorder(quick=config.getoption("--quick"), threads=threads)


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
            tr.write_line(f"PyTorch figures are RECORDED, NOT LIVE "
                          f"({harness.torch_missing_reason}); source: "
                          f"{rec.recorded_file(device)[1]}")
        tr.write_line(harness.markdown_table(figures))
        rec_threads = {f["torch"].get("recorded_threads") for f in figures
                       if f.get("torch") and f["torch"].get("source") == "recorded"}
        rec_threads.discard(None)
        if rec_threads and rec_threads != {rec.threads.get("requested")}:
            tr.write_line(f"NOTE: the recorded PyTorch figures were measured with "
                          f"{sorted(rec_threads)} thread(s), this run uses "
                          f"{rec.threads.get('requested')}; set TINYLATENT_BENCH_THREADS to "
                          "match.")
    load = _STATE.get("load_at_start")
    n = rec.threads.get("requested", 1)
    if load is not None and n > 1 and load > 0.75 * harness.usable_cores():
        tr.write_line(f"WARNING: the machine was busy (1-min load {load:.1f} on "
                      f"{harness.usable_cores()} cores) with {n} threads per library: "
                      "multi-threaded timings suffer from oversubscription; "
                      "TINYLATENT_BENCH_THREADS=1 gives steadier figures on a shared machine.")
    if not config.getoption("--bench-no-write"):
        for jpath, mpath in rec.write():
            tr.write_line(f"results written to {jpath} and {mpath}")
