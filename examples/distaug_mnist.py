"""Distribution augmentation (Jun et al. 2020) for MADE on binarised MNIST: the same model
trained (a) on clean images, (b) on images under the 8 D4 symmetries without telling it
which ("unconditioned augmentation"), (c) on the same views conditioned on the symmetry
(DistAug); all three scored on the clean test split, p(x | identity) for (c).

    python examples/distaug_mnist.py                       # early stopping per model
    python examples/distaug_mnist.py --epochs 1 --limit 300   # a smoke run
    python examples/distaug_mnist.py --resume              # continue OUT/<run>.npz

Embedded MNIST: 1,000 of its training images (--limit; few, so that MADE overfits them, the
regime where Jun et al. find augmentation pays) and 500 validation images (dynamically
binarised), the 1,000 test images (one fixed binarisation). Every run trains until its
validation NLL has not improved for --patience epochs (at most --epochs) and is scored on
the test split at its best validation epoch: early stopping for each of the three, as the
views need about 8x the updates of clean data. Validation curves go to nll.png under --out.
"""
import argparse
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.data import binarize
from tinylatent.models import DistAug

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RUNS = {"clean": dict(num_transforms=1), "unconditioned aug": dict(conditional=False),
        "DistAug (conditioned)": dict(conditional=True)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="DistAug for MADE on MNIST",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=1000, help="at most")
    p.add_argument("--patience", type=int, default=40,
                   help="stop after this many epochs without a better validation NLL")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--limit", type=int, default=1000, help="training images (of 3,500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/distaug_mnist")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def nll(model, x, bs=500):
    model.eval()
    with tl.no_grad():
        return float(np.mean([-model.log_prob(x[i:i + bs]).mean().item()
                              for i in range(0, len(x), bs)]))


def run(name, args, train, x_val, x_test):
    tl.manual_seed(args.seed)
    model = DistAug(hidden_features=(args.hidden,), seed=args.seed, **RUNS[name])
    opt = tl.optim.Adam(model.parameters(), lr=args.lr)
    ckpt = os.path.join(args.out, name.split()[0].lower() + ".npz")
    epoch, hist, best = 0, [], None
    if args.resume and os.path.exists(ckpt):
        ck = tl.load(ckpt)
        tl.serialization.check_resume_args(ck["args"], vars(args), ("epochs", "patience"))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        model._rng.bit_generator.state = ck["aug_rng"]
        epoch, hist, best = int(ck["epoch"]), list(ck["history"]), dict(ck["best"])
    def save():
        tl.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                 "aug_rng": model._rng.bit_generator.state, "epoch": len(hist),
                 "history": hist, "best": best, "args": vars(args)}, ckpt)
    for epoch in tqdm(range(epoch, args.epochs), initial=epoch, total=args.epochs, desc=name,
                      disable=not sys.stderr.isatty()):
        if best is not None and epoch - best["epoch"] >= args.patience:
            break  # early stopping: validation NLL has not improved for `patience` epochs
        rng = np.random.default_rng((args.seed, epoch))  # batches and binarisation per epoch
        perm = rng.permutation(len(train))
        model.train()
        for i in range(0, len(train), args.batch_size):
            x = tl.tensor(binarize(train[perm[i:i + args.batch_size]], rng))
            loss, _ = model.loss(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        hist.append(nll(model, x_val))
        if best is None or hist[-1] < best["val"]:  # the test split is scored only here
            best = {"epoch": epoch + 1, "val": hist[-1], "test": nll(model, x_test)}
        if (epoch + 1) % 10 == 0:
            save()
    save()
    return hist, best


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    images, _ = tl.data.load_mnist("mnist", "train")
    test, _ = tl.data.load_mnist("mnist", "test")
    images = images.reshape(len(images), -1)
    perm = np.random.default_rng(args.seed).permutation(len(images))
    train, val = images[perm[500:]][:args.limit], images[perm[:500]]
    x_val = tl.tensor(binarize(val, np.random.default_rng(7)))  # fixed binarisations
    x_test = tl.tensor(binarize(test.reshape(len(test), -1), np.random.default_rng(123)))
    result = {}
    plt.figure(figsize=(5.5, 3.6))
    for name in RUNS:
        hist, best = run(name, args, train, x_val, x_test)
        result[name] = best
        print(f"{name:22s} best validation epoch {best['epoch']:3d} of {len(hist)}: test NLL "
              f"{best['test']:.2f} nats (validation {best['val']:.2f})")
        plt.plot(np.arange(1, len(hist) + 1), hist, label=name)
    plt.xlabel("epoch")
    plt.ylabel("clean validation NLL (nats)")
    plt.ylim(None, min(r["val"] for r in result.values()) + 30)
    plt.legend()
    plt.tight_layout()
    plt.savefig(os.path.join(args.out, "nll.png"), dpi=110)
    plt.close()
    return result


if __name__ == "__main__":
    main()
