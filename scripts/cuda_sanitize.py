#!/usr/bin/env python
"""Run the CUDA kernels' emulated tests (tests/test_kernels_cuda_emu.py) under
ThreadSanitizer and AddressSanitizer, and show TSan catching a removed __syncthreads.

    python scripts/cuda_sanitize.py               # thread, address, then race-demo
    python scripts/cuda_sanitize.py thread        # one of: thread address race-demo

thread / address: every kernel module is rebuilt with -fsanitize=... (tests/cuda_emu caches
the builds apart from the plain ones) and the sanitizer runtime is preloaded into Python
(the kernels are a shared library loaded into the test process). A report fails the run.
  TSan: data races between the emulated threads of a block (a missing __syncthreads, two
        threads writing one output); AddressSanitizer: reads and writes past an array or a
        __shared__ buffer.
race-demo: copies tinylatent/kernels/cuda to a temporary directory, deletes the __syncthreads() that
orders the warps' partial sums before warp 0 reads them in the block reductions (common.cuh,
tl_block_sum / tl_block_max), runs logsumexp on the copy
under TSan and expects a data race report; it also prints what a plain value check says
about the broken copy (it can pass: the race is real but rarely changes the sum).
Exit status 0 when every asked mode behaved as expected. Needs g++ >= 11 with libtsan/libasan.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_FILE = os.path.join("tests", "test_kernels_cuda_emu.py")
RUNTIMES = {"thread": "libtsan.so", "address": "libasan.so"}
OPTIONS = {
    "thread": ("TSAN_OPTIONS", "halt_on_error=1 exitcode=66 report_signal_unsafe=0 "
                               "second_deadlock_stack=1"),
    # Python itself leaks by design at exit; only memory errors matter here.
    "address": ("ASAN_OPTIONS", "detect_leaks=0 exitcode=66 verify_asan_link_order=0"),
}

RACE_DEMO = r"""
import numpy as np, sys
sys.path.insert(0, "tests")
from cuda_emu import backend, emulated, to_device, to_host
be = backend()
be.SOURCE_DIR = sys.argv[1]
x = np.random.default_rng(0).standard_normal((4, 300))
with emulated(block=64) as cuda:
    lse, _ = cuda.row_logsumexp(to_device(x))
ref = np.log(np.exp(x).sum(1))
ok = np.allclose(to_host(lse), ref, rtol=1e-12, atol=0)
print("value check on the copy without the __syncthreads:", "passes" if ok else "fails")
"""


def runtime(kind: str) -> str:
    cxx = os.environ.get("CXX", "g++")
    path = subprocess.run([cxx, f"-print-file-name={RUNTIMES[kind]}"], capture_output=True,
                          text=True).stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        sys.exit(f"cuda_sanitize: {cxx} has no {RUNTIMES[kind]} (install the sanitizer "
                 "runtime, e.g. apt-get install libtsan2 libasan8)")
    return os.path.realpath(path)


def sanitized_env(kind: str) -> dict:
    env = dict(os.environ)
    env["TINYLATENT_CUDA_EMU_SANITIZE"] = kind
    env["LD_PRELOAD"] = runtime(kind)
    name, value = OPTIONS[kind]
    env[name] = value
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    # Numba's and OpenBLAS's own threads are not what is under test
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def run_tests(kind: str, pytest_args: list) -> bool:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST_FILE,
           *pytest_args]
    print(f"== {kind} sanitizer: {' '.join(cmd)}", flush=True)
    rc = subprocess.run(cmd, cwd=ROOT, env=sanitized_env(kind)).returncode
    print(f"== {kind} sanitizer: {'clean' if rc == 0 else f'FAILED (exit {rc})'}", flush=True)
    return rc == 0


def race_demo() -> bool:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    sys.path.insert(0, ROOT)
    from cuda_emu import backend
    with tempfile.TemporaryDirectory(prefix="tl-race-demo-") as tmp:
        src = os.path.join(tmp, "cuda")
        shutil.copytree(backend().SOURCE_DIR, src)
        path = os.path.join(src, "common.cuh")
        with open(path, encoding="utf-8") as f:
            code = f.read()
        # the barrier between the warps' partials and warp 0 reading them, in the block
        # reductions' macro (tl_block_sum and tl_block_max): a line of its own, continued
        pattern = r"(if \(lane == 0\) buf\[warp\] = v;\s*\\\n)[ \t]*__syncthreads\(\);[ \t]*\\\n"
        broken, n = re.subn(pattern, r"\1", code, count=1)
        if n != 1:
            print("race-demo: could not find the __syncthreads to remove in common.cuh")
            return False
        with open(path, "w", encoding="utf-8") as f:
            f.write(broken)
        print("== race-demo: the block reductions without the barrier after the warp partials",
              flush=True)
        plain = subprocess.run([sys.executable, "-c", RACE_DEMO, src], cwd=ROOT,
                               env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                               text=True)
        print(plain.stdout.strip() or plain.stderr[-2000:])
        out = subprocess.run([sys.executable, "-c", RACE_DEMO, src], cwd=ROOT,
                             env=sanitized_env("thread"), capture_output=True, text=True)
        caught = "WARNING: ThreadSanitizer: data race" in out.stderr
        where = re.search(r"#0 (tl_block_sum\S*|\S+) .*?(common\.cuh:\d+)", out.stderr)
        verdict = "reported a data race" if caught else "did NOT report a race"
        print(f"== race-demo: ThreadSanitizer {verdict}"
              + (f" in {where.group(2)}" if where else ""), flush=True)
        if not caught:
            print(out.stderr[-3000:])
        return caught


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modes", nargs="*", default=["thread", "address", "race-demo"],
                        choices=["thread", "address", "race-demo"])
    parser.add_argument("--pytest-args", default="",
                        help="extra pytest arguments for the sanitized test runs, e.g. "
                             "\"-k logsumexp\" (default: %(default)r)")
    args = parser.parse_args()
    ok = True
    for mode in args.modes:
        if mode == "race-demo":
            ok &= race_demo()
        else:
            ok &= run_tests(mode, shlex.split(args.pytest_args))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
