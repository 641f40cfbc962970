"""tinylatent's fast kernels for the hot ops, each the twin of a reference in
tinylatent/ops/ (conv.py, attention.py, coupling.py, contrastive.py):

    kernels/dispatch.py    the switch: fast kernel or reference, per call
    kernels/functions.py   the fast ops as autograd Functions, shared by both backends
    kernels/numba/         CPU backend: Numba kernels (compiled lazily, cached on disk)
    kernels/cuda/          GPU backend: CUDA C sources (*.cu) run as CuPy RawKernels

Force the reference implementations (the test oracles) with the environment variable
`TINYLATENT_KERNELS=reference`, or for a block of code:

    import kernels
    with kernels.use_reference():
        y = tl.nn.functional.conv2d(x, w)

Importing this package imports neither Numba nor CuPy.
"""
from __future__ import annotations

from .dispatch import ENV_VAR, backend_for, lookup, numba_available, reference_forced, \
    use_reference

__all__ = ["use_reference", "reference_forced", "lookup", "backend_for", "ENV_VAR",
           "numba_available"]
