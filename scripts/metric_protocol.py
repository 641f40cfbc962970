"""Choose metric-learning settings without the unseen classes (README row "Siamese / triplet").

    python scripts/metric_protocol.py --rho 0.5 --margin 0.05 --epochs 8   # the chosen recipe
    python scripts/metric_protocol.py --margin 0.2 --epochs 10             # FaceNet's margin

For each digit h of 0-4: a TripletNet trains on the training images of the other four, and
h plays the unseen class: recall@1 (cosine, leave-one-out) of h's test images among the test
images of 0-4, after every epoch, for the embedding (`encode`) and the conv trunk
(`features`), next to raw pixels. Printed per digit and as the mean over the five; the means
are appended to OUT (JSON lines). Classes 5-9 are never loaded. Each setting trains with the
same initial weights and batches; the rho swaps and the random warps (--degrees, --shift)
draw from their own generators, so a run with them changes nothing else.
"""
import argparse
import json
import os
import time

import numpy as np

import tinylatent as tl
import tinylatent.models.metric_learning as metric
from tinylatent.data import DataLoader, TensorDataset
from tinylatent.data.transforms import RandomAffine
from tinylatent.eval import frozen_features
from tinylatent.models import TripletNet


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--objective", choices=["triplet", "n_pair"], default="triplet")
    p.add_argument("--mining", choices=["semi_hard", "batch_hard"], default="semi_hard")
    p.add_argument("--margin", type=float, default=0.2)
    p.add_argument("--rho", type=float, default=0.0, help="P(negative -> positive)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--latent-features", type=int, default=512)
    p.add_argument("--hidden-features", type=int, default=0)
    p.add_argument("--degrees", type=float, default=0.0, help="random rotation per image")
    p.add_argument("--shift", type=float, default=0.0, help="random shift, fraction of 28")
    p.add_argument("--held-out", default="0,1,2,3,4", help="digits to hold out in turn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/metric_protocol.jsonl")
    return p.parse_args(argv)


def with_rho(mine, rho, rng):
    """The mining followed by switch_negatives, drawing from rng (not tl's stream)."""
    def mined(d, y):
        a, p, n = mine(d, y)
        return a, p, metric.switch_negatives(a, p, n, y, rho, rng)
    return mined


def main(argv=None):
    args = parse_args(argv)
    x, y = tl.data.load_mnist("mnist", "train")
    xt, yt = tl.data.load_mnist("mnist", "test")
    x, xt = (v.astype(np.float32)[:, None] / 255.0 for v in (x, xt))
    seen = yt < 5
    xg, yg = xt[seen], yt[seen]                          # the gallery: test images of 0-4
    warp = RandomAffine(args.degrees, (args.shift, args.shift)) \
        if args.degrees or args.shift else None
    mining = metric.semi_hard_triplets, metric.batch_hard_triplets
    if args.rho:
        rng = np.random.default_rng(args.seed + 100)
        metric.semi_hard_triplets, metric.batch_hard_triplets = (
            with_rho(m, args.rho, rng) for m in mining)
    try:
        return run(args, x, y, xg, yg, warp)
    finally:
        metric.semi_hard_triplets, metric.batch_hard_triplets = mining


def run(args, x, y, xg, yg, warp):
    curves, raws, start = [], [], time.time()
    for h in (int(c) for c in args.held_out.split(",")):
        train = (y < 5) & (y != h)
        q = np.flatnonzero(yg == h)

        def recall(v):                                 # cosine, each query not its own match
            v = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)
            s = v[q] @ v.T
            s[np.arange(len(q)), q] = -np.inf
            return float((yg[s.argmax(1)] == h).mean())
        tl.manual_seed(args.seed)
        model = TripletNet(latent_features=args.latent_features, mining=args.mining,
                           hidden_features=args.hidden_features, margin=args.margin,
                           objective=args.objective)
        opt = tl.optim.Adam(model.parameters(), lr=args.lr)
        loader = DataLoader(TensorDataset(x[train], y[train]), args.batch_size, shuffle=True,
                            drop_last=True, generator=tl.Generator(args.seed))
        warp_rng, curve = np.random.default_rng(args.seed), []
        for _ in range(args.epochs):
            model.train()
            for xb, yb in loader:
                loss, _ = model.loss(warp(xb, generator=warp_rng) if warp else xb, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            curve.append([recall(frozen_features(f, xg, module=model))
                          for f in (model.encode, model.features)])
        raws.append(recall(xg.reshape(len(xg), -1)))
        curves.append(curve)
        print(f"digit {h} held out: raw pixels {raws[-1]:.3f}; embedding / trunk per epoch "
              + " ".join(f"{e:.3f}/{t:.3f}" for e, t in curve), flush=True)
    mean = np.mean(curves, axis=0)                      # (epochs, 2)
    print(f"mean of {len(raws)}: raw pixels {np.mean(raws):.4f}\n  embedding "
          + " ".join(f"{v:.4f}" for v in mean[:, 0]) + "\n  conv trunk "
          + " ".join(f"{v:.4f}" for v in mean[:, 1]) + f"\n({time.time() - start:.0f} s)")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "a") as fh:
        fh.write(json.dumps({"args": vars(args), "raw": float(np.mean(raws)),
                             "embedding": mean[:, 0].tolist(),
                             "trunk": mean[:, 1].tolist()}) + "\n")
    return mean, float(np.mean(raws))


if __name__ == "__main__":
    main()
