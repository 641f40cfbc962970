"""tinylatent's fast kernels for the hot ops, each the twin of a reference in
tinylatent/ops/ (conv.py, attention.py, coupling.py, contrastive.py, reduce.logsumexp):

    kernels/backend.py     KernelBackend: the raw-array kernels a backend implements
    kernels/dispatch.py    the switch: which backend (or the reference) runs, per call
    kernels/numba/         CPU backend: Numba kernels (compiled lazily, cached on disk)
    kernels/cuda/          GPU backend: CUDA C sources (*.cu) run as CuPy RawKernels

The autograd Functions that call these kernels live next to their references in
tinylatent/ops/; nothing here imports tinylatent.ops.

Force the reference implementations (the test oracles) with the environment variable
`TINYLATENT_KERNELS=reference`, or for a block of code:

    from tinylatent import kernels
    with kernels.use_reference():
        y = tl.nn.functional.conv2d(x, w)

Importing this package imports neither Numba nor CuPy.

How the CPU kernels are fast (2 cores shared with OpenBLAS):
  * contractions go to BLAS (numpy matmul), never to Numba loops; Numba kernels are serial
    (`parallel=True` next to OpenBLAS's threads fights for the same cores) and only do the
    passes BLAS cannot: im2col / col2im, masked softmax, logsumexp, the contrastive
    cross-entropy, the coupling layer, row normalisation;
  * exp in those passes is `numba/_math.fexp`, a float32 exp LLVM can vectorize (Numba's
    math.exp is a scalar libm call without Intel SVML), flushing would-be denormals to 0;
  * float32 stays float32 (scalars are cast to the array dtype before the call);
  * im2col's columns are laid out (C*kh*kw [+1], B*L) so the forward GEMM's output is
    already NCHW, the bias rides in the GEMM as a row of ones, and dW, dcols are single
    large GEMMs; stride-1 same-width convolutions copy whole shifted planes;
  * z z^T is a GEMM on a transposed copy (A @ A.T would take BLAS's slower syrk path);
  * temporaries consumed inside one call come from a per-thread scratch pool.

Double backward through a fast op rebuilds the reference on the same inputs and
differentiates that (see tinylatent/ops/fast.py), so higher derivatives are exact.
"""
from __future__ import annotations

from .backend import KernelBackend, check_backend
from .dispatch import (ENV_VAR, backend_for, load_numba_module, numba_available,
                       reference_forced, use_reference)

__all__ = ["use_reference", "reference_forced", "backend_for", "ENV_VAR", "numba_available",
           "load_numba_module", "KernelBackend", "check_backend"]
