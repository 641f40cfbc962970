"""Learned 2-D densities: a rational-quadratic spline flow (and, for comparison, planar,
RealNVP and MAF flows) on two moons, rings and a checkerboard, as heat-maps side by side
(with the data and a KDE reference), PNG under --out.

    python examples/flows_2d.py                       # spline flow, 1500 steps a density
    python examples/flows_2d.py --models planar realnvp maf spline --out runs/flows_2d_all
    python examples/flows_2d.py --resume              # continue an interrupted run

Each panel's title gives the test log-likelihood (nats) next to the KDE's. The spline flow
comes within 0.1 nats of the KDE on all three; the affine flows (RealNVP, MAF) and planar
flows of the comparison lose the inner rings at this budget (RealNVP needs ~24 couplings of
128 units and 5000 steps to show them, still 0.14 nats short). Adam with a cosine learning-
rate decay; the trained flows are checkpointed in OUT/checkpoint.npz (after each
--ckpt-every steps and each finished flow), and --resume picks up where the run stopped.
"""
import argparse
import os
import sys
import time
import zlib

import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.data import sample_toy
from tinylatent.models import KernelDensity
from tinylatent.models.flows import maf_2d, planar_flow_2d, realnvp_2d, spline_2d

MODELS = {
    "planar": lambda: planar_flow_2d(32, generator=tl.Generator(0)),
    "realnvp": lambda: realnvp_2d(8, 64),
    "maf": lambda: maf_2d(8, 64),
    "spline": lambda: spline_2d(4, 64, num_bins=8, tail_bound=4.0),
}
LR = {"planar": 1e-2, "realnvp": 3e-3, "maf": 3e-3, "spline": 3e-3}
RESUMABLE = ("out", "ckpt_every")   # may differ on --resume; anything else is refused


def density_grid(log_prob_fn, lim: float, n: int = 150) -> np.ndarray:
    """exp(log p) on an n x n grid over [-lim, lim]^2, rows = y from top to bottom."""
    xs = np.linspace(-lim, lim, n, dtype=np.float32)
    gx, gy = np.meshgrid(xs, xs[::-1])
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)                  # (n * n, 2)
    return np.exp(log_prob_fn(pts)).reshape(n, n)


def train(flow, data, args, lr, key, ckpt, save) -> None:
    """Adam + cosine decay over args.steps; resumes from ckpt[key] when it is there."""
    opt = tl.optim.Adam(flow.parameters(), lr=lr)
    sched = tl.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    start, stream = 0, zlib.crc32(key.encode())
    if key in ckpt:
        flow.load_state_dict(ckpt[key]["model"])
        opt.load_state_dict(ckpt[key]["optimizer"])
        sched.load_state_dict(ckpt[key]["scheduler"])
        start = ckpt[key]["step"]
    bar = tqdm(range(start, args.steps), desc=key, leave=False, mininterval=1.0,
               disable=not sys.stderr.isatty())     # a bar on a terminal only, not in logs
    for step in bar:   # batch indices from (seed, flow, step): the same on resume
        rng = np.random.default_rng([args.seed, stream, step])
        loss, _ = flow.loss(tl.tensor(data[rng.integers(0, len(data), args.batch_size)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(nll=f"{loss.item():.3f}")
        if (step + 1) % args.ckpt_every == 0 or step + 1 == args.steps:
            ckpt[key] = {"model": flow.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "step": step + 1}
            save()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=tl.train.DefaultsHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["moons", "rings", "checkerboard"])
    ap.add_argument("--models", nargs="+", default=["spline"], choices=list(MODELS))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--out", default="runs/flows_2d")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    ckpt = {}
    if args.resume and os.path.exists(ckpt_path):
        saved = tl.load(ckpt_path)
        try:
            tl.serialization.check_resume_args(saved.get("args"), vars(args), RESUMABLE)
        except ValueError as e:
            raise SystemExit(f"flows_2d.py: {e}") from None
        ckpt = saved["flows"]
        print(f"resumed from {ckpt_path}: {sorted(ckpt)}")

    def save():
        tl.save({"flows": ckpt, "args": vars(args)}, ckpt_path)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = len(args.datasets), len(args.models) + 2
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for r, name in enumerate(args.datasets):
        rng = np.random.default_rng(args.seed)
        train_x = sample_toy(name, args.n_train, rng)
        test_x = sample_toy(name, 2000, rng)
        lim = 1.1 * float(np.abs(train_x).max())
        kde = KernelDensity().fit(train_x)
        kde_ll = kde.score(test_x)
        axes[r, 0].scatter(train_x[:2000, 0], train_x[:2000, 1], s=1, c="k")
        axes[r, 0].set_xlim(-lim, lim), axes[r, 0].set_ylim(-lim, lim)
        axes[r, 0].set_title(f"{name}: data")
        axes[r, 1].imshow(density_grid(kde.log_prob, lim), extent=(-lim, lim, -lim, lim))
        axes[r, 1].set_title(f"KDE  test ll {kde_ll:.2f}")
        for c, model in enumerate(args.models, start=2):
            tl.manual_seed(args.seed)                  # the same initialisation on resume
            flow, t0 = MODELS[model](), time.time()
            train(flow, train_x, args, LR[model], f"{name}/{model}", ckpt, save)
            flow.eval()
            with tl.no_grad():
                ll = flow.log_prob(tl.tensor(test_x)).mean().item()

                def log_prob(pts, flow=flow):
                    return flow.log_prob(tl.tensor(pts)).numpy()
                grid = density_grid(log_prob, lim)
            print(f"{name:12s} {model:8s} test log-lik {ll:7.3f} nats  (KDE {kde_ll:7.3f}, "
                  f"gap {kde_ll - ll:5.3f})  {args.steps} steps  {time.time() - t0:5.1f} s",
                  flush=True)
            axes[r, c].imshow(grid, extent=(-lim, lim, -lim, lim))
            axes[r, c].set_title(f"{model}  test ll {ll:.2f}")
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    path = os.path.join(args.out, "flows_2d.png")
    fig.savefig(path, dpi=80)
    print(f"saved {path}; checkpoint {ckpt_path}")


if __name__ == "__main__":
    main()
