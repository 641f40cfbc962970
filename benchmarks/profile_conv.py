"""Where the conv-bound benchmark rows spend their time in tinylatent, pass by pass, next to
PyTorch's total for the same step (one thread each unless --threads).

    python -m benchmarks.profile_conv                       # conv2d 32->64, 14x14, B=128
    python -m benchmarks.profile_conv --c-in 1 --c-out 32 --hw 28
    python -m benchmarks.profile_conv --workload dcgan      # one row of the record
    python -m benchmarks.profile_conv --all                 # every conv row: a Markdown table

Each raw-array pass of the Numba backend (im2col, the conv GEMMs, the NCHW <-> channel-major
copy, col2im) is wrapped by a timer; "rest" is the step time the passes do not cover (graph
bookkeeping, elementwise ops and BatchNorm, Linear layers' matmuls, the loss, the optimizer).
The workloads are the benchmark files' own (same sizes as their full mode), built from the
same code. A profile of a shared, loaded machine is indicative only: read the shares, not
the milliseconds.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

from benchmarks import threadenv  # noqa: F401  (before numpy / torch load)

import numpy as np  # noqa: E402

PASSES = ("matmul", "im2col", "col2im", "batch_to_channel_major")
LABELS = {"matmul": "conv GEMMs", "im2col": "im2col", "col2im": "col2im",
          "batch_to_channel_major": "NCHW->CM copy", "rest": "rest"}


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


def _layer(key):
    from benchmarks import test_bench_layers as m
    tl_side, pt_side = m._pair(key, quick=False)
    return tl_side.step, None if pt_side is None else pt_side.step


def _model(key):
    from benchmarks import test_bench_models as m
    _, tl_side, pt_side = m._make(key, quick=False)
    return tl_side.step, None if pt_side is None else pt_side.step


def _contrastive(which):
    from benchmarks import test_bench_contrastive as m
    tl_side, pt_side = (m._pair if which == "simclr" else m._clip_pair)(128)
    return tl_side.step, None if pt_side is None else pt_side.step


def _gan(kind):
    import tinylatent as tl
    from benchmarks.harness import torch
    from benchmarks.test_bench_gan import _images
    x = _images(64)
    if torch is None:
        from tinylatent.models import DCGAN, WGANGP
        tl.manual_seed(2)
        model = (DCGAN if kind == "dcgan" else WGANGP)(hidden_channels=64)
        opts, xt = model.optimizers(), tl.tensor(x)
        return lambda: model.training_step(xt, opts, model.config.n_critic - 1), None
    from benchmarks.gan_reference import SideBySide
    s = SideBySide(kind, seed=2, hidden_channels=64)
    xt, xp = tl.tensor(x), torch.from_numpy(x)
    z = lambda: torch.randn(64, s.model.config.latent_features)          # noqa: E731
    eps = lambda: torch.rand(64) if kind == "wgangp" else None           # noqa: E731
    step = s.model.config.n_critic - 1          # every call updates both players, as timed
    return (lambda: s.tl_step(xt, step)), (lambda: s.twin.step(xp, z(), z(), eps()))


# the conv-bound rows of the benchmark record: name -> () -> (tl step, torch step or None)
WORKLOADS = {
    "conv_32_64": lambda: _conv_pair(32, 64, 14, 128),
    "conv_1_32": lambda: _conv_pair(1, 32, 28, 128),
    "conv_transpose": lambda: _layer("conv_transpose"),
    "masked_conv": lambda: _layer("masked_conv"),
    "wavenet": lambda: _layer("wavenet"),
    "conv_vae": lambda: _model("conv_vae"),
    "simclr_encoder": lambda: _model("simclr"),
    "simclr_model": lambda: _contrastive("simclr"),
    "clip": lambda: _contrastive("clip"),
    "dcgan": lambda: _gan("dcgan"),
    "wgangp": lambda: _gan("wgangp"),
}


def _conv_pair(c_in, c_out, hw, batch):
    import tinylatent as tl
    from benchmarks.harness import torch
    return (conv_step(tl, c_in, c_out, hw, batch),
            None if torch is None else conv_step(torch, c_in, c_out, hw, batch))


def _time_steps(step, steps: int) -> float:
    for _ in range(3):
        step()                                   # JIT compile, scratch buffers
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def profile(step, steps: int) -> dict:
    """{"total": seconds per step, "passes": {pass: seconds per step}} of a tinylatent step
    with the Numba backend's passes wrapped by timers."""
    import tinylatent.kernels.numba as be

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

    step()                                       # compile before the timers go in
    for name, fn in originals.items():
        setattr(be, name, timed(name, fn))
    try:
        total = _time_steps(step, steps)
    finally:
        for name, fn in originals.items():
            setattr(be, name, fn)
    shares = {k: spent[k] / (steps + 3) for k in PASSES}
    shares["rest"] = total - sum(shares.values())
    return {"total": total, "passes": shares}


def run(key: str, steps: int) -> dict:
    tl_step, torch_step = WORKLOADS[key]()
    prof = profile(tl_step, steps)
    prof["torch"] = None if torch_step is None else _time_steps(torch_step, steps)
    return prof


def markdown(results: dict) -> str:
    head = ("| workload | tinylatent ms | PyTorch ms | ratio | "
            + " | ".join(LABELS[k] for k in PASSES + ("rest",)) + " |")
    lines = [head, "|" + "---|" * (4 + len(PASSES) + 1)]
    for key, r in results.items():
        pt = r["torch"]
        cells = [f"{100 * r['passes'][k] / r['total']:.0f}%" for k in PASSES + ("rest",)]
        lines.append(f"| {key} | {r['total'] * 1e3:.2f} | "
                     + ("n/a | n/a" if pt is None else
                        f"{pt * 1e3:.2f} | {r['total'] / pt:.2f}x") + " | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default=None,
                    help="a row of the record (default: the conv2d given by the sizes)")
    ap.add_argument("--all", action="store_true", help="every workload, one Markdown table")
    ap.add_argument("--c-in", type=int, default=32)
    ap.add_argument("--c-out", type=int, default=64)
    ap.add_argument("--hw", type=int, default=14)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    from benchmarks.harness import set_threads
    set_threads(args.threads)
    if args.all or args.workload:
        keys = list(WORKLOADS) if args.all else [args.workload]
        results = {k: run(k, args.steps) for k in keys}
        print(f"{args.threads} thread(s), {args.steps} steps each")
        print(markdown(results))
        return
    shape = (args.c_in, args.c_out, args.hw, args.batch)
    WORKLOADS["conv2d"] = lambda: _conv_pair(*shape)
    r = run("conv2d", args.steps)
    print(f"conv2d {args.c_in}->{args.c_out} {args.hw}x{args.hw} 3x3 pad 1 B={args.batch} "
          f"fwd+bwd, {args.threads} thread(s), {args.steps} steps")
    pt = r["torch"]
    print(f"tinylatent {r['total'] * 1e3:.2f} ms per step"
          + ("" if pt is None else f"; PyTorch {pt * 1e3:.2f} ms (ratio "
                                   f"{r['total'] / pt:.2f})"))
    for name, t in sorted(r["passes"].items(), key=lambda kv: -kv[1]):
        print(f"  {LABELS[name]:24s} {t * 1e3:8.2f} ms  {100 * t / r['total']:5.1f}%")


if __name__ == "__main__":
    main()
