"""Thread-runtime settings for honest side-by-side timings; imported before numpy and torch.

Two libraries timed in one process each keep a thread pool. By default both runtimes make
idle workers spin for a while before sleeping: PyTorch's OpenMP (libgomp: OMP_WAIT_POLICY,
GOMP_SPINCOUNT; Intel's libiomp: KMP_BLOCKTIME) and OpenBLAS (OPENBLAS_THREAD_TIMEOUT,
2^n cycles, at least 2^4). Timed one after the other, the spinning workers of the library
that just ran take the cores the other one needs: on 2 cores PyTorch's NT-Xent went from
9.5 ms alone to 29.8 ms interleaved with tinylatent. Waiting passively removes that
collision. These variables are read once, when each runtime is loaded, so they are set here,
before `import numpy` (OpenBLAS) and `import torch` (libgomp); a value the user already set
is kept, and `state()` says what is in effect and whether it came too late.

Numba's kernels in tinylatent are serial (parallel=True would fight OpenBLAS for the
cores); its threading layer, if a parallel kernel ever runs, uses OpenMP (covered by the
same variables), TBB or its own workqueue (neither spins).
"""
from __future__ import annotations

import os
import sys

#: variable -> value for passive waiting, and the runtime it concerns
PASSIVE = {
    "OMP_WAIT_POLICY": ("PASSIVE", "OpenMP (PyTorch's libgomp / libiomp, Numba's omp layer)"),
    "GOMP_SPINCOUNT": ("0", "GNU OpenMP (PyTorch's libgomp)"),
    "KMP_BLOCKTIME": ("0", "Intel OpenMP (PyTorch builds with libiomp)"),
    "OPENBLAS_THREAD_TIMEOUT": ("4", "OpenBLAS (numpy)"),
}

_SET_BY_US: dict[str, str] = {}
# Which runtimes were already loaded when this module ran: their variables came too late.
_LOADED_BEFORE = {"numpy": "numpy" in sys.modules, "torch": "torch" in sys.modules}

if os.environ.get("TINYLATENT_BENCH_ACTIVE_WAIT", "").strip() in ("", "0"):
    for _name, (_value, _runtime) in PASSIVE.items():
        if _name not in os.environ:
            os.environ[_name] = _value
            _SET_BY_US[_name] = _value


def passive_waits_effective() -> bool:
    """True when every runtime's passive setting is in effect: the values are the passive
    ones and neither numpy nor torch was loaded before they were set."""
    if any(_LOADED_BEFORE.values()):
        return False
    policy = os.environ.get("OMP_WAIT_POLICY", "").upper()
    spin = os.environ.get("GOMP_SPINCOUNT", "")
    timeout = os.environ.get("OPENBLAS_THREAD_TIMEOUT", "")
    return policy == "PASSIVE" and spin == "0" and timeout.isdigit() and int(timeout) <= 4


def state() -> dict:
    """What is in effect, for the results file: the variables, who set them, and whether
    they could still take effect."""
    return {
        "variables": {k: os.environ.get(k) for k in PASSIVE},
        "set_by_harness": dict(_SET_BY_US),
        "loaded_before_settings": dict(_LOADED_BEFORE),
        "passive_waits_effective": passive_waits_effective(),
    }
