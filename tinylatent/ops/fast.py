"""What the hot ops (conv.py, attention.py, coupling.py, contrastive.py, reduce.logsumexp)
share about their fast path: which kernel backend runs, and how a fused backward is
differentiated again.

Each hot op's module holds its reference (pure Tensor ops, the test oracle), its fast
autograd Function (forward and backward on a backend's raw-array kernels) and the rule for
when the fast path applies. `fast_backend` is that rule's common part: the backend for the
tensors' device (tinylatent.kernels.dispatch picks it), or None to run the reference.

Double backward. A fused backward computes numbers, not a graph. When it runs with
`create_graph=True` (grad mode is on inside it), the fast Functions instead rebuild the op
from its reference on the same input tensors and return the reference's vector-Jacobian
product (`reference_vjp`), so second and higher derivatives are exact (and cost what the
reference costs).
"""
from __future__ import annotations

import numpy as np

from ..autograd import enable_grad, grad
from ..tensor import Tensor, is_float_dtype

__all__ = ["fast_backend", "reference_vjp"]

_FAST_DTYPES = {np.dtype(np.float32), np.dtype(np.float64)}


def _half(dtypes: set) -> bool:
    """One 16-bit float dtype: float16, or bfloat16 (ml_dtypes, CuPy's bfloat16)."""
    if len(dtypes) != 1:
        return False
    (dtype,) = dtypes
    return is_float_dtype(dtype) and dtype.itemsize == 2


def fast_backend(*tensors, op: str | None = None):
    """The kernel backend (tinylatent.kernels.backend.KernelBackend) for these tensors, or
    None: the reference is forced (TINYLATENT_KERNELS=reference, kernels.use_reference()),
    a dtype other than float32/float64 (float16 or bfloat16 only for an `op` in the
    backend's half_ops), or no backend for their device (Numba or CuPy missing: dispatch warns
    once). None entries (an absent bias) are skipped."""
    from ..kernels.dispatch import backend_for, reference_forced
    if reference_forced():
        return None
    dtypes = {t.dtype for t in tensors if t is not None}
    if dtypes <= _FAST_DTYPES:
        return backend_for(tensors[0])
    if op is not None and _half(dtypes):
        be = backend_for(tensors[0])
        if be is not None and op in be.half_ops:
            return be
    return None


def reference_vjp(reference, tensors: tuple, *grad_outputs) -> tuple:
    """Gradients of `reference(*tensors)` w.r.t. each of `tensors` (None for those that do
    not require grad), as a differentiable graph: what a fast backward returns under
    create_graph=True. One grad_output per output of the reference; None ones are skipped."""
    wanted = [i for i, t in enumerate(tensors) if isinstance(t, Tensor) and t.requires_grad]
    res = [None] * len(tensors)
    with enable_grad():
        out = reference(*tensors)
        outs = out if isinstance(out, tuple) else (out,)
        pairs = [(o, g) for o, g in zip(outs, grad_outputs) if g is not None]
        if not wanted or not pairs:
            return tuple(res)
        gs = grad([o for o, _ in pairs], [tensors[i] for i in wanted], [g for _, g in pairs],
                  create_graph=True, allow_unused=True)
    for i, g in zip(wanted, gs):
        res[i] = g
    return tuple(res)
