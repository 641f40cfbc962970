"""Self-supervised pretext tasks on MNIST / Fashion-MNIST, judged by linear probes.

    python examples/pretext_images.py --task rotation                 # embedded MNIST offline
    python examples/pretext_images.py --task rotation --dataset fashion-mnist --limit-train 10000
    python examples/pretext_images.py --task jigsaw --hidden-channels 32 64
    python examples/pretext_images.py --task relpatch --hidden-channels 32 64

rotation: RotationNet (Gidaris et al. 2018) predicts which of 0/90/180/270 degrees each image
was turned by (all four rotations of every image in each batch); tinylatent/models/pretext.py.
jigsaw: Jigsaw (Noroozi & Favaro 2016) names which of 100 maximal-Hamming permutations
shuffled the 3x3 tiles (with gaps and jitter); probed on its concatenated tile codes.
relpatch: RelativePatch (Doersch et al. 2015) names where each of the 8 neighbours of the
centre tile lies; the same tiles and probe as jigsaw. exemplar: Exemplar (Dosovitskiy et
al. 2014): each of --num-exemplars training digits is its own class under strong random
transformations; its pretext accuracy is on fresh transformations of those seeds.
After training, a linear probe (tl.eval.linear_probe, multinomial logistic regression) is fit
on the FROZEN features of every conv block, next to the same network at its random init (the
same seed: the weights training started from) and raw pixels, on the same train/test split.
Writes to --out: probe.png (probe accuracy per block), rotations.png (test images turned by
0/90/180/270 with the predicted angle; rotation only), probe.json, loss_curve.png and
checkpoint.npz; --resume continues from the checkpoint (tl.train.Trainer).
"""
import argparse
import json
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset, make_grid
from tinylatent.eval import linear_probe
from tinylatent.models.pretext import Jigsaw, RotationNet, features_in_batches, rotate_all
from tinylatent.models.exemplar import Exemplar
from tinylatent.models.relative_patch import RelativePatch
from tinylatent.train import Trainer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

TASKS = {"rotation": RotationNet, "jigsaw": Jigsaw, "relpatch": RelativePatch,
         "exemplar": Exemplar}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Image pretext tasks + linear probes (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--task", choices=list(TASKS), default="rotation")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64, help="images (x4 rotations)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden-channels", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--limit-train", type=int, default=10000,
                   help="use at most this many training images (CPU time)")
    p.add_argument("--num-exemplars", type=int, default=500, help="exemplar: seed images")
    p.add_argument("--probe-train", type=int, default=4000,
                   help="labelled training images for the linear probes")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None, help="folder with the IDX *-ubyte(.gz) files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (needs CuPy)")
    p.add_argument("--out", default="runs/pretext_images")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train-batches", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--limit-test", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def load(args, split, limit=None):
    x, y = tl.data.load_mnist(args.dataset, split, data_dir=args.data_dir)
    x, y = x[:limit], y[:limit]
    return tl.tensor(x[:, None] / 255.0, dtype=tl.float32, device=args.device), y


def probe_table(models, x_tr, y_tr, x_te, y_te):
    """{name: [probe accuracy of block 1, ..., block K]} plus raw pixels, frozen features."""
    table = {"pixels": [linear_probe(x_tr.reshape(len(x_tr), -1).numpy_host(), y_tr,
                                     x_te.reshape(len(x_te), -1).numpy_host(), y_te)]}
    for name, model in models.items():
        model.eval()
        fn = model.block_features if hasattr(model, "block_features") else (
            lambda b: [model.encode(b)])  # noqa: E731  (jigsaw, relpatch: the tile codes)
        f_tr, f_te = features_in_batches(fn, x_tr), features_in_batches(fn, x_te)
        table[name] = [linear_probe(a, y_tr, b, y_te) for a, b in zip(f_tr, f_te)]
    return table


def save_pictures(model, table, x_te, args):
    with tl.no_grad():
        x_rot, _ = rotate_all(x_te[:8])
        pred = model(x_rot).argmax(-1).numpy_host()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.imshow(make_grid(x_rot.numpy_host()[:, 0].reshape(8, 4, 28, 28).transpose(1, 0, 2, 3)
                        .reshape(32, 28, 28), 8), cmap="gray")
    ax.set_title("rows: rotated by 0/90/180/270 deg; predicted angle correct in "
                 f"{(pred == np.tile(np.arange(4), 8)).sum()}/32", fontsize=8)
    ax.axis("off")
    fig.savefig(f"{args.out}/rotations.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    blocks = np.arange(1, len(table["trained"]) + 1)
    ax.plot(blocks, table["trained"], "o-", label="rotation-trained (frozen)")
    ax.plot(blocks, table["random init"], "s--", label="same net, random init (frozen)")
    ax.axhline(table["pixels"][0], color="gray", ls=":", label="raw pixels")
    ax.set(xlabel="conv block", ylabel="linear probe test accuracy", xticks=blocks,
           title=f"{args.dataset}: linear probe per block")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(f"{args.out}/probe.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    x_tr, y_tr = load(args, "train", args.limit_train)
    x_te, y_te = load(args, "test", args.limit_test)
    tl.manual_seed(args.seed)
    cls, kw = TASKS[args.task], {"hidden_channels": tuple(args.hidden_channels)}
    data, x_eval = (x_tr,), x_te
    if args.task == "exemplar":  # seeds and their ids; accuracy on fresh transformations
        n_ex = min(args.num_exemplars, len(x_tr))
        kw["num_exemplars"], x_eval = n_ex, x_tr[:n_ex]
        data = (x_tr[:n_ex], tl.tensor(np.arange(n_ex), device=args.device))
    model = cls(**kw).to(args.device)
    tl.manual_seed(args.seed)   # the very weights training starts from, kept untrained
    random_init = cls(**kw).to(args.device)
    print(f"{args.task}: {model.num_parameters():,} parameters, {len(x_tr):,} training images")
    loader = DataLoader(TensorDataset(*data), args.batch_size, shuffle=True,
                        generator=tl.Generator(args.seed))
    trainer = Trainer(model, tl.optim.Adam(model.parameters(), lr=args.lr), args.out,
                      config=vars(args), evaluate=lambda m: {
                          "test_pretext_acc": m.pretext_accuracy(x_eval)})
    history = trainer.fit(loader, args.epochs, resume=args.resume,
                          max_steps_per_epoch=args.limit_train_batches)
    model.eval()
    n = args.probe_train
    table = probe_table({"trained": model, "random init": random_init},
                        x_tr[:n], y_tr[:n], x_te, y_te)
    result = {"pretext_test_accuracy": history[-1]["test_pretext_acc"], "probe": table,
              "probe_train": min(n, len(x_tr)), "probe_test": len(x_te)}
    print(f"pretext ({args.task}) test accuracy: {result['pretext_test_accuracy']:.4f}")
    for name, accs in table.items():
        print(f"linear probe, {name:>11}: " + "  ".join(
            f"block {i + 1} {a:.4f}" if name != "pixels" else f"{a:.4f}"
            for i, a in enumerate(accs)))
    with open(f"{args.out}/probe.json", "w") as f:
        json.dump(result, f, indent=1)
    if args.task == "rotation":
        save_pictures(model, table, x_te, args)
    print(f"pictures in {args.out}/")
    return result


if __name__ == "__main__":
    main()
