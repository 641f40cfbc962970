"""tinylatent/backends/malloc.py: glibc keeps freed large blocks, so a step's temporaries are
not faulted in afresh every step. Checked by page faults, not by time: each subprocess
allocates, fills and frees three 16 MB arrays 20 times and counts its minor page faults."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import tinylatent as tl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and \
            os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


GLIBC = _glibc()

def _thp_always() -> bool:
    """Transparent huge pages for every mapping: faults then count 2 MB pages, not 4 KB."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled", encoding="ascii") as f:
            return "[always]" in f.read()
    except OSError:
        return False


_PROBE = """
import resource, numpy as np, tinylatent as tl
try:                         # NumPy asks for huge pages on large arrays: count 4 KB pages
    np._core.multiarray._set_madvise_hugepage(False)
except AttributeError:
    pass
def step():                  # a GELU step's arrays: y, dy/dx and the gradient, 16 MB each
    arrays = [np.empty(4 * 2 ** 20, np.float32) for _ in range(3)]
    for a in arrays:
        a.fill(1.0)
for _ in range(3):           # warm up: the first blocks are new
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, tl.backends.malloc_info())
"""


def _run(**env):
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "TINYLATENT_MALLOC")}
    clean.update(env, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=clean, capture_output=True,
                         text=True, check=False)
    return out


@pytest.mark.skipif(not GLIBC, reason="the policy applies to glibc's malloc only")
def test_freed_blocks_are_reused_without_page_faults():
    out = _run()
    assert out.returncode == 0, out.stderr
    faults, info = out.stdout.split(" ", 1)
    assert "'retain'" in info
    # 20 x 3 x 4,096 pages were written; reused blocks fault none of them again
    assert int(faults) < 500, out.stdout
    out = _run(TINYLATENT_MALLOC="system")
    faults, info = out.stdout.split(" ", 1)
    assert "glibc defaults" in info
    # the control: with glibc's defaults 48 MB freed at once pass its trim threshold
    # (2 x 16 MB), so part of the heap top is given back and faulted in again every step
    # (6 MB a step on glibc 2.36); with huge pages everywhere the count would be 512x lower
    if not _thp_always():
        assert int(faults) > 20 * 1024, out.stdout


def test_the_environment_wins_and_bad_values_are_named():
    out = _run(MALLOC_TOP_PAD_="0")
    assert out.returncode == 0, out.stderr
    assert "the environment's" in out.stdout and "MALLOC_TOP_PAD_ set" in out.stdout
    out = _run(TINYLATENT_MALLOC="jemalloc")
    assert out.returncode != 0
    assert "TINYLATENT_MALLOC must be 'retain' or 'system', got 'jemalloc'" in out.stderr


def test_malloc_info_is_public():
    info = tl.backends.malloc_info()
    assert set(info) == {"policy", "reason"}
    assert info["policy"] in ("retain", "glibc defaults", "the environment's",
                              "partly applied", "not applied")
