"""Where a conv2d forward + backward spends its time in tinylatent, pass by pass, next to
PyTorch's total for the same work (one thread each unless --threads).

    python -m benchmarks.profile_conv                       # 32->64, 14x14, 3x3, pad 1, B=128
    python -m benchmarks.profile_conv --c-in 1 --c-out 32 --hw 28

Each raw-array pass of the Numba backend (im2col, the GEMMs, the NCHW <-> channel-major copy,
col2im) is wrapped by a timer; "autograd + rest" is the step time the passes do not cover
(graph bookkeeping, the bias/gradient slicing copies, the loss). A profile of a shared,
loaded machine is indicative only: read the shares, not the milliseconds.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

from benchmarks import threadenv  # noqa: F401  (before numpy / torch load)

import numpy as np  # noqa: E402

PASSES = ("im2col", "col2im", "matmul", "batch_to_channel_major")


def conv_step(L, c_in: int, c_out: int, hw: int, batch: int):
    """One library's conv2d forward + backward step (L: tinylatent or torch)."""
    rng = np.random.default_rng(0)
    x = L.tensor(rng.standard_normal((batch, c_in, hw, hw)).astype(np.float32),
                 requires_grad=c_in > 1)
    conv = L.nn.Conv2d(c_in, c_out, 3, padding=1)
    g = L.tensor(rng.standard_normal((batch, c_out, hw, hw)).astype(np.float32))

    def step():
        x.grad = conv.weight.grad = conv.bias.grad = None
        (conv(x) * g).sum().backward()
    return step


def _time_steps(step, steps: int) -> float:
    for _ in range(3):
        step()                                   # JIT compile, scratch buffers
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def profile(c_in: int, c_out: int, hw: int, batch: int, steps: int) -> dict:
    import tinylatent.kernels.numba as be
    import tinylatent as tl

    spent: dict[str, float] = defaultdict(float)
    originals = {name: getattr(be, name) for name in PASSES}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t
        return wrapper

    step = conv_step(tl, c_in, c_out, hw, batch)
    step()                                       # compile before the timers go in
    for name, fn in originals.items():
        setattr(be, name, timed(name, fn))
    try:
        total = _time_steps(step, steps)
    finally:
        for name, fn in originals.items():
            setattr(be, name, fn)
    shares = {k: v / (steps + 3) for k, v in spent.items()}
    shares["autograd + rest"] = total - sum(shares.values())
    return {"total": total, "passes": shares}


def torch_total(c_in: int, c_out: int, hw: int, batch: int, steps: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    return _time_steps(conv_step(torch, c_in, c_out, hw, batch), steps)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--c-in", type=int, default=32)
    ap.add_argument("--c-out", type=int, default=64)
    ap.add_argument("--hw", type=int, default=14)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    from benchmarks.harness import set_threads
    set_threads(args.threads)
    shape = (args.c_in, args.c_out, args.hw, args.batch, args.steps)
    tl_prof = profile(*shape)
    pt = torch_total(*shape)
    print(f"conv2d {args.c_in}->{args.c_out} {args.hw}x{args.hw} 3x3 pad 1 B={args.batch} "
          f"fwd+bwd, {args.threads} thread(s), {args.steps} steps")
    print(f"tinylatent {tl_prof['total'] * 1e3:.2f} ms per step"
          + ("" if pt is None else f"; PyTorch {pt * 1e3:.2f} ms (ratio "
                                   f"{tl_prof['total'] / pt:.2f})"))
    for name, t in sorted(tl_prof["passes"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:24s} {t * 1e3:8.2f} ms  {100 * t / tl_prof['total']:5.1f}%")


if __name__ == "__main__":
    main()
