"""The benchmark harness: tinylatent next to PyTorch, in one process, as ratios.

HOW TO WRITE A BENCHMARK (the API other files rely on; it stays stable)
----------------------------------------------------------------------
A benchmark file is `benchmarks/test_bench_<topic>.py`. Each test takes the `bench` fixture
(defined in `benchmarks/conftest.py`) and calls `bench.compare` once per figure:

    from benchmarks.harness import assert_close, torch   # torch is None without PyTorch

    def test_matmul(bench):
        n = bench.pick(quick=128, full=512)        # smaller workloads in --quick mode
        a_np = bench.rng.standard_normal((n, n)).astype("float32")
        a_tl = tl.tensor(a_np)
        tl_fn = lambda: a_tl @ a_tl
        torch_fn = None
        if torch is not None:                       # build the PyTorch side only if present
            a_pt = torch.from_numpy(a_np)
            torch_fn = lambda: a_pt @ a_pt
        bench.compare(f"matmul {n}x{n}", tl_fn, torch_fn,
                      check=lambda: assert_close(tl_fn(), torch_fn(), rtol=1e-4, atol=1e-4),
                      group="core")

`bench.compare(name, tl_fn, torch_fn, *, check=None, group="", goal=None, memory=None,
notes="", device=None)`:
  * `name`: unique, and it names the workload size ("matmul 512x512"): figures recorded on
    one run are matched to another run by name.
  * `tl_fn`, `torch_fn`: zero-argument callables doing one unit of work (e.g. forward +
    backward, or one optimizer step). `torch_fn` is None when PyTorch is missing.
  * `check`: zero-argument callable that runs both sides and asserts they agree (outputs
    AND gradients; use `assert_close`). It runs FIRST; a mismatch fails the test. Timings
    are reported, never asserted. Without PyTorch the check is skipped: the figure is still
    recorded, then the test is skipped with the reason (so `-ra` shows it).
  * `goal`: optional target ratio tinylatent / PyTorch (e.g. 0.6); reported as met / not
    met, never asserted.
  * `memory`: optional `(tl_factory, torch_factory)` for training-step workloads: two
    MODULE-LEVEL zero-argument functions that build the workload and return its step
    function. Each runs in a fresh subprocess (full mode only) that reports the peak RSS
    growth from just before the build to the end of a few steps (see `peak_rss_of`).
  * `device`: "cpu" or "cuda"; default "cuda" when the name starts with "cuda", else
    "cpu". Figures of each device go to their own results file (results/<gpu>-cuda.json
    is keyed by the GPU model).
  * returns the figure (a dict) that goes into the results file.

`bench.record(name, tl_value, torch_value=None, *, unit="", group="quality", notes="")`
records a figure that is not a time (a test loss after N epochs, bits/dim...) side by side,
in a second table; assert what must hold in the test itself. `notes` of any figure are
listed under the tables.

Helpers: `assert_close(a, b, rtol, atol, name)` compares tinylatent Tensors, torch tensors,
numpy arrays or lists/tuples of them elementwise; `assert_close_norm(a, b, rel, name)`
compares whole tensors by relative 2-norm error (for values after several optimizer steps,
where elementwise tolerances fail on correct code); `to_numpy(x)`; `bench.pick(quick=, full=)`;
`bench.quick`; `bench.rng` (a numpy Generator seeded per test); `torch` (None when PyTorch
is missing or TINYLATENT_BENCH_NO_TORCH=1).

HOW A FIGURE IS MEASURED
------------------------
A figure reports the median time per call and the interquartile range (IQR) for each side,
and the headline ratio median(tl) / median(torch); `ratio_iqr` is the IQR of the per-block
ratios. Thread counts (torch.set_num_threads, OpenBLAS via threadpoolctl, Numba) are set
per measurement and recorded.

Both callables are warmed up, then timed in ALTERNATING BLOCKS (tl: one unmeasured settle
call + `block` samples, torch: the same, tl ...), each sample running the callable `number`
times (calibrated so one sample lasts >= `min_sample_s`). Alternation lets drift of a shared
machine hit both sides alike; whole blocks plus passive waiting of the OpenMP/OpenBLAS
worker threads (benchmarks/threadenv.py, set before numpy and torch load) keep one
library's idle workers from spinning on the cores the other one is timed on.

THREADS. By default each figure is measured at the machine's usable core count when that is
safe: passive waiting in effect and the machine not busy (1-min load below half the cores);
otherwise at 1 thread per library, with a loud warning. Full mode on a multi-core machine
measures at 1 thread AND at the core count (`by_threads` in the figure; the table shows
both ratios). TINYLATENT_BENCH_THREADS=N or =1,2 chooses. Every figure also records the
share of its threads' runnable time spent waiting for a CPU (Linux schedstat run-queue
delay): above 10% the table marks it "oversubscribed".

RESULTS. A run writes `<machine>-<device>.{json,md}` to benchmarks/results/local/
(git-ignored), or to `--bench-out DIR`; only `--bench-record` (a deliberate record) writes
into benchmarks/results/, which holds the committed figures. Without PyTorch the recorded
figures of this kind of machine are used, else those of the closest recorded machine
(named in the table), else the table says plainly that no comparison was possible.

Environment: TINYLATENT_BENCH_NO_TORCH=1 (behave as if PyTorch were not installed),
TINYLATENT_BENCH_THREADS=N or N,M, TINYLATENT_BENCH_RESULTS_DIR=dir (where results are
written), TINYLATENT_BENCH_RECORDED=file (the recorded figures used without PyTorch),
TINYLATENT_BENCH_ACTIVE_WAIT=1 (keep the runtimes' default spin-waiting).
"""
from __future__ import annotations

# Before numpy and torch load: their thread runtimes read these settings once, at load.
from benchmarks import threadenv  # noqa: I001  (must precede the numpy import)

import datetime as _dt
import gc
import importlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tinylatent.backends.blas import describe as blas_describe
from tinylatent.backends.malloc import malloc_info

__all__ = ["Bench", "Recorder", "assert_close", "assert_close_norm", "to_numpy", "torch",
           "torch_missing_reason",
           "define_memory_factories", "thread_plan", "measure_alternating", "closest_recorded",
           "machine_key", "machine_info", "peak_rss_of", "format_seconds", "markdown_table",
           "RESULTS_DIR", "results_paths"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"      # committed records
LOCAL_RESULTS_DIR = RESULTS_DIR / "local"                         # a user's runs (git-ignored)
OVERSUBSCRIBED_WAIT = 0.10   # run-queue wait share above which a figure is marked
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ PyTorch
def _import_torch():
    """PyTorch or None, with the reason it is missing."""
    if os.environ.get("TINYLATENT_BENCH_NO_TORCH", "").strip() not in ("", "0"):
        return None, "PyTorch disabled by TINYLATENT_BENCH_NO_TORCH=1"
    try:
        import torch as _torch
    except ImportError as exc:  # pragma: no cover - depends on the machine
        return None, f"PyTorch is not installed ({exc})"
    return _torch, ""


torch, torch_missing_reason = _import_torch()


# ------------------------------------------------------------------------------ comparing
def to_numpy(x) -> np.ndarray:
    """A tinylatent Tensor, torch tensor, numpy array or number as a float64 numpy array."""
    if x is None:
        raise TypeError("to_numpy: got None (a gradient that was never computed?)")
    if torch is not None and isinstance(x, getattr(torch, "Tensor", ())):
        return x.detach().cpu().numpy().astype(np.float64)
    if hasattr(x, "data") and hasattr(x, "requires_grad") and not isinstance(x, np.ndarray):
        x = x.array  # tinylatent Tensor (or Parameter)
        if hasattr(x, "get"):  # cupy
            x = x.get()
    return np.asarray(x, dtype=np.float64)


def assert_close(a, b, rtol: float = 1e-4, atol: float = 1e-5, name: str = "value") -> None:
    """Assert that tinylatent's `a` equals PyTorch's `b` (Tensors, arrays, or sequences).

    On failure the message names the item, both shapes or the worst element and its values.
    """
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if not isinstance(a, (list, tuple)) or not isinstance(b, (list, tuple)) \
                or len(a) != len(b):
            raise AssertionError(f"{name}: tinylatent gave {type(a).__name__} of "
                                 f"{len(a) if hasattr(a, '__len__') else '?'} items, "
                                 f"PyTorch {type(b).__name__} of "
                                 f"{len(b) if hasattr(b, '__len__') else '?'}")
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, rtol=rtol, atol=atol, name=f"{name}[{i}]")
        return
    x, y = to_numpy(a), to_numpy(b)
    if x.shape != y.shape:
        raise AssertionError(f"{name}: shape {x.shape} (tinylatent) != {y.shape} (PyTorch)")
    bad_x, bad_y = ~np.isfinite(x), ~np.isfinite(y)
    if np.any(bad_x != bad_y):
        i = tuple(int(k) for k in np.argwhere(bad_x != bad_y)[0])
        raise AssertionError(f"{name}: non-finite mismatch at {i}: {x[i]!r} (tinylatent) vs "
                             f"{y[i]!r} (PyTorch)")
    x, y = np.where(bad_x, 0.0, x), np.where(bad_y, 0.0, y)
    err = np.abs(x - y) - (atol + rtol * np.abs(y))
    if x.size and np.max(err) > 0:
        i = np.unravel_index(int(np.argmax(err)), x.shape)
        raise AssertionError(
            f"{name}: tinylatent and PyTorch differ at {tuple(int(k) for k in i)}: "
            f"{x[i]!r} vs {y[i]!r} (|diff| {abs(x[i] - y[i]):.3g} > atol {atol} + rtol {rtol}"
            f" * |ref|); max |diff| {np.max(np.abs(x - y)):.3g}, shape {x.shape}")


def assert_close_norm(a, b, rel: float = 1e-3, name: str = "value") -> None:
    """Assert ||a - b|| <= rel * ||b|| (2-norm over all elements; sequences item by item).

    For quantities after several optimizer steps: Adam's first update is about lr * sign(g),
    so a gradient element near 0 that rounds differently moves a weight by up to 2 lr and
    elementwise tolerances would fail on a correct implementation; the relative error of
    the whole tensor stays small unless something is really wrong.
    """
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if len(a) != len(b):
            raise AssertionError(f"{name}: {len(a)} items (tinylatent) vs {len(b)} (PyTorch)")
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close_norm(x, y, rel=rel, name=f"{name}[{i}]")
        return
    x, y = to_numpy(a), to_numpy(b)
    if x.shape != y.shape:
        raise AssertionError(f"{name}: shape {x.shape} (tinylatent) != {y.shape} (PyTorch)")
    err, ref = float(np.linalg.norm(x - y)), float(np.linalg.norm(y))
    if not np.isfinite(err) or err > rel * max(ref, 1e-30):
        raise AssertionError(f"{name}: relative error ||tl - torch|| / ||torch|| = "
                             f"{err / max(ref, 1e-30):.3g} > {rel} (||torch|| {ref:.3g}, "
                             f"shape {x.shape})")


# ------------------------------------------------------------------------------ machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def _cpu_ids() -> dict:
    out = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            key = key.strip().lower()
            if key in ("cpu family", "model", "stepping", "vendor_id") and key not in out:
                out[key] = val.strip()
    except OSError:
        pass
    return out


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def machine_key(cpu_model: str | None = None, cores: int | None = None,
                cpu_ids: dict | None = None) -> str:
    """A stable name for "this kind of machine": sanitized CPU model + usable core count.

    Not the hostname: containers and CI runners get a random one per run, so results from
    the same hardware would never meet. Two machines with the same CPU model and core count
    run the same code at comparable speed, which is what a recorded PyTorch figure needs.
    A virtual machine may hide the model number ("AMD EPYC"): then the CPU family and model
    ids join the name, since one such name was seen here on an AVX-512 Zen 5 (family 26) and
    on an AVX2-only Zen 3 (family 25), whose conv ratios differ 2x. `cpu_ids` default: this
    machine's when `cpu_model` is None, none otherwise.
    """
    live = cpu_model is None
    model = (_cpu_model() if live else cpu_model).lower()
    model = re.sub(r"\((r|tm)\)", " ", model)
    model = re.sub(r"@.*$", " ", model)                     # drop "@ 2.40GHz"
    model = re.sub(r"\b(cpu|processor|\d+-core)\b", " ", model)
    model = re.sub(r"[^a-z0-9]+", "-", model).strip("-") or "unknown-cpu"
    ids = (_cpu_ids() if live else {}) if cpu_ids is None else cpu_ids
    if not re.search(r"\d", model) and ids.get("cpu family") and ids.get("model"):
        model += f"-f{ids['cpu family']}m{ids['model']}"     # amd-epyc-f25m1
    return f"{model}-{cores if cores is not None else usable_cores()}c"


def _gpu_name() -> str:
    """The first CUDA GPU's name (via PyTorch or CuPy), or 'unknown-gpu'."""
    try:
        if torch is not None and torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        pass
    try:
        import cupy
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001
        return "unknown-gpu"


def device_key(device: str = "cpu") -> str:
    """The kind of machine that matters for `device`: the CPU (model + cores) for "cpu",
    the GPU model for "cuda"."""
    if device == "cpu":
        return machine_key()
    name = re.sub(r"[^a-z0-9]+", "-", _gpu_name().lower()).strip("-") or "unknown-gpu"
    return name


def results_paths(device: str = "cpu", live: bool = True, directory: Path | None = None):
    """(json, md) paths of this machine's results; tl-only runs never overwrite live ones.
    Default directory: TINYLATENT_BENCH_RESULTS_DIR, else benchmarks/results/local/."""
    directory = Path(directory or os.environ.get("TINYLATENT_BENCH_RESULTS_DIR")
                     or LOCAL_RESULTS_DIR)
    stem = f"{device_key(device)}-{device}" + ("" if live else "-tl-only")
    return directory / f"{stem}.json", directory / f"{stem}.md"


def _version(mod: str) -> str | None:
    try:
        return importlib.import_module(mod).__version__
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return None


def parse_threads(value: str) -> list[int]:
    """"2" -> [2], "1,2" -> [1, 2] (sorted, unique); a clear error on anything else."""
    try:
        counts = sorted({int(v) for v in value.replace(" ", "").split(",") if v})
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise ValueError(f"TINYLATENT_BENCH_THREADS must be a positive int or a comma "
                         f"list such as 1,2; got {value!r}")
    return counts


def thread_plan(quick: bool, requested: str | None = None, cores: int | None = None,
                load1: float | None = None, passive: bool | None = None
                ) -> tuple[list[int], list[str]]:
    """(thread counts to measure each figure at, loud warnings to print).

    Honest multi-threaded ratios need (a) idle workers that wait passively, so the library
    not being timed does not spin on the cores (threadenv), and (b) free cores: on a busy
    machine a pool of N threads is oversubscribed and PyTorch's OpenMP loses far more than
    tinylatent's mostly single-threaded NumPy (measured 10-100x on 2 shared cores). Without
    both, the default is 1 thread per library, said loudly.
    """
    if requested is None:
        requested = os.environ.get("TINYLATENT_BENCH_THREADS", "").strip() or None
    if requested:
        return parse_threads(requested), []
    cores = usable_cores() if cores is None else cores
    if load1 is None:
        load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    passive = threadenv.passive_waits_effective() if passive is None else passive
    if cores == 1:
        return [1], []
    if not passive:
        st = threadenv.state()
        late = [k for k, v in st["loaded_before_settings"].items() if v]
        why = (f"{', '.join(late)} was loaded before benchmarks/threadenv.py could set "
               "passive waiting" if late else
               f"the thread runtimes wait actively ({st['variables']})")
        return [1], [f"WARNING: {why}: a {cores}-thread pool per library would make idle "
                     "workers of one library spin on the cores the other is timed on. "
                     "Measuring with 1 thread per library; set TINYLATENT_BENCH_THREADS="
                     f"{cores} to override."]
    if load1 >= 0.5 * cores:
        return [1], [f"WARNING: this machine is busy (1-min load {load1:.1f} on {cores} "
                     f"cores): too few free cores for a {cores}-thread pool, whose ratios "
                     "would mostly measure oversubscription. Measuring with 1 thread per "
                     f"library; set TINYLATENT_BENCH_THREADS={cores} (or 1,{cores}) to "
                     "override on a quiet machine."]
    return ([cores] if quick else [1, cores]), []


def set_threads(n: int) -> dict:
    """Fix every thread pool we know of to `n` threads; return what is in effect."""
    info: dict[str, Any] = {"requested": n, "runtime_waits": threadenv.state()}
    try:
        import threadpoolctl
        threadpoolctl.threadpool_limits(limits=n)
        info["blas"] = [{"lib": p.get("internal_api"), "num_threads": p.get("num_threads")}
                        for p in threadpoolctl.threadpool_info()]
    except ImportError:
        info["blas"] = "threadpoolctl missing; OPENBLAS_NUM_THREADS=" + \
            os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    try:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        info["numba"] = numba.get_num_threads()
        info["numba_threading_layer"] = numba.config.THREADING_LAYER
    except Exception:  # noqa: BLE001
        info["numba"] = None
    if torch is not None:
        torch.set_num_threads(n)
        info["torch"] = torch.get_num_threads()
        info["torch_interop"] = torch.get_num_interop_threads()
    return info


def machine_info(threads: dict | None = None) -> dict:
    return {
        "key": machine_key(),
        "cpu_model": _cpu_model(),
        "cpu_ids": _cpu_ids(),
        "usable_cores": usable_cores(),
        "os_cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {m: _version(m) for m in ("numpy", "numba", "tinylatent", "scipy")}
        | {"torch": None if torch is None else torch.__version__},
        "threads": threads or {},
        "blas": blas_describe(),
        "malloc": malloc_info(),
        # A shared machine's load is the main source of noise: record it next to the figures
        # (here at the end of the run; the recorder adds the load at its start).
        "loadavg_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# ------------------------------------------------------------------------------ memory
_MEM_SCRIPT = r"""
import gc, importlib, json, resource, sys
def status_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return None
def reset_peak():
    # Linux >= 4.0: writing 5 resets VmHWM (the peak RSS) to the current RSS, so import-time
    # transients do not hide the workload's peak.
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False
modname, qualname, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mod = importlib.import_module(modname)
import benchmarks.harness as h
h.set_threads(threads)
factory = mod
for part in qualname.split('.'):
    factory = getattr(factory, part)
if hasattr(factory, 'prepare'):
    factory.prepare()          # load shared test data before the baseline
gc.collect()
before = status_kb('VmRSS')
method = 'VmHWM after clear_refs' if reset_peak() and status_kb('VmHWM') else 'ru_maxrss'
def peak_kb():
    return status_kb('VmHWM') if method.startswith('VmHWM') else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
step = factory()
step()                          # first step: optimizer state, JIT compiles, BLAS buffers
peak1 = peak_kb()
after_first = status_kb('VmRSS')
if method.startswith('VmHWM'):
    reset_peak()
for _ in range(max(steps - 1, 1)):
    step()
peak2 = peak_kb()
print(json.dumps({"before_kb": before, "peak_kb": max(peak1, peak2), "method": method,
                  "peak_total_mb": max(peak1, peak2) / 1024.0,
                  "peak_growth_mb": (max(peak1, peak2) - before) / 1024.0,
                  "step_transient_mb": (peak2 - after_first) / 1024.0
                  if method.startswith('VmHWM') else None}))
"""


def define_memory_factories(namespace: dict, keys, build: Callable,
                            prepare: Callable | None = None) -> None:
    """Define module-level `memory_<key>_tl` and `memory_<key>_torch` in `namespace` (a
    benchmark module's globals()) for `memory=(...)`: each calls build(key, lib) and
    returns a step function; `prepare` (shared test data) runs before the RSS baseline."""
    for key in keys:
        for lib in ("tl", "torch"):
            def factory(key=key, lib=lib):
                return build(key, lib)
            factory.__name__ = factory.__qualname__ = f"memory_{key}_{lib}"
            factory.__module__ = namespace["__name__"]
            if prepare is not None:
                factory.prepare = prepare
            namespace[factory.__name__] = factory


def peak_rss_of(factory: Callable, steps: int = 3, threads: int | None = None,
                timeout: float = 300.0) -> dict:
    """Peak RSS of building `factory`'s workload and running `steps` steps, in a subprocess.

    `factory` must be a module-level function (the subprocess imports it by name). The
    figure `peak_growth_mb` is ru_maxrss at the end minus VmRSS just before the build (after
    imports and test data), so it counts parameters, gradients, optimizer state and the peak
    of activations, but not the interpreter or the library's import.
    """
    mod, qual = factory.__module__, factory.__qualname__
    if "<locals>" in qual or "<lambda>" in qual:
        raise ValueError(f"peak_rss_of: {qual} is not a module-level function")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", _MEM_SCRIPT, mod, qual, str(steps),
         str(threads or usable_cores())],
        capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"peak_rss_of({mod}.{qual}) failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ timing
def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(np.asarray(xs, dtype=np.float64), [25, 50, 75])
    return float(q1), float(med), float(q3)


def _summary(samples: list[float], number: int, wait_share: float | None = None) -> dict:
    q1, med, q3 = _quartiles(samples)
    return {"median": med, "iqr": q3 - q1, "q1": q1, "q3": q3, "min": float(min(samples)),
            "n": len(samples), "number": number, "cpu_wait_share": wait_share}


def _calibrate(fn: Callable, min_sample_s: float, warmup_s: float) -> tuple[int, float]:
    """Warm `fn` up (>= 2 calls and >= warmup_s) and pick calls-per-sample."""
    t0 = time.perf_counter()
    calls = 0
    t_call = None
    while calls < 2 or time.perf_counter() - t0 < warmup_s:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        t_call = dt if t_call is None else min(t_call, dt)
        calls += 1
        if calls >= 2 and dt > warmup_s:
            break
    number = max(1, int(np.ceil(min_sample_s / max(t_call, 1e-9))))
    return number, t_call


def _sample(fn: Callable, number: int) -> float:
    t = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t) / number


def sched_ns() -> tuple[int, int] | None:
    """(cpu, run-queue wait) nanoseconds summed over this process's threads, from Linux
    /proc/self/task/*/schedstat (fields 1 and 2); None where it is not available. The wait
    is time a thread was runnable but had no CPU: the direct sign of oversubscription."""
    cpu = wait = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                fields = f.read().split()
        except OSError:  # a thread that just ended
            continue
        cpu += int(fields[0])
        wait += int(fields[1])
    return cpu, wait


class _Side:
    """The samples of one callable and the CPU/wait time its blocks saw."""

    def __init__(self, fn: Callable, number: int):
        self.fn, self.number = fn, number
        self.samples: list[float] = []
        self.block_medians: list[float] = []
        self.cpu_ns = self.wait_ns = 0
        self.have_sched = True

    def run_block(self, block: int) -> None:
        self.fn()                                   # settle: caches and pools after a switch
        before = sched_ns()
        got = [_sample(self.fn, self.number) for _ in range(block)]
        after = sched_ns()
        if before is None or after is None:
            self.have_sched = False
        else:
            self.cpu_ns += after[0] - before[0]
            self.wait_ns += after[1] - before[1]
        self.samples += got
        self.block_medians.append(statistics.median(got))

    def wait_share(self) -> float | None:
        total = self.cpu_ns + self.wait_ns
        return self.wait_ns / total if self.have_sched and total > 0 else None


def measure_alternating(fns: list[Callable], numbers: list[int], block: int,
                        min_repeats: int, max_repeats: int, budget_s: float) -> list[_Side]:
    """Time `fns` in alternating whole blocks (A-block, B-block, A-block, ...) until each
    has >= min_repeats samples and the budget is spent, or max_repeats is reached."""
    sides = [_Side(fn, n) for fn, n in zip(fns, numbers)]
    t_start = time.perf_counter()
    while len(sides[0].samples) < max_repeats and (
            len(sides[0].samples) < min_repeats
            or time.perf_counter() - t_start < budget_s):
        for side in sides:
            side.run_block(block)
    return sides


def format_seconds(s: float | None) -> str:
    if s is None or not np.isfinite(s):
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


# ------------------------------------------------------------------------------ recorder
class Recorder:
    """Collects every figure of a session and writes one results file per device."""

    def __init__(self, quick: bool, device: str = "cpu", threads: dict | None = None,
                 thread_counts: list[int] | None = None, warnings: list[str] | None = None,
                 results_dir: Path | str | None = None):
        self.quick = quick
        self.mode = "quick" if quick else "full"
        self.device = device            # the default device of a figure
        self.live = torch is not None
        self.threads = threads or {}
        # thread counts every figure is measured at (the last one is the headline figure)
        self.thread_counts = list(thread_counts or [self.threads.get("requested") or 1])
        self.threads.setdefault("requested", self.thread_counts[-1])
        self.threads["measured_at"] = self.thread_counts
        self.warnings = list(warnings or [])
        self.results_dir = Path(results_dir) if results_dir else None
        # the caller has already set the pools to threads["requested"] (if it says so)
        self._threads_now: int | None = (threads or {}).get("requested")
        self.figures: list[dict] = []
        self._recorded: dict = {}   # device (or (device, "fallback")) -> (data, source)
        self.load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None

    def use_threads(self, n: int) -> None:
        """Set every pool to `n` threads (only when it changes: threadpoolctl is slow)."""
        if self._threads_now != n:
            info = set_threads(n)
            if n == self.thread_counts[-1]:
                self.threads.update({k: v for k, v in info.items() if k != "requested"})
            self._threads_now = n

    # Figures measured live on this kind of machine, used when PyTorch is missing.
    def recorded_file(self, device: str = "cpu") -> tuple[dict, str]:
        """(data, source) of the recorded live results for `device`: this kind of machine's
        file, else the closest recorded machine's (the source says which), else ({}, why)."""
        if device not in self._recorded:
            path = os.environ.get("TINYLATENT_BENCH_RECORDED") if device == "cpu" else None
            if path:
                path = Path(path)
                self._recorded[device] = (
                    (json.loads(path.read_text()), str(path)) if path.exists()
                    else ({}, f"no recorded results: {path} does not exist"))
                return self._recorded[device]
            own = results_paths(device, live=True, directory=RESULTS_DIR)[0]
            if own.exists():
                self._recorded[device] = (json.loads(own.read_text()), str(own))
                return self._recorded[device]
            near = closest_recorded(device_key(device), device)
            if near is None:
                self._recorded[device] = ({}, f"no recorded results in {RESULTS_DIR} for "
                                              f"any machine ({device})")
            else:
                self._recorded[device] = (
                    json.loads(near.read_text()),
                    f"{near} (closest recorded machine: {near.name.rsplit('-', 1)[0]}; "
                    f"this machine is {device_key(device)}, so PyTorch's speed on it may "
                    "differ)")
        return self._recorded[device]

    @property
    def recorded(self) -> dict:
        return self.recorded_file(self.device)[0]

    @recorded.setter
    def recorded(self, data: dict) -> None:
        self._recorded[self.device] = (data, "set directly")

    @property
    def recorded_source(self) -> str:
        return self.recorded_file(self.device)[1]

    def recorded_torch(self, name: str, device: str | None = None,
                       threads: int | None = None) -> dict | None:
        """The recorded live PyTorch figure named `name`, same mode first, measured at
        `threads` threads where the record has that count."""
        device = device or self.device
        data, source = self.recorded_file(device)
        found = self._recorded_torch_in(data, source, name, threads)
        own = results_paths(device, live=True, directory=RESULTS_DIR)[0]
        if found is None and source == str(own):
            # this machine's record lacks the figure (a partial record): the closest other
            # machine's, which says so in its source (read once, like the own file)
            if (device, "fallback") not in self._recorded:
                near = closest_recorded(device_key(device), device, exclude=own)
                self._recorded[(device, "fallback")] = (
                    ({}, "") if near is None else
                    (json.loads(near.read_text()), f"{near} (closest recorded machine with "
                     f"this figure; this machine is {device_key(device)}, so PyTorch's "
                     "speed on it may differ)"))
            found = self._recorded_torch_in(*self._recorded[(device, "fallback")], name,
                                            threads)
        return found

    def _recorded_torch_in(self, data: dict, source: str, name: str,
                           threads: int | None) -> dict | None:
        modes = data.get("modes", {})
        for mode in [self.mode] + [m for m in modes if m != self.mode]:
            fig = modes.get(mode, {}).get("figures", {}).get(name)
            if not fig:
                continue
            rec_threads = fig.get("threads") or modes[mode].get("threads", {}).get("requested")
            entry = fig
            by = fig.get("by_threads") or {}
            if threads is not None and str(threads) in by:
                entry, rec_threads = by[str(threads)], threads
            pt = entry.get("torch")
            if pt and pt.get("source") == "live":
                return {k: v for k, v in pt.items() if k != "source"} | {
                    "recorded_date": fig.get("date"), "recorded_mode": mode,
                    "recorded_threads": rec_threads, "recorded_machine": source}
        return None

    def add(self, fig: dict) -> None:
        self.figures = [f for f in self.figures if f["name"] != fig["name"]] + [fig]

    def devices(self) -> list[str]:
        return sorted({f.get("device", self.device) for f in self.figures})

    def figures_on(self, device: str) -> list[dict]:
        return [f for f in self.figures if f.get("device", self.device) == device]

    # -- writing
    def to_json(self, previous: dict | None = None, device: str | None = None) -> dict:
        """Merge this run's figures on `device` into `previous` (other modes and names are
        kept, so a partial run refreshes only what it measured)."""
        device = device or self.device
        data = previous if previous and previous.get("format") == 1 else {"format": 1,
                                                                          "modes": {}}
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        data["machine"] = machine_info(self.threads)
        data["machine"]["loadavg_at_start"] = self.load_at_start
        if device != "cpu":
            data["machine"]["gpu"] = _gpu_name()
        data["updated"] = now
        data["device"] = device
        data["live_torch"] = self.live
        if not self.live:   # the record(s) the PyTorch figures really came from
            used = sorted({f["torch"]["recorded_machine"] for f in self.figures_on(device)
                           if isinstance(f.get("torch"), dict)
                           and f["torch"].get("recorded_machine")})
            data["recorded_source"] = "; ".join(used) or self.recorded_file(device)[1]
        mode = data["modes"].setdefault(self.mode, {"figures": {}})
        mode["date"] = now
        mode["threads"] = self.threads
        mode["loadavg_at_start"] = self.load_at_start
        mode["loadavg_at_end"] = data["machine"].get("loadavg_1_5_15")
        key = data["machine"]["key"]
        for fig in self.figures_on(device):   # each figure names its machine: a file merged
            mode["figures"][fig["name"]] = fig | {"machine": key}  # over runs stays checkable
        return data

    def write(self) -> list[tuple[Path, Path]]:
        """Write <machine>-<device>.json and .md for every device measured, in
        `results_dir` (default: TINYLATENT_BENCH_RESULTS_DIR, else results/local/)."""
        written = []
        for device in self.devices():
            jpath, mpath = results_paths(device, live=self.live, directory=self.results_dir)
            jpath.parent.mkdir(parents=True, exist_ok=True)
            prev = json.loads(jpath.read_text()) if jpath.exists() else None
            data = self.to_json(prev, device)
            tmp = jpath.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
            os.replace(tmp, jpath)
            mpath.write_text(markdown_document(data) + "\n")
            written.append((jpath, mpath))
        return written


def closest_recorded(key: str, device: str = "cpu", directory: Path | None = None,
                     exclude: Path | None = None) -> Path | None:
    """The committed live results file of the machine most like `key` (e.g. intel-xeon-2c):
    same core count and CPU vendor first, then the same core count, then the same vendor,
    then the longest shared name prefix. None when nothing is recorded for `device`."""
    directory = Path(directory or RESULTS_DIR)
    cands = [p for p in sorted(directory.glob(f"*-{device}.json"))
             if not p.name.endswith("-tl-only.json")
             and (exclude is None or p.resolve() != Path(exclude).resolve())]
    if not cands:
        return None

    def parts(k):
        m = re.match(r"^(.*)-(\d+)c$", k)
        return (m.group(1), int(m.group(2))) if m else (k, None)

    model, cores = parts(key)
    vendor = model.split("-")[0]

    def score(p):
        other, other_cores = parts(p.name[:-len(f"-{device}.json")])
        shared = len(os.path.commonprefix([model, other]))
        return (other_cores == cores and other.split("-")[0] == vendor,
                other_cores == cores, other.split("-")[0] == vendor, shared, p.name)

    return max(cands, key=score)


def _fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None or not np.isfinite(r) else f"{r:.3g}x"


def _fmt_mem(fig: dict) -> str:
    m = fig.get("memory")
    if not m:
        return ""
    if m.get("skipped"):
        return m["skipped"]
    def mb(v, sign=""):
        return "n/a" if v is None else f"{sign}{v:.0f}" if v >= 10 else f"{sign}{v:.1f}"
    total = (f"{mb(m.get('tl_peak_growth_mb'))} / {mb(m.get('torch_peak_growth_mb'))} MB")
    step = (f"{mb(m.get('tl_step_transient_mb'), '+')} / "
            f"{mb(m.get('torch_step_transient_mb'), '+')}")
    return f"{total} (steps {step})"


def markdown_table(figures: list[dict]) -> str:
    """The timing table, then (if any) the table of recorded values and the notes."""
    timed = [f for f in figures if f.get("kind", "time") == "time"]
    values = [f for f in figures if f.get("kind") == "value"]
    out = _timing_table(timed) if timed else ""
    if values:
        rows = ["| figure | tinylatent | PyTorch | tl - torch |", "|---|---|---|---|"]
        for f in sorted(values, key=lambda f: (f.get("group", ""), f.get("order", 0))):
            unit = f" {f['unit']}" if f.get("unit") else ""
            pt = f.get("torch")
            pt_cell = "n/a" if not pt or pt.get("value") is None else \
                f"{pt['value']:.4g}{unit}" + ("" if pt.get("source") == "live"
                                              else " (recorded, not live)")
            diff = "n/a" if not pt or pt.get("value") is None else \
                f"{f['tl']['value'] - pt['value']:+.3g}{unit}"
            rows.append(f"| {f['name']} | {f['tl']['value']:.4g}{unit} | {pt_cell} | {diff} |")
        out += ("\n\n" if out else "") + "\n".join(rows)
    notes = [f for f in figures if f.get("notes")]
    if notes:
        out += "\n\nNotes:\n" + "\n".join(f"- {f['name']}: {f['notes']}" for f in notes)
    return out


def _fmt_share(w: float | None) -> str:
    return "n/a" if w is None else f"{100 * w:.0f}%"


def _ratio_cell(f: dict) -> str:
    """The headline ratio, or one per thread count ("1t 1.2x, 2t 1.1x")."""
    by = f.get("by_threads") or {}
    if len(by) <= 1:
        return _fmt_ratio(f.get("ratio"))
    return ", ".join(f"{n}t {_fmt_ratio(v.get('ratio'))}"
                     for n, v in sorted(by.items(), key=lambda kv: int(kv[0])))


def _wait_cell(f: dict) -> str:
    """Run-queue wait share of tl / torch at the headline thread count; flagged when high."""
    tl_w = f["tl"].get("cpu_wait_share")
    pt = f.get("torch") or {}
    pt_w = pt.get("cpu_wait_share") if pt.get("source") == "live" else None
    if tl_w is None and pt_w is None:
        return ""
    cell = f"{_fmt_share(tl_w)} / {_fmt_share(pt_w)}"
    if f.get("oversubscribed"):
        cell += " OVERSUBSCRIBED"
    return cell


def _timing_table(figures: list[dict]) -> str:
    """One row per timed figure: times, ratio tl/torch, goal, check, CPU wait, peak RSS."""
    rows = ["| benchmark | tinylatent (median ± IQR) | PyTorch (median ± IQR) | "
            "ratio tl/torch | goal | check | CPU wait tl / torch | "
            "peak RSS growth tl / torch |",
            "|---|---|---|---|---|---|---|---|"]
    for f in sorted(figures, key=lambda f: (f.get("group", ""), f.get("test", ""),
                                            f.get("order", 0))):
        tl_s, pt = f["tl"], f.get("torch")
        tl_cell = f"{format_seconds(tl_s['median'])} ± {format_seconds(tl_s['iqr'])}"
        if pt:
            pt_cell = f"{format_seconds(pt['median'])} ± {format_seconds(pt['iqr'])}"
            if pt.get("source") != "live":
                pt_cell += " (recorded, not live)"
        else:
            pt_cell = "not measured (no PyTorch, nothing recorded)"
        goal = f.get("goal")
        if goal is None:
            goal_cell = ""
        elif f.get("ratio") is None:
            goal_cell = f"≤ {goal}x (n/a)"
        else:
            goal_cell = f"≤ {goal}x " + ("met" if f["ratio"] <= goal else "NOT met")
        check = f.get("check", "")
        rows.append(f"| {f['name']} | {tl_cell} | {pt_cell} | {_ratio_cell(f)} "
                    f"| {goal_cell} | {check} | {_wait_cell(f)} | {_fmt_mem(f)} |")
    return "\n".join(rows)


def _fmt_load(load) -> str:
    return "n/a" if not load else "/".join(f"{x:.1f}" for x in load)


def _passive_cell(threads: dict) -> str:
    waits = threads.get("runtime_waits")
    if not waits:
        return "not recorded"
    return "on" if waits.get("passive_waits_effective") else "OFF"


def no_torch_statement(source: str) -> str:
    """The sentence that heads a run without PyTorch: where the PyTorch figures come from,
    or that no comparison was possible."""
    if source.startswith("no recorded results"):
        return ("**No live comparison was possible**: PyTorch is not available in this run "
                f"and {source[3:]}; the table shows tinylatent's times only. Install "
                "PyTorch (benchmarks/README.md) for ratios.")
    return ("**PyTorch figures are recorded, not live** (PyTorch is not available in this run;"
            f" taken from {source}).")


def _malloc_cell(info) -> str:
    """tinylatent/backends/malloc.py's policy as the report states it (older records: none)."""
    if not info:
        return "policy not recorded"
    return f"{info.get('policy')} ({info.get('reason')})"


def markdown_document(data: dict) -> str:
    m = data.get("machine", {})
    v = m.get("versions", {})
    th = m.get("threads", {})
    out = [f"# tinylatent vs PyTorch on {m.get('key', '?')} ({data.get('device', 'cpu')})",
           "",
           f"CPU: {m.get('cpu_model')} ({m.get('usable_cores')} usable cores); "
           f"numpy {v.get('numpy')}, numba {v.get('numba')}, torch {v.get('torch')}, "
           f"tinylatent {v.get('tinylatent')}; {m.get('blas', 'BLAS not recorded')}; "
           f"malloc: {_malloc_cell(m.get('malloc'))}.",
           "",
           "Ratio = tinylatent time / PyTorch time (lower is better for tinylatent; "
           "< 1 means tinylatent is faster). Peak RSS growth = peak resident memory while "
           "building the workload and running 3 steps minus the resident memory before "
           "(after imports and data), each library in its own process; it includes one-off "
           "costs such as JIT compilation and BLAS buffers. (steps +x) = the peak over steps "
           "2-3 above the memory resident after step 1 (the per-step working memory; "
           "allocator caching lowers it).",
           ""]
    if not data.get("live_torch", True):
        out += [no_torch_statement(str(data.get("recorded_source", "?"))), ""]
    out += ["CPU wait = share of the threads' runnable time spent waiting for a CPU (Linux "
            f"schedstat); above {100 * OVERSUBSCRIBED_WAIT:.0f}% a figure is marked "
            "OVERSUBSCRIBED: it measures the machine's load more than the libraries.", ""]
    for mode in ("full", "quick"):
        sect = data.get("modes", {}).get(mode)
        if not sect or not sect.get("figures"):
            continue
        th = sect.get("threads", {})
        n = th.get("requested")
        counts = th.get("measured_at") or [n]
        env = f"TINYLATENT_BENCH_THREADS={','.join(map(str, counts))} " \
            if counts != [m.get("usable_cores")] else ""
        cmd = f"{env}python -m pytest -q benchmarks" + (" --quick" if mode == "quick" else "")
        out += [f"## {mode} mode ({sect.get('date', '?')}; `{cmd}`)", "",
                f"Threads: measured at {counts} per library (headline {n}: torch "
                f"{th.get('torch')}, numba {th.get('numba')}, BLAS {n}); passive waiting "
                f"{_passive_cell(th)}; "
                f"load average {_fmt_load(sect.get('loadavg_at_start'))} at the start, "
                f"{_fmt_load(sect.get('loadavg_at_end'))} at the end (1/5/15 min).", "",
                markdown_table(list(sect["figures"].values())), ""]
    return "\n".join(out)


# ------------------------------------------------------------------------------ the fixture
class Bench:
    """What the `bench` fixture hands a benchmark test (one per test)."""

    def __init__(self, recorder: Recorder, nodeid: str = "", seed: int = 0):
        self.recorder = recorder
        self.quick = recorder.quick
        self.nodeid = nodeid
        self.rng = np.random.default_rng(seed)
        self.torch = torch
        if self.quick:
            self.warmup_s, self.min_sample_s, self.budget_s = 0.02, 0.005, 0.4
            self.min_repeats, self.max_repeats, self.block = 4, 8, 2
        else:
            self.warmup_s, self.min_sample_s, self.budget_s = 0.1, 0.02, 2.0
            self.min_repeats, self.max_repeats, self.block = 9, 30, 3

    def pick(self, quick, full):
        """`quick` in --quick mode, else `full` (workload sizes, step counts...)."""
        return quick if self.quick else full

    @staticmethod
    def _device(name: str, device: str | None) -> str:
        if device is not None:
            return device
        return "cuda" if name.lower().startswith("cuda") else "cpu"

    def record(self, name: str, tl_value: float, torch_value: float | None = None, *,
               unit: str = "", group: str = "quality", notes: str = "",
               device: str | None = None) -> dict:
        """Record a figure that is not a time (a test loss, bits/dim, accuracy...) side by
        side; without PyTorch the recorded value of the same name is shown instead.
        Nothing is asserted here: assert what must hold in the test itself."""
        live = torch is not None and torch_value is not None
        fig: dict[str, Any] = {
            "name": name, "kind": "value", "group": group, "test": self.nodeid,
            "device": self._device(name, device),
            "mode": self.recorder.mode, "unit": unit, "notes": notes,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "order": len(self.recorder.figures), "tl": {"value": float(tl_value)}}
        if live:
            fig["torch"] = {"value": float(torch_value), "source": "live"}
        else:
            rec = self.recorder.recorded_torch(name, fig["device"])
            fig["torch"] = None if rec is None else rec | {"source": "recorded"}
        self.recorder.add(fig)
        return fig

    def _time(self, name: str, tl_fn: Callable, torch_fn: Callable | None, threads: int,
              device: str) -> dict:
        """One measurement of both sides at `threads` threads: summaries and the ratio."""
        gc.collect()
        fns = [tl_fn] + ([torch_fn] if torch_fn is not None else [])
        numbers = [_calibrate(fn, self.min_sample_s, self.warmup_s)[0] for fn in fns]
        sides = measure_alternating(fns, numbers, self.block, self.min_repeats,
                                    self.max_repeats, self.budget_s)
        out: dict[str, Any] = {"tl": _summary(sides[0].samples, sides[0].number,
                                              sides[0].wait_share())}
        if torch_fn is not None:
            out["torch"] = _summary(sides[1].samples, sides[1].number,
                                    sides[1].wait_share()) | {"source": "live"}
            pair = [a / b for a, b in zip(sides[0].block_medians, sides[1].block_medians)]
            q1, _, q3 = _quartiles(pair)
            out["ratio_iqr"] = q3 - q1
        else:
            rec = self.recorder.recorded_torch(name, device, threads)
            out["torch"] = None if rec is None else rec | {"source": "recorded"}
            out["ratio_iqr"] = None
        out["ratio"] = out["tl"]["median"] / out["torch"]["median"] if out["torch"] else None
        waits = [w for w in (out["tl"]["cpu_wait_share"],
                             (out["torch"] or {}).get("cpu_wait_share")
                             if torch_fn is not None else None) if w is not None]
        out["oversubscribed"] = bool(waits) and max(waits) > OVERSUBSCRIBED_WAIT
        return out

    def compare(self, name: str, tl_fn: Callable, torch_fn: Callable | None = None, *,
                check: Callable | None = None, group: str = "", goal: float | None = None,
                memory: tuple[Callable, Callable] | None = None, notes: str = "",
                device: str | None = None) -> dict:
        import pytest  # only the harness's pytest face needs it

        # 1. Correctness first: this is the part that can fail.
        live = torch is not None and torch_fn is not None
        if check is not None and live:
            check()
            check_status = "passed"
        elif check is not None:
            check_status = "skipped (no PyTorch)"
        else:
            check_status = "none"

        # 2. Timing in alternating blocks, at each thread count of the plan.
        device = self._device(name, device)
        by_threads: dict[str, dict] = {}
        for n in self.recorder.thread_counts:
            self.recorder.use_threads(n)
            by_threads[str(n)] = self._time(name, tl_fn, torch_fn if live else None, n,
                                            device)
        primary = by_threads[str(self.recorder.thread_counts[-1])]
        fig: dict[str, Any] = {
            "name": name, "group": group, "test": self.nodeid, "mode": self.recorder.mode,
            "device": device,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "order": len(self.recorder.figures), "check": check_status, "goal": goal,
            "notes": notes, "threads": self.recorder.thread_counts[-1],
            "tl": primary["tl"], "torch": primary["torch"], "ratio": primary["ratio"],
            "ratio_iqr": primary["ratio_iqr"],
            "oversubscribed": any(v["oversubscribed"] for v in by_threads.values()),
            "by_threads": by_threads,
        }

        # 3. Memory of training-step workloads (fresh subprocess per library; full mode).
        if memory is not None and not self.quick:
            tl_factory, torch_factory = memory
            threads = self.recorder.thread_counts[-1]
            m_tl = peak_rss_of(tl_factory, threads=threads)
            mem = {"tl_peak_growth_mb": m_tl["peak_growth_mb"],
                   "tl_step_transient_mb": m_tl["step_transient_mb"]}
            if live:
                m_pt = peak_rss_of(torch_factory, threads=threads)
                mem["torch_peak_growth_mb"] = m_pt["peak_growth_mb"]
                mem["torch_step_transient_mb"] = m_pt["step_transient_mb"]
                fig["torch"]["peak_growth_mb"] = m_pt["peak_growth_mb"]
                fig["torch"]["step_transient_mb"] = m_pt["step_transient_mb"]
            else:
                prev = (self.recorder.recorded_torch(name, fig["device"]) or {})
                mem["torch_peak_growth_mb"] = prev.get("peak_growth_mb")
                mem["torch_step_transient_mb"] = prev.get("step_transient_mb")
            mem["method"] = m_tl["method"]
            fig["memory"] = mem
        elif memory is not None:
            fig["memory"] = {"skipped": "full mode only"}

        self.recorder.add(fig)
        if check is not None and not live:
            pytest.skip(f"{name}: correctness check needs PyTorch ({torch_missing_reason}); "
                        "tinylatent timed and compared with the recorded PyTorch figure "
                        "(recorded, not live)")
        return fig
