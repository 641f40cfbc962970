"""Colorization as a pretext task (Zhang et al. 2016) on Colored MNIST, and the L encoder probed.

    python examples/colorization.py                              # Colored MNIST, embedded, offline
    python examples/colorization.py --dataset fashion-mnist --limit-train 20000
    python examples/colorization.py --dataset cifar10 --image-size 32   # needs CIFAR-10 files

Digits (or Fashion-MNIST items) are painted with colorize_digits (tl.data.colored_mnist: a
bright stroke hue on a dark background hue); CIFAR-10 is used as it is. Colorization
(tinylatent/models/colorization.py) sees the Lab lightness only and predicts a distribution
over the in-gamut ab bins per pixel, trained with the class-rebalanced soft cross-entropy
(weights fitted on the training images, lambda = 0.5) and decoded by the annealed mean
(T = 0.38). After every epoch: the test ab error (mean per-pixel distance in the ab plane)
next to two colour-blind baselines, gray and the training images' mean colour. At the end, a
linear probe (tl.eval.linear_probe) on the FROZEN encoder applied to the GRAY images (their
L), next to the same network at its random init (same seed) and raw pixels, on the same
split (MNIST / Fashion-MNIST digit or item labels; CIFAR-10 classes).
Writes to --out: colorization.png (L input / prediction / truth), result.json,
loss_curve.png and checkpoint.npz; --resume continues (tl.train.Trainer).
"""
import argparse
import json
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset, make_grid
from tinylatent.data.colored_mnist import colorize_digits
from tinylatent.eval import linear_probe
from tinylatent.models import Colorization
from tinylatent.models.colorization import ab_error_baselines
from tinylatent.models.pretext import features_in_batches
from tinylatent.train import Trainer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Colorization pretext task (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist", "cifar10"], default="mnist")
    p.add_argument("--image-size", type=int, default=28, help="28 (MNIST), 32 (CIFAR-10)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden-channels", type=int, nargs="+", default=[16, 32])
    p.add_argument("--grid-step", type=float, default=10.0, help="ab bin size (paper: 10)")
    p.add_argument("--rebalance-lambda", type=float, default=0.5,
                   help="eq. 4 mix with uniform; 1 = no rebalancing")
    p.add_argument("--limit-train", type=int, default=4000, help="training images (CPU time)")
    p.add_argument("--probe-train", type=int, default=4000,
                   help="labelled training images for the linear probes")
    p.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (needs CuPy)")
    p.add_argument("--out", default="runs/colorization")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train-batches", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--limit-test", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def load(args, split, limit=None):
    """(sRGB (N, 3, H, W), gray (N, 1, H, W), labels) as float32 arrays in [0, 1]."""
    if args.dataset == "cifar10":
        x, y = tl.data.load_cifar10(split, data_dir=args.data_dir)
        rgb = x[:limit].astype(np.float32) / 255.0
        return rgb, rgb.mean(1, keepdims=True), y[:limit]   # gray: the channels' mean
    x, y = tl.data.load_mnist(args.dataset, split, data_dir=args.data_dir)
    x, y = x[:limit], y[:limit]
    rgb = colorize_digits(x, generator=0 if split == "train" else 1)[0]
    return rgb, (x[:, None] / 255.0).astype(np.float32), y


def save_pictures(model, x, args):
    model.eval()
    light = (model.lightness(x).numpy_host() + 1) / 2                    # L / 100
    rows = [np.repeat(light, 3, 1), model.colorize(x).numpy_host(), x.numpy_host()]
    grid = make_grid(np.concatenate(rows).transpose(0, 2, 3, 1), len(x))
    fig, ax = plt.subplots(figsize=(len(x) * 0.55 + 0.4, 2.3))
    ax.imshow(np.clip(grid, 0, 1))
    ax.set_title("rows: L input / prediction (annealed mean, T=0.38) / truth", fontsize=8)
    ax.axis("off")
    fig.savefig(f"{args.out}/colorization.png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rgb_tr, gray_tr, y_tr = load(args, "train", args.limit_train)
    rgb_te, gray_te, y_te = load(args, "test", args.limit_test)
    x_tr, x_te = (tl.tensor(a, device=args.device) for a in (rgb_tr, rgb_te))
    cfg = dict(image_size=args.image_size, hidden_channels=tuple(args.hidden_channels),
               grid_step=args.grid_step, rebalance_lambda=args.rebalance_lambda)
    tl.manual_seed(args.seed)
    model = Colorization(**cfg).to(args.device)
    tl.manual_seed(args.seed)
    random_init = Colorization(**cfg).to(args.device)   # the weights training starts from
    model.fit_rebalancing(x_tr)
    print(f"Colorization: {model.num_parameters():,} parameters, Q = {len(model.centres)} ab "
          f"bins, {len(x_tr):,} training images ({args.dataset})")
    baselines = ab_error_baselines(rgb_tr, rgb_te[:1000])
    loader = DataLoader(TensorDataset(x_tr), args.batch_size, shuffle=True,
                        generator=tl.Generator(args.seed))
    trainer = Trainer(model, tl.optim.Adam(model.parameters(), lr=args.lr), args.out,
                      config=vars(args),
                      evaluate=lambda m: {"test_ab_error": m.ab_error(x_te[:1000])})
    history = trainer.fit(loader, args.epochs, resume=args.resume,
                          max_steps_per_epoch=args.limit_train_batches)
    model.eval()
    random_init.eval()
    n = args.probe_train
    g_tr, g_te = (tl.tensor(a, device=args.device) for a in (gray_tr[:n], gray_te))
    probe = {"pixels": linear_probe(gray_tr[:n].reshape(len(g_tr), -1), y_tr[:n],
                                    gray_te.reshape(len(g_te), -1), y_te)}
    for name, m in (("trained", model), ("random init", random_init)):
        (f_tr,), (f_te,) = (features_in_batches(lambda b: [m.encode(b)], g) for g in (g_tr, g_te))
        probe[name] = linear_probe(f_tr, y_tr[:n], f_te, y_te)
    result = {"dataset": args.dataset, "test_ab_error": history[-1]["test_ab_error"],
              "baselines_ab_error": baselines, "probe": probe,
              "probe_train": len(g_tr), "probe_test": len(g_te)}
    print(f"test ab error {result['test_ab_error']:.2f} vs gray {baselines['gray']:.2f}, "
          f"mean colour {baselines['mean colour']:.2f} (CIE ab units)")
    print("linear probe on frozen features of gray images: " +
          "  ".join(f"{k} {v:.4f}" for k, v in probe.items()))
    with open(f"{args.out}/result.json", "w") as f:
        json.dump(result, f, indent=1)
    save_pictures(model, x_te[:12], args)
    print(f"pictures in {args.out}/")
    return result


if __name__ == "__main__":
    main()
