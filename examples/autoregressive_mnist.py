"""MADE or NADE on dynamically binarised MNIST: test NLL in nats, samples as a PNG.
Also the planar-flow VAE (--model planar_vae --flows K): its test -ELBO, an upper bound on
the NLL, for K planar flows on q(z|x) (K = 0: the plain Gaussian VAE).

    python examples/autoregressive_mnist.py --model made --epochs 20
    python examples/autoregressive_mnist.py --model nade --epochs 20 --resume
    python examples/autoregressive_mnist.py --model planar_vae --flows 8 --dataset fashion-mnist

Offline, MNIST is the embedded 5,000-image subset (4,000 train / 1,000 test); the anchors
(MADE 88.0, NADE 88.9 nats) are for full MNIST after long training. After every epoch the run
writes OUT/checkpoint.npz (weights, optimizer, both random generators, history; temporary
file then rename); --resume continues exactly where it stopped.
"""
import argparse
import os
import sys
import time

import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.data import binarize, save_image_grid
from tinylatent.models.autoregressive import MADE, NADE
from tinylatent.models.planar_vae import PlanarVAE, PlanarVAEConfig


def evaluate(model, x_test, num_masks: int) -> float:
    """Mean test NLL (nats); MADE averages the probabilities of `num_masks` masks."""
    model.eval()
    with tl.no_grad():
        lps = []
        for i in range(0, len(x_test), 250):
            xb = x_test[i: i + 250]
            if isinstance(model, PlanarVAE):   # one-sample -ELBO, a bound on -log p
                lp = -model.neg_elbo(xb, generator=tl.Generator(i))
            elif isinstance(model, MADE):
                lp = model.log_prob(xb, num_masks=num_masks)
            else:
                lp = model.log_prob(xb)
            lps.append(lp.numpy())
    model.train()
    return -float(np.concatenate(lps).mean())


# settings a resumed run may change (how long, where it reports), not what it trains
RESUMABLE = {"epochs", "resume", "out", "progress"}


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=tl.train.DefaultsHelpFormatter)
    ap.add_argument("--model", choices=["made", "nade", "planar_vae"], default="made")
    ap.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    ap.add_argument("--flows", type=int, default=8, help="planar_vae: planar flows K")
    ap.add_argument("--epochs", type=int, default=10, help="epochs in all")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=None,
                    help="default 3e-3 MADE, 1e-2 NADE, 1e-3 planar_vae")
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--masks", type=int, default=8, help="MADE: masks trained / averaged")
    ap.add_argument("--n-train", type=int, default=None, help="use the first N images")
    ap.add_argument("--samples", type=int, default=50, help="images in the sample grid")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/autoregressive_mnist")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    ap.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                    help="progress bar (auto: only on a terminal)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    tl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train, _ = tl.data.load_mnist(args.dataset, "train", data_dir=args.data_dir)
    test, _ = tl.data.load_mnist(args.dataset, "test", data_dir=args.data_dir)
    train = train[: args.n_train] if args.n_train else train
    x_test = tl.tensor(binarize(test, np.random.default_rng(123)))   # fixed binarisation

    if args.model == "made":
        model = MADE(in_features=784, hidden_features=(args.hidden,), num_masks=args.masks,
                     seed=args.seed)
        lr = args.lr or 3e-3
    elif args.model == "nade":
        model = NADE(in_features=784, hidden_features=args.hidden,
                     generator=tl.Generator(args.seed))
        lr = args.lr or 1e-2
    else:
        model = PlanarVAE(PlanarVAEConfig(hidden_features=args.hidden, num_flows=args.flows))
        lr = args.lr or 1e-3
    opt = tl.optim.Adam(model.parameters(), lr=lr)
    masks = args.masks if args.model == "made" else 1
    metric = "-elbo" if args.model == "planar_vae" else "nll"
    config = {k: v for k, v in vars(args).items() if k not in RESUMABLE}
    history = []
    if args.resume and os.path.exists(ckpt_path):
        ckpt = tl.load(ckpt_path)
        if dict(ckpt["config"]) != config:
            sys.exit(f"cannot resume from {ckpt_path}: its settings {dict(ckpt['config'])} "
                     f"differ from this run's {config}")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        rng.bit_generator.state = ckpt["data_rng"]
        tl.random.set_rng_state(ckpt["rng"])        # the planar VAE's sampling noise
        if isinstance(model, MADE):
            model.set_mask(int(ckpt["mask"]))
        history = [dict(h) for h in ckpt["history"]]
        print(f"resumed from {ckpt_path} after epoch {len(history)}")

    show = sys.stdout.isatty() if args.progress == "auto" else args.progress == "on"
    t0 = time.time() - (history[-1]["seconds"] if history else 0.0)
    for epoch in range(len(history) + 1, args.epochs + 1):
        perm = rng.permutation(len(train))
        total = 0.0
        for i in tqdm(range(0, len(train), args.batch_size), desc=f"epoch {epoch}",
                      leave=False, disable=not show, mininterval=0.5):
            x = tl.tensor(binarize(train[perm[i: i + args.batch_size]], rng))  # dynamic
            loss, _ = model.loss(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
        history.append({"epoch": epoch, "train": total / len(train),
                        "test": evaluate(model, x_test, masks), "seconds": time.time() - t0})
        print(f"epoch {epoch:3d}  train {metric} {history[-1]['train']:7.2f}  "
              f"test {metric} {history[-1]['test']:7.2f} "
              f"nats  ({history[-1]['seconds']:6.1f} s)", flush=True)
        tl.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                 "data_rng": rng.bit_generator.state, "rng": tl.random.get_rng_state(),
                 "mask": getattr(model, "mask_index", 0), "history": history,
                 "config": config}, ckpt_path)            # temporary file + rename

    if args.samples:
        samples = model.sample(args.samples, generator=tl.Generator(args.seed)).numpy()
        save_image_grid(samples, os.path.join(args.out, f"{args.model}_samples.png"), 10,
                        f"{args.model}: samples")
    if history:
        print(f"final test {metric} {history[-1]['test']:.2f} nats ({args.model} on "
              f"{args.dataset}, {len(train)} train images, {len(history)} epochs); samples "
              f"and checkpoint in {args.out}")
    return history


if __name__ == "__main__":
    main()
