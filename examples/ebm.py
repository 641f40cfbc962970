"""Train an energy-based model with short-run Langevin negatives from a replay buffer
(Du & Mordatch 2019) on a 2-D toy set or on MNIST, and draw what it learned.

    python examples/ebm.py                            # two moons
    python examples/ebm.py --dataset 8gaussians --epochs 400 --cosine-epochs 400
    python examples/ebm.py --dataset mnist            # Langevin samples from buffer and noise

2-D: the energy is normalised on a 200 x 200 grid (models/ebm.py, grid_log_partition) and the
test NLL is set next to a Gaussian KDE's (bandwidth chosen on a validation split). 8 Gaussians
samples its negatives with replica exchange over the temperatures (1, 2, 4, 8) (models/ebm.py):
plain short-run Langevin never crosses between its modes, so the mode masses drift; pictures:
energy.png (density exp(-E)/Z, data, buffer and noise-started Langevin samples).
MNIST: samples_buffer.png and samples_noise.png. Every epoch: checkpoint.npz (--resume
continues exactly, the replay buffer included) and loss_curve.png under --out.
"""
import argparse
import json
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data import MNIST, DataLoader, TensorDataset, make_grid
from tinylatent.data.toy2d import sample_toy
from tinylatent.models import EBM, KernelDensity

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

# 2-D: unadjusted Langevin (noise sqrt(step)); MNIST: Du & Mordatch's decoupled step, clipped
PRESETS = {"2d": dict(in_features=2, hidden_features=(128, 128), langevin_steps=20,
                      step_size=0.01, alpha=0.0, data_low=-4.0, data_high=4.0),
           "mnist": dict(in_features=784, hidden_features=(512, 256), langevin_steps=40,
                         step_size=10.0, noise_std=0.005, grad_clip=0.01, alpha=1.0,
                         data_low=0.0, data_high=1.0, clamp=True)}
TEMPERATURES = {"8gaussians": (1.0, 2.0, 4.0, 8.0)}   # the default ladder where one is needed


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="EBM with Langevin negatives (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--dataset", choices=["moons", "8gaussians", "mnist"], default="moons")
    p.add_argument("--epochs", type=int, default=None, help="default 200 (2-D), 15 (MNIST)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=None, help="default 2e-3 (2-D), 1e-4 (MNIST)")
    p.add_argument("--cosine-epochs", type=int, default=None,
                   help="length of the cosine lr decay (default 200 for 2-D, none for MNIST); "
                        "not tied to --epochs, so a run can be stopped and resumed exactly")
    p.add_argument("--temperatures", type=float, nargs="+", default=None,
                   help="replica-exchange ladder starting at 1 (models/ebm.py); 1: plain "
                        "Langevin; default (1, 2, 4, 8) for 8gaussians, 1 otherwise")
    p.add_argument("--n-train", type=int, default=2000, help="2-D training points")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default runs/ebm/DATASET")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


class _Unbatch(tl.nn.Module):
    """The Trainer hands over (x,) tuples from the TensorDataset; the EBM takes x."""

    def __init__(self, ebm):
        super().__init__()
        self.ebm = ebm

    def loss(self, batch):
        return self.ebm.loss(batch[0])


def toy_pictures(ebm, data, kde_nll, nll, args):
    lo, hi, n = ebm.config.data_low, ebm.config.data_high, 200
    c = lo + (hi - lo) / n * (np.arange(n) + 0.5)
    gx, gy = np.meshgrid(c, c, indexing="xy")
    pts = tl.tensor(np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32))     # (n*n, 2)
    log_z = ebm.log_partition()
    with tl.no_grad():
        density = np.exp(ebm.log_prob(pts, log_z=log_z).numpy_host()).reshape(n, n)
    noise = ebm.sample(500, generator=tl.Generator(args.seed), steps=200).numpy_host()
    buf = ebm.buffer.numpy_host()[:500]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    axes[0].imshow(density, origin="lower", extent=(lo, hi, lo, hi), cmap="viridis")
    axes[0].set_title(f"exp(-E)/Z on the grid: test NLL {nll:.3f} (KDE {kde_nll:.3f})",
                      fontsize=9)
    for ax, x, title in ((axes[1], buf, "replay-buffer samples"),
                         (axes[2], noise, "Langevin from noise, 200 steps")):
        ax.scatter(data[:500, 0], data[:500, 1], s=2, c="0.7", label="data")
        ax.scatter(x[:, 0], x[:, 1], s=2, c="C3", label="samples")
        ax.set(xlim=(lo, hi), ylim=(lo, hi), title=title)
        ax.legend(loc="upper right", fontsize=7)
    fig.savefig(f"{args.out}/energy.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def mnist_pictures(ebm, args):
    for name, x in (("buffer", ebm.buffer[:64]),
                    ("noise", ebm.sample(64, generator=tl.Generator(args.seed), steps=200))):
        fig, ax = plt.subplots(figsize=(5, 5.3))
        ax.imshow(make_grid(x.numpy_host(), 8, image_shape=(28, 28)), cmap="gray",
                  vmin=0, vmax=1)
        ax.set_title(f"Langevin samples from the {name}" +
                     (" (200 steps from uniform noise)" if name == "noise" else ""), fontsize=9)
        ax.axis("off")
        fig.savefig(f"{args.out}/samples_{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    toy = args.dataset != "mnist"
    args.epochs = args.epochs or (200 if toy else 15)
    args.lr = args.lr or (2e-3 if toy else 1e-4)
    args.out = args.out or f"runs/ebm/{args.dataset}"
    os.makedirs(args.out, exist_ok=True)
    if toy:
        rng = np.random.default_rng(args.seed)
        x, x_val, x_test = (sample_toy(args.dataset, n, rng) for n in (args.n_train, 1000, 5000))
    else:
        x = MNIST("train", flatten=True).tensors[0].numpy_host()
    if args.limit_train:
        x = x[:args.limit_train]
    tl.manual_seed(args.seed)
    preset = dict(PRESETS["2d" if toy else "mnist"])
    preset["temperatures"] = tuple(args.temperatures or TEMPERATURES.get(args.dataset, (1.0,)))
    ebm = EBM(**preset)
    opt = tl.optim.Adam(ebm.parameters(), lr=args.lr, betas=(0.0, 0.999) if not toy
                        else (0.9, 0.999))    # Du & Mordatch use beta1 = 0 on images
    loader = DataLoader(TensorDataset(tl.tensor(x)), args.batch_size, shuffle=True,
                        generator=tl.Generator(args.seed))
    if args.cosine_epochs is None:
        args.cosine_epochs = 200 if toy else 0
    sched = tl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.cosine_epochs) \
        if args.cosine_epochs else None

    def evaluate(model):       # 2-D: NLL on the validation split, normalised on the grid
        if not toy:
            return {}
        with tl.no_grad():
            return {"val_nll": -ebm.log_prob(tl.tensor(x_val)).mean()}

    trainer = tl.train.Trainer(_Unbatch(ebm), opt, args.out, config=vars(args),
                               evaluate=evaluate, scheduler=sched)
    history = trainer.fit(loader, epochs=args.epochs, resume=args.resume)
    results = {"dataset": args.dataset, "epochs": len(history)}
    if toy:
        kde = KernelDensity().fit(x, rng=np.random.default_rng(args.seed))
        with tl.no_grad():
            results.update(test_nll=-float(ebm.log_prob(tl.tensor(x_test)).mean().item()),
                           kde_test_nll=-kde.score(x_test), kde_bandwidth=kde.bandwidth)
        print(f"test NLL (energy normalised on a 200x200 grid) {results['test_nll']:.3f} nats;"
              f" KDE (h = {kde.bandwidth:.3f}) {results['kde_test_nll']:.3f}")
        toy_pictures(ebm, x, results["kde_test_nll"], results["test_nll"], args)
    else:
        mnist_pictures(ebm, args)
    with open(f"{args.out}/results.json", "w") as fh:
        json.dump(results, fh, indent=1)
    print(f"pictures, checkpoint and results.json in {args.out}/")
    return history, results


if __name__ == "__main__":
    main()
