"""The hook from the reference hot ops (conv, attention, coupling, contrastive) into
kernels/: one place decides whether a fast kernel runs."""
from __future__ import annotations


def try_fast(name: str, *args):
    """Run the fast kernel registered for `name` on the device of args[0].

    Returns its result, or None when there is no kernel (tinylatent installed without its
    kernels package, a device without one, the reference forced) or the kernel declines
    these arguments; the caller then runs its reference.
    """
    try:
        from tinylatent.kernels.dispatch import lookup
    except ImportError:  # tinylatent installed without its kernels package
        return None
    fast = lookup(name, args[0])
    return None if fast is None else fast(*args)
