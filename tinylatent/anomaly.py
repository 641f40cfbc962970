"""Anomaly mode: find the op that first made a NaN or an infinity.

    with tl.autograd.detect_anomaly():        # or @tl.autograd.detect_anomaly()
        loss = model.loss(batch)[0]           # or tl.autograd.set_detect_anomaly(True)
        loss.backward()

While it is on, every op's forward output and every gradient a backward rule returns is
checked; the first one holding a NaN or an infinity raises `AnomalyError`, naming the op,
the pass (forward or backward), the shapes involved and the place in the user's code where
the op was created (the stack at creation, recorded for every op while the mode is on, as
PyTorch's detect_anomaly does).

Off (the default) it costs nothing: turning it on swaps `Function.apply` for a checking
wrapper and gives the backward pass a check to call; turning it off puts the plain `apply`
back, so the hot path never tests a flag. The checks synchronize with the GPU and record a
stack per op, so the mode is for debugging, not for training runs (benchmarks/
test_bench_anomaly.py measures what it costs).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback

from . import autograd

__all__ = ["AnomalyError", "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_AUTOGRAD_FILE = autograd.__file__
_PLAIN_APPLY = autograd.Function.__dict__["apply"]      # the classmethod, unwrapped below
_lock = threading.Lock()
_depth = [0]    # how many detect_anomaly regions / set_detect_anomaly(True) are active


class AnomalyError(RuntimeError):
    """A NaN or an infinity appeared in an op's output (forward) or in a gradient (backward)
    while anomaly mode was on."""


def is_anomaly_enabled() -> bool:
    return _depth[0] > 0


def _set(enabled: bool) -> None:
    with _lock:
        if enabled:
            autograd.Function.apply = classmethod(_checked_apply)
            autograd._anomaly_backward_check = _check_backward
        else:
            autograd.Function.apply = _PLAIN_APPLY
            autograd._anomaly_backward_check = None


def set_detect_anomaly(mode: bool) -> None:
    """Turn anomaly mode on or off for the whole process (PyTorch's function of this name)."""
    _depth[0] = 1 if mode else 0
    _set(bool(mode))


class detect_anomaly(contextlib.ContextDecorator):
    """Context manager / decorator: anomaly mode on inside, restored on exit.
    `check_nan=False` leaves the mode as it is (PyTorch's argument name)."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = bool(check_nan)
        self._prev: list[int] = []

    def __enter__(self):
        self._prev.append(_depth[0])
        if self.check_nan:
            _depth[0] += 1
            _set(True)
        return self

    def __exit__(self, *exc):
        _depth[0] = self._prev.pop()
        _set(_depth[0] > 0)
        return False


# ----------------------------------------------------------------------------- the checks
def _user_stack() -> traceback.StackSummary:
    """The stack of the code calling the op, outermost first. Source lines are read only if
    an error is reported (lookup_lines=False): recording stays cheap."""
    frames = traceback.StackSummary.extract(traceback.walk_stack(sys._getframe(2)),
                                            lookup_lines=False)
    frames.reverse()
    return frames


def _format_stack(frames) -> str:
    if not frames:
        return ("  (not recorded: the forward pass ran before anomaly mode was turned on; "
                "run it inside detect_anomaly() to see where the op was created)")
    user = [f for f in frames if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR)]
    where = ""
    if user:
        last = user[-1]
        where = f"  created at {last.filename}:{last.lineno} in {last.name}: " \
                f"{(last.line or '').strip()}\n"
    return where + "  stack at creation (most recent call last):\n" + \
        "".join(traceback.format_list(frames)).rstrip("\n")


def _bad_count(t) -> int:
    """How many entries of Tensor `t` are NaN or infinite (0 for integer/bool tensors)."""
    d = t.array
    if d.dtype.kind not in "fc":
        return 0
    xp = t.xp
    if bool(xp.isfinite(d).all()):
        return 0
    return int(d.size - int(xp.isfinite(d).sum()))


def _what(t) -> str:
    d = t.array
    xp = t.xp
    nan, inf = int(xp.isnan(d).sum()), int(xp.isinf(d).sum())
    return f"{nan} NaN and {inf} infinite of {d.size} values"


def _shapes(values) -> str:
    out = []
    for v in values:
        if isinstance(v, autograd.Tensor):
            out.append(str(tuple(v.shape)))
        elif v is None:
            out.append("None")
    return ", ".join(out) or "none"


def _checked_apply(cls, *args, **kwargs):
    frames = _user_stack()
    result = _PLAIN_APPLY.__func__(cls, *args, **kwargs)
    outputs = result if isinstance(result, tuple) else (result,)
    # an op run by a backward rule is reported as that rule's gradient (_check_backward)
    in_backward = any(f.name == "_run_backward" and f.filename == _AUTOGRAD_FILE
                      for f in frames)
    for i, out in enumerate(outputs):
        if not in_backward and isinstance(out, autograd.Tensor) and _bad_count(out):
            which = f"output {i}" if len(outputs) > 1 else "its output"
            raise AnomalyError(
                f"anomaly detected in {cls.__name__} forward: {which} of shape "
                f"{tuple(out.shape)} holds {_what(out)}; input shapes: {_shapes(args)}\n"
                + _format_stack(frames))
    for out in outputs:
        ctx = getattr(out, "_ctx", None)
        if ctx is not None:
            ctx.anomaly_stack = frames
    return result


def _check_backward(node, grads, grad_output) -> None:
    """Called by the backward pass after each backward rule while anomaly mode is on."""
    grads = grads if isinstance(grads, tuple) else (grads,)
    for i, g in enumerate(grads):
        if isinstance(g, autograd.Tensor) and _bad_count(g):
            inputs = node.inputs or ()
            raise AnomalyError(
                f"anomaly detected in {node.fn.__name__} backward: the gradient for input {i} "
                f"(shape {tuple(g.shape)}) holds {_what(g)}; incoming gradient of shape "
                f"{tuple(grad_output.shape)}, input shapes: {_shapes(inputs)}\n"
                + _format_stack(getattr(node, "anomaly_stack", None)))
