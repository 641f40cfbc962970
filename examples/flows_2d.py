"""Learned 2-D densities: planar flow vs RealNVP vs MAF on two moons, rings and a
checkerboard, as heat-maps side by side (with the data and a KDE reference), PNG to --out.

    python examples/flows_2d.py --steps 1500 --out out/flows_2d

Each panel's title gives the test log-likelihood (nats) next to the KDE's.
"""
import argparse
import os
import time

import numpy as np

import tinylatent as tl
from tinylatent.models.flows import maf_2d, planar_flow_2d, realnvp_2d
from tinylatent.data import sample_toy
from tinylatent.models import KernelDensity

MODELS = {
    "planar": lambda: planar_flow_2d(32, generator=tl.Generator(0)),
    "realnvp": lambda: realnvp_2d(8, 64),
    "maf": lambda: maf_2d(5, 64),
}
LR = {"planar": 1e-2, "realnvp": 3e-3, "maf": 3e-3}


def train(flow, data: np.ndarray, steps: int, lr: float, batch: int, rng) -> None:
    opt = tl.optim.Adam(flow.parameters(), lr=lr)
    for _ in range(steps):
        loss, _ = flow.loss(tl.tensor(data[rng.integers(0, len(data), batch)]))
        opt.zero_grad()
        loss.backward()
        opt.step()


def density_grid(log_prob_fn, lim: float, n: int = 150) -> np.ndarray:
    """exp(log p) on an n x n grid over [-lim, lim]^2, rows = y from top to bottom."""
    xs = np.linspace(-lim, lim, n, dtype=np.float32)
    gx, gy = np.meshgrid(xs, xs[::-1])
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    return np.exp(log_prob_fn(pts)).reshape(n, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["moons", "rings", "checkerboard"])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/flows_2d")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = len(args.datasets), len(args.models) + 2
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for r, name in enumerate(args.datasets):
        rng = np.random.default_rng(args.seed)
        tl.manual_seed(args.seed)
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
            flow = MODELS[model]()
            t0 = time.time()
            train(flow, train_x, args.steps, LR[model], args.batch_size, rng)
            with tl.no_grad():
                ll = flow.log_prob(tl.tensor(test_x)).mean().item()

                def log_prob(pts, flow=flow):
                    return flow.log_prob(tl.tensor(pts)).numpy()
                grid = density_grid(log_prob, lim)
            print(f"{name:12s} {model:8s} test log-lik {ll:7.3f} nats  (KDE {kde_ll:7.3f})  "
                  f"{time.time() - t0:5.1f} s", flush=True)
            axes[r, c].imshow(grid, extent=(-lim, lim, -lim, lim))
            axes[r, c].set_title(f"{model}  test ll {ll:.2f}")
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    path = os.path.join(args.out, "flows_2d.png")
    fig.savefig(path, dpi=80)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
