"""SimCLR batch size x temperature sweep (Chen et al. 2020, Fig. 9 and Table 5): one SimCLR
per cell from the same initial weights and seed, the same number of epochs, then the test
accuracy of a linear probe on the FROZEN encoder's h = f(x) (features under no_grad; only
the probe is fitted).

    python examples/simclr_sweep.py                                   # embedded MNIST
    python examples/simclr_sweep.py --dataset fashion-mnist --limit-images 10000
    python examples/simclr_sweep.py ... --resume                      # finished cells kept

Equal epochs give a batch of B only N / B steps: the larger batches here train with fewer
updates (the paper's Fig. 9 compares them the same way, at 100 - 800 epochs). Each cell
trains in OUT/b<B>_t<tau>/ (its own checkpoint.npz, so --resume also continues an
interrupted cell); results.json holds the finished cells. Writes sweep.png (the table as a
heat map with its values), results.txt (the same table in Markdown, with the raw-pixel and
random-init probes of the same split as baselines) under runs/simclr_sweep/<dataset>.
"""
import argparse
import json
import os

import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset
from tinylatent.eval import frozen_features, linear_probe, matrix_picture
from tinylatent.models import SimCLR


# The recipe the README's sweep was measured with, SimCLR's defaults before BatchNorm and
# the 512-wide h (examples/contrastive.py trains those): no BatchNorm, h 128, crop 0.4-1,
# rotation 10 degrees and noise, no flip or jitter.
RECIPE = dict(batch_norm=False, hidden_features=128, crop_scale=0.4, degrees=10.0,
              flip=False, jitter=0.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--batch-sizes", default="32,64,128,256", help="comma-separated")
    p.add_argument("--temperatures", default="0.1,0.2,0.5,1.0", help="comma-separated")
    p.add_argument("--epochs", type=int, default=2, help="per cell")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam, every cell")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default runs/simclr_sweep/<dataset>")
    p.add_argument("--resume", action="store_true", help="keep finished cells, continue")
    p.add_argument("--limit-train-batches", type=int, default=0, help="0 = all (smoke tests)")
    p.add_argument("--limit-images", type=int, default=0, help="first N train images")
    return p.parse_args(argv)


def probe(model, x, y, xt, yt):
    return linear_probe(frozen_features(model.encode, x, module=model), y,
                        frozen_features(model.encode, xt, module=model), yt)


def main(argv=None):
    args = parse_args(argv)
    args.out = args.out or f"runs/simclr_sweep/{args.dataset}"
    os.makedirs(args.out, exist_ok=True)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    taus = [float(t) for t in args.temperatures.split(",")]
    x, y = tl.data.load_mnist(args.dataset, "train")
    xt, yt = tl.data.load_mnist(args.dataset, "test")
    x, xt = ((v.astype(np.float32) / 255.0)[:, None] for v in (x, xt))   # (N, 1, 28, 28)
    if args.limit_images:
        x, y = x[:args.limit_images], y[:args.limit_images]
    path = os.path.join(args.out, "results.json")
    done = json.load(open(path)) if args.resume and os.path.exists(path) else {}
    if "raw pixels" not in done:                               # baselines, same split
        tl.manual_seed(args.seed)
        done["raw pixels"] = linear_probe(x.reshape(len(x), -1), y, xt.reshape(len(xt), -1), yt)
        done["random-init h"] = probe(SimCLR(**RECIPE), x, y, xt, yt)
    for b in sizes:
        for tau in taus:
            key = f"b{b}_t{tau}"
            if key in done:
                continue
            tl.manual_seed(args.seed)                          # the same initial weights
            model = SimCLR(temperature=tau, **RECIPE)
            loader = DataLoader(TensorDataset(x), b, shuffle=True, drop_last=True,
                                generator=tl.Generator(args.seed))
            trainer = tl.train.Trainer(model, tl.optim.Adam(model.parameters(), lr=args.lr),
                                       os.path.join(args.out, key),
                                       config={"batch_size": b, "temperature": tau,
                                               "lr": args.lr, "seed": args.seed,
                                               "dataset": args.dataset, "epochs": args.epochs})
            trainer.fit(loader, args.epochs, resume=args.resume,
                        max_steps_per_epoch=args.limit_train_batches or None)
            done[key] = probe(model, x, y, xt, yt)
            print(f"batch {b}, tau {tau}: linear probe {done[key]:.4f}", flush=True)
            with open(path, "w") as f:
                json.dump(done, f, indent=1)
    table = np.array([[done[f"b{b}_t{t}"] for t in taus] for b in sizes])
    matrix_picture(table, f"{args.out}/sweep.png", f"SimCLR linear probe (frozen h), "
                   f"{args.dataset}, {args.epochs} epochs", xlabel="temperature",
                   ylabel="batch size", xticks=taus, yticks=sizes)
    lines = [f"SimCLR on {args.dataset} ({len(x)} train / {len(xt)} test), {args.epochs} "
             f"epochs per cell: linear-probe test accuracy on the frozen h; raw pixels "
             f"{done['raw pixels']:.4f}, random-init h {done['random-init h']:.4f}", "",
             "| batch \\ tau | " + " | ".join(str(t) for t in taus) + " |",
             "|---" * (len(taus) + 1) + "|"]
    lines += [f"| {b} | " + " | ".join(f"{v:.4f}" for v in row) + " |"
              for b, row in zip(sizes, table)]
    print("\n".join(lines))
    with open(os.path.join(args.out, "results.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return done


if __name__ == "__main__":
    main()
