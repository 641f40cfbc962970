"""The one place an axis argument is checked against a tensor's number of dimensions.

NumPy wraps some out-of-range axes silently once code has taken `axis % ndim` (a (2, 3)
tensor concatenated along axis 2 would come back (4, 3)). Every op with an axis argument
calls `check_axis` / `check_axes` instead, so a wrong axis raises an error naming the op, the
axis and the number of dimensions, as PyTorch's IndexError does.
"""
from __future__ import annotations

__all__ = ["check_axis", "check_axes"]


def check_axis(op: str, axis, ndim: int, extra: int = 0) -> int:
    """`axis` as a non-negative int, after checking -n <= axis < n, n = ndim + extra.

    `extra=1` is for ops that insert an axis (stack, unsqueeze). A 0-d tensor accepts axis 0
    and -1, as PyTorch allows."""
    n = ndim + extra
    if not isinstance(axis, int) or isinstance(axis, bool):
        if hasattr(axis, "__index__") and not isinstance(axis, bool):
            axis = axis.__index__()
        else:
            raise TypeError(f"{op}: axis must be an int, got {type(axis).__name__} {axis!r}")
    bound = n if n > 0 else 1
    if not -bound <= axis < bound:
        raise IndexError(f"{op}: axis {axis} is out of range for a tensor of {ndim} "
                         f"dimension{'s' if ndim != 1 else ''} (expected {-bound} <= axis < "
                         f"{bound})")
    return axis % bound if n > 0 else 0


def check_axes(op: str, axis, ndim: int) -> tuple:
    """`axis` (None for all, an int or a sequence of ints) as a sorted tuple of distinct
    non-negative ints, each checked by `check_axis`."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    out = sorted(check_axis(op, a, ndim) for a in axis)
    if ndim == 0:          # reducing a 0-d tensor over "its" axis 0 reduces over nothing
        return ()
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {tuple(axis)} repeats an axis (tensor of {ndim} "
                         "dimensions)")
    return tuple(out)
