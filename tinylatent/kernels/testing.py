"""Helpers for testing a fast kernel against its reference twin (used by tests/ and
benchmarks/): run one function twice on copies of the same inputs, once through the
dispatch (the fast kernel) and once inside `use_reference()`, and return the outputs and
every input gradient of both runs."""
from __future__ import annotations

import contextlib

import numpy as np

import tinylatent as tl

from .dispatch import use_reference

__all__ = ["run_both", "assert_same", "TOLERANCES", "device_params", "fast_name_expected",
           "graph_functions"]

# (rtol, atol) for comparing a fast kernel with its reference, by dtype: the two sum in
# different orders (BLAS GEMM vs im2col-per-tap matmuls), nothing more.
TOLERANCES = {np.dtype(np.float32): (2e-4, 2e-5), np.dtype(np.float64): (1e-9, 1e-11)}


def _run(fn, arrays, requires, device, weights_seed, reference: bool):
    ts = [tl.tensor(a, device=device, requires_grad=r) if isinstance(a, np.ndarray) else a
          for a, r in zip(arrays, requires)]
    ctx = use_reference() if reference else contextlib.nullcontext()
    with ctx:
        out = fn(*ts)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        # A fixed random weighting of every output, so each output's gradient is exercised.
        rng = np.random.default_rng(weights_seed)
        loss = None
        for o in outs:
            w = tl.tensor(rng.standard_normal(o.shape).astype(o.dtype), device=device)
            term = (o * w).sum()
            loss = term if loss is None else loss + term
        grad_inputs = [t for t, r in zip(ts, requires) if r]
        grads = tl.grad(loss, grad_inputs, allow_unused=True) if grad_inputs else []
    host = [o.detach().numpy() for o in outs]
    host += [None if g is None else g.detach().numpy() for g in grads]
    return host, [o.grad_fn.fn.__name__ if o.grad_fn is not None else None for o in outs]


def run_both(fn, arrays, requires=None, device="cpu", weights_seed: int = 0):
    """((fast results, fast grad_fn names), (reference results, names)); results are the
    outputs then the gradients of the inputs flagged in `requires` (default: all arrays)."""
    if requires is None:
        requires = [isinstance(a, np.ndarray) for a in arrays]
    fast = _run(fn, arrays, requires, device, weights_seed, reference=False)
    ref = _run(fn, arrays, requires, device, weights_seed, reference=True)
    return fast, ref


def assert_same(fast, ref, dtype, what: str = "", scale: float = 1.0) -> None:
    rtol, atol = TOLERANCES[np.dtype(dtype)]
    for i, (a, b) in enumerate(zip(fast, ref)):
        if a is None or b is None:
            assert a is None and b is None, f"{what}: result {i} is None on one side only"
            continue
        assert a.shape == b.shape, f"{what}: result {i} shapes {a.shape} vs {b.shape}"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale,
                                   err_msg=f"{what}: result {i} (outputs first, then grads)")


def device_params() -> list:
    """pytest params for the devices a kernel test runs on: "cpu" always, "cuda" skipped
    with tl.cuda's reason when there is no usable GPU."""
    import pytest
    reason = "CUDA unavailable: " + (tl.cuda.unavailable_reason() or "no GPU")
    return [pytest.param("cpu", id="cpu"),
            pytest.param("cuda", id="cuda", marks=[
                pytest.mark.cuda, pytest.mark.skipif(not tl.cuda.is_available(),
                                                     reason=reason)])]


def fast_name_expected(device: str) -> bool:
    """Whether the fast path should run for `device` here (Numba / CuPy importable)."""
    from . import dispatch
    if dispatch.reference_forced():
        return False
    if device == "cpu":
        return dispatch.numba_available()
    return tl.cuda.is_available()


def graph_functions(t) -> set:
    """The names of the Functions in the autograd graph that made t (which path an op took)."""
    seen, stack, names = set(), [t.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        names.add(node.fn.__name__)
        stack.extend(i.grad_fn for i in node.inputs if i is not None)
    return names
