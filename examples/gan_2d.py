"""Train an MLP GAN on a 2-D toy density and draw its samples over the data, on top of the
discriminator's contours.

    python examples/gan_2d.py                        # ring of 8 Gaussians (std 0.05)
    python examples/gan_2d.py --dataset moons --epochs 20
    python examples/gan_2d.py --resume               # continue OUT/checkpoint.npz

The model is tinylatent/models/gan.py (Goodfellow et al. 2014, non-saturating generator
loss), trained by tl.train.Trainer with two Adam optimizers (model.optimizers()). After each
epoch, on 2,000 samples: for the 8 Gaussians, the fraction within 3 std of a mode ("hq") and
the smallest share of any mode ("min_mode", 1/8 = 0.125 when balanced). Writes
OUT/samples.png (data, samples, sigmoid D(x) contours), loss_curve.png and checkpoint.npz.
"""
import argparse
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset, eight_gaussians, eight_gaussians_modes
from tinylatent.data import sample_toy
from tinylatent.models import GAN
from tinylatent.train import Trainer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="MLP GAN on 2-D toy data (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--dataset", choices=["8gaussians", "moons", "rings", "checkerboard"],
                   default="8gaussians")
    p.add_argument("--std", type=float, default=0.05, help="8 Gaussians: each mode's std")
    p.add_argument("--n-train", type=int, default=25600, help="points drawn once")
    p.add_argument("--epochs", type=int, default=30, help="passes over the training points")
    p.add_argument("--batch-size", type=int, default=256, help="points per step")
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128], help="widths of both MLPs")
    p.add_argument("--latent-dim", type=int, default=8, help="size of z")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (both players)")
    p.add_argument("--seed", type=int, default=0, help="weights, data and shuffling")
    p.add_argument("--out", default="runs/gan_2d", help="folder for pictures and checkpoint")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train-batches", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def mode_scores(samples, std):
    """(fraction within 3 std of a mode, smallest fraction of all samples at one mode)."""
    dist = np.linalg.norm(samples[:, None] - eight_gaussians_modes()[None], axis=-1)  # (N, 8)
    good = dist.min(1) < 3 * std
    per_mode = np.bincount(dist.argmin(1)[good], minlength=8) / len(samples)
    return float(good.mean()), float(per_mode.min())


def draw(model, data, samples, path, title):
    lim = np.abs(data).max() * 1.25
    grid = np.linspace(-lim, lim, 200)
    xx, yy = np.meshgrid(grid, grid)
    pts = tl.tensor(np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32))   # (200^2, 2)
    with tl.no_grad():
        d = tl.ops.sigmoid(model.discriminator_logits(pts)).numpy().reshape(xx.shape)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    cs = ax.contourf(xx, yy, d, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    fig.colorbar(cs, label="sigmoid D(x) = P(real)")
    ax.scatter(data[:2000, 0], data[:2000, 1], s=2, c="k", label="data")
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c="gold", label="G(z)")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=title)
    ax.legend(loc="upper right", markerscale=4)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    tl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    if args.dataset == "8gaussians":
        data = eight_gaussians(args.n_train, rng, std=args.std)          # (N, 2)
    else:
        data = sample_toy(args.dataset, args.n_train, rng)
    loader = DataLoader(TensorDataset(tl.tensor(data)), args.batch_size, shuffle=True,
                        generator=tl.Generator(args.seed))
    model = GAN(hidden_features=tuple(args.hidden), latent_features=args.latent_dim,
                lr=args.lr)

    def evaluate(model):
        samples = model.sample(2000, generator=tl.Generator(args.seed + 1)).numpy()
        title = f"GAN on {args.dataset}"
        scores = {}
        if args.dataset == "8gaussians":
            hq, min_mode = mode_scores(samples, args.std)
            scores = {"hq": hq, "min_mode": min_mode}
            title += f"\n{hq:.1%} of samples within 3 std of a mode, smallest mode {min_mode:.1%}"
        draw(model, data, samples, f"{args.out}/samples.png", title)
        return scores

    trainer = Trainer(model, model.optimizers(), args.out, config=vars(args),
                      evaluate=evaluate)
    history = trainer.fit(loader, args.epochs, resume=args.resume,
                          max_steps_per_epoch=args.limit_train_batches or None)
    print(f"wrote {args.out}/samples.png, loss_curve.png, checkpoint.npz")
    return history


if __name__ == "__main__":
    main()
