"""Masked autoencoder (He et al. 2022) on MNIST / Fashion-MNIST: reconstructions + linear probe.

    python examples/mae_mnist.py                              # embedded MNIST offline, 75% mask
    python examples/mae_mnist.py --mask-ratio 0.5 --out runs/mae_mnist_50   # the ratio sweep
    python examples/mae_mnist.py --dataset fashion-mnist --limit-train 20000

A ViT encoder sees only the visible (1 - mask ratio) of the 7x7 patches; a light decoder
with mask tokens predicts the masked patches' per-patch-normalised pixels
(tinylatent/models/mae.py). After every epoch: the masked-patch MSE on test images next to
the mean-patch baseline (each masked patch predicted by its own true mean). At the end, a
linear probe (tl.eval.linear_probe) on the FROZEN encoder (mean of its tokens, no masking)
next to the same ViT at its random init (same seed) and raw pixels, on the same split.
Writes to --out: reconstructions.png (test images / masked input / reconstruction),
result.json, loss_curve.png and checkpoint.npz; --resume continues (tl.train.Trainer).
"""
import argparse
import json
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset, make_grid
from tinylatent.eval import linear_probe
from tinylatent.models.mae import MAE, masked_patch_mse
from tinylatent.models.pretext import features_in_batches
from tinylatent.train import Trainer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Masked autoencoder on MNIST (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--patch-size", type=int, default=7)
    p.add_argument("--hidden-features", type=int, default=64, help="encoder width")
    p.add_argument("--num-layers", type=int, default=3, help="encoder blocks")
    p.add_argument("--limit-train", type=int, default=10000,
                   help="use at most this many training images (CPU time)")
    p.add_argument("--probe-train", type=int, default=4000,
                   help="labelled training images for the linear probes")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None, help="folder with the IDX *-ubyte(.gz) files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (needs CuPy)")
    p.add_argument("--out", default="runs/mae_mnist")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train-batches", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--limit-test", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def load(args, split, limit=None):
    x, y = tl.data.load_mnist(args.dataset, split, data_dir=args.data_dir)
    return tl.tensor(x[:limit, None] / 255.0, dtype=tl.float32, device=args.device), y[:limit]


def evaluate(model, x_te, seed):
    mse, baseline = masked_patch_mse(model, x_te[:1000], generator=tl.Generator(seed))
    return {"test_masked_mse": mse, "mean_patch_baseline": baseline}


def save_reconstructions(model, x, args):
    x_hat, mask = model.reconstruct(x, generator=tl.Generator(args.seed), return_mask=True)
    x, x_hat, mask = x.numpy_host()[:, 0], x_hat.numpy_host()[:, 0], mask.numpy_host()[:, 0]
    masked_in = np.where(mask == 1, 0.35, x)            # grey where the encoder sees nothing
    rows = np.concatenate([x, masked_in, np.clip(x_hat, 0, 1)])
    fig, ax = plt.subplots(figsize=(len(x) * 0.5 + 0.4, 2.2))
    ax.imshow(make_grid(rows, len(x)), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"test images / visible {1 - args.mask_ratio:.0%} (grey = masked) / MAE "
                 "reconstruction (masked patches: prediction x true patch std + mean)",
                 fontsize=7)
    ax.axis("off")
    fig.savefig(f"{args.out}/reconstructions.png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    x_tr, y_tr = load(args, "train", args.limit_train)
    x_te, y_te = load(args, "test", args.limit_test)
    cfg = dict(patch_size=args.patch_size, hidden_features=args.hidden_features,
               num_layers=args.num_layers, mask_ratio=args.mask_ratio)
    tl.manual_seed(args.seed)
    model = MAE(**cfg).to(args.device)
    tl.manual_seed(args.seed)
    random_init = MAE(**cfg).to(args.device)            # the weights training starts from
    print(f"MAE: {model.num_parameters():,} parameters, {model.num_patches} patches "
          f"({model.num_patches - int(round(model.num_patches * args.mask_ratio))} visible), "
          f"{len(x_tr):,} training images")
    loader = DataLoader(TensorDataset(x_tr), args.batch_size, shuffle=True,
                        generator=tl.Generator(args.seed))
    trainer = Trainer(model, tl.optim.Adam(model.parameters(), lr=args.lr), args.out,
                      config=vars(args), evaluate=lambda m: evaluate(m, x_te, args.seed))
    history = trainer.fit(loader, args.epochs, resume=args.resume,
                          max_steps_per_epoch=args.limit_train_batches)
    model.eval()
    random_init.eval()
    n = args.probe_train
    probe = {"pixels": linear_probe(x_tr[:n].reshape(min(n, len(x_tr)), -1).numpy_host(),
                                    y_tr[:n], x_te.reshape(len(x_te), -1).numpy_host(), y_te)}
    for name, m in (("trained", model), ("random init", random_init)):
        (f_tr,), (f_te,) = (features_in_batches(lambda b: [m.encode(b)], x)
                            for x in (x_tr[:n], x_te))
        probe[name] = linear_probe(f_tr, y_tr[:n], f_te, y_te)
    masked = model.num_patches - int(round(model.num_patches * (1 - args.mask_ratio)))
    result = {"mask_ratio": args.mask_ratio, "masked_patches": [masked, model.num_patches],
              **{k: history[-1][k] for k in
                                                ("test_masked_mse", "mean_patch_baseline")},
              "probe": probe, "probe_train": min(n, len(x_tr)), "probe_test": len(x_te)}
    print(f"masked-patch MSE (normalised pixels, {args.mask_ratio:.0%} masked) "
          f"{result['test_masked_mse']:.4f} vs mean-patch baseline "
          f"{result['mean_patch_baseline']:.4f}")
    print("linear probe on frozen features: " + "  ".join(f"{k} {v:.4f}"
                                                          for k, v in probe.items()))
    with open(f"{args.out}/result.json", "w") as f:
        json.dump(result, f, indent=1)
    save_reconstructions(model, x_te[:12], args)
    print(f"pictures in {args.out}/")
    return result


if __name__ == "__main__":
    main()
