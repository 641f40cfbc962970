"""PixelCNN / Gated PixelCNN on dynamically binarised MNIST: test NLL in nats, samples and
completions of the top half of test digits as PNGs.

    python examples/pixelcnn_mnist.py --model gated --epochs 4     # 97.2 nats, ~60 CPU s
    python examples/pixelcnn_mnist.py --model gated --epochs 4 --conditional
    python examples/pixelcnn_mnist.py --model pixelcnn --epochs 10 --batch-size 50
    python examples/pixelcnn_mnist.py --model gated --cpu-budget 300   # stop at 300 CPU s

The MADE baseline on the same split: examples/autoregressive_mnist.py --model made.

Offline, MNIST is the embedded 5,000-image subset (4,000 train / 1,000 test, the split of
examples/autoregressive_mnist.py, same fixed test binarisation). The published anchor is
PixelCNN 81.30 nats on full binarised MNIST (van den Oord et al. 2016a, Table 4).
--cpu-budget counts this process's CPU time (time.process_time) for training and the
per-epoch evaluation, so a busy shared machine does not shorten the run.
"""
import argparse
import os
import sys
import time

import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.data import binarize, save_image_grid
from tinylatent.models.pixelcnn import GatedPixelCNN, PixelCNN

RESUMABLE = ("cpu_budget", "samples")   # --epochs sets the cosine schedule: fixed


def evaluate(model, x_test, y_test) -> float:
    """Mean test NLL in nats per image."""
    model.eval()
    with tl.no_grad():
        lps = []
        for i in range(0, len(x_test), 250):
            y = None if y_test is None else y_test[i: i + 250]
            lps.append(model.log_prob(tl.tensor(x_test[i: i + 250]), y).numpy())
    model.train()
    return -float(np.concatenate(lps).mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=tl.train.DefaultsHelpFormatter)
    ap.add_argument("--model", choices=["pixelcnn", "gated"], default="gated")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--cpu-budget", type=float, default=None,
                    help="stop training (mid-epoch if need be) so that training plus the "
                         "evaluations take at most this many CPU seconds")
    ap.add_argument("--batch-size", type=int, default=25)
    ap.add_argument("--lr", type=float, default=1e-2,
                    help="Adam, decayed to 0 by a cosine over --epochs")
    ap.add_argument("--hidden", type=int, default=16, help="channels")
    ap.add_argument("--layers", type=int, default=4,
                    help="layers (PixelCNN: 3x3 layers after the 7x7 one)")
    ap.add_argument("--conditional", action="store_true", help="class-conditional (labels)")
    ap.add_argument("--samples", type=int, default=50, help="0: no pictures")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/pixelcnn_mnist")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    tl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train, y_train = tl.data.load_mnist(split="train", data_dir=args.data_dir)
    test, y_test = tl.data.load_mnist(split="test", data_dir=args.data_dir)
    x_test = binarize(test, np.random.default_rng(123)).reshape(-1, 1, 28, 28)  # fixed
    classes = 10 if args.conditional else 0
    cls = PixelCNN if args.model == "pixelcnn" else GatedPixelCNN
    model = cls(hidden_channels=args.hidden, num_layers=args.layers, num_classes=classes)
    opt = tl.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = -(-len(train) // args.batch_size)
    sched = tl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch)
    labels = (lambda y: y) if args.conditional else (lambda y: None)

    start, cpu_used, history = 1, 0.0, []
    if args.resume and os.path.exists(ckpt_path):
        ckpt = tl.load(ckpt_path)
        try:
            tl.serialization.check_resume_args(ckpt.get("args"), vars(args), RESUMABLE)
        except ValueError as e:
            raise SystemExit(f"pixelcnn_mnist.py: {e}") from None
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        tl.set_rng_state(ckpt["rng"])
        rng.bit_generator.state = ckpt["np_rng"]
        start, cpu_used, history = ckpt["epoch"] + 1, ckpt["cpu"], list(ckpt["history"])
        print(f"resumed from {ckpt_path} after epoch {ckpt['epoch']}")
    print(f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{len(train)} train / {len(test)} test images")

    nll = history[-1]["test"] if history else float("nan")
    budget = float("inf") if args.cpu_budget is None else args.cpu_budget
    eval_cost, out_of_budget = 0.0, False
    for epoch in range(start, args.epochs + 1):
        if cpu_used + eval_cost >= budget:
            break
        c0 = time.process_time()
        perm = rng.permutation(len(train))
        total = 0.0
        bar = tqdm(range(0, len(train), args.batch_size), desc=f"epoch {epoch}",
                   leave=False, mininterval=1.0, disable=not sys.stderr.isatty())
        for i in bar:
            # stop early enough that the evaluation still fits in the budget
            if cpu_used + time.process_time() - c0 + eval_cost >= budget:
                out_of_budget = True
                break
            idx = perm[i: i + args.batch_size]
            x = tl.tensor(binarize(train[idx], rng).reshape(-1, 1, 28, 28))   # dynamic
            loss, _ = model.loss(x, labels(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            bar.set_postfix(nll=f"{loss.item():.1f}")
        seen = max(1, min(i, len(train)) if out_of_budget else len(train))
        e0 = time.process_time()
        nll = evaluate(model, x_test, labels(y_test))
        eval_cost = time.process_time() - e0
        cpu_used += time.process_time() - c0
        history.append({"epoch": epoch, "train": total / seen, "test": nll,
                        "cpu": cpu_used, "images": seen})
        print(f"epoch {epoch:3d}  train nll {total / seen:7.2f}  test nll {nll:7.2f} "
              f"nats  ({cpu_used:6.1f} CPU s{', budget reached' if out_of_budget else ''})",
              flush=True)
        tl.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "epoch": epoch,
                 "cpu": cpu_used, "rng": tl.get_rng_state(), "np_rng": rng.bit_generator.state,
                 "history": history, "args": vars(args)}, ckpt_path)
        if out_of_budget:
            break

    g = tl.Generator(args.seed)
    model.eval()
    if args.samples == 0:
        print(f"final test nll {nll:.2f} nats ({args.model}, {len(history)} epochs, "
              f"{cpu_used:.0f} CPU s); no pictures (--samples 0)")
        return history
    y = np.arange(args.samples) % 10 if args.conditional else None
    save_image_grid(model.sample(args.samples, generator=g, y=y).numpy(),
                    os.path.join(args.out, "samples.png"), 10, "samples")
    # completions: rows 0-13 of 10 test digits given, rows 14-27 sampled (3 per digit);
    # picture rows: the given halves, then three completions of each
    top = np.repeat(x_test[:10], 3, axis=0)                              # (30, 1, 28, 28)
    y = np.repeat(y_test[:10], 3) if args.conditional else None
    done = model.complete(tl.tensor(top), 14, generator=g, y=y).numpy()
    shown = top.copy()
    shown[:, :, 14:] = 0.5                                               # the hidden half
    save_image_grid(np.concatenate([shown[::3], done[0::3], done[1::3], done[2::3]]),
                    os.path.join(args.out, "completions.png"), 10,
                    "top halves given (row 1), three completions each")
    print(f"final test nll {nll:.2f} nats ({args.model}, {len(history)} epochs, "
          f"{cpu_used:.0f} CPU s); pictures and checkpoint in {args.out}/")
    return history


if __name__ == "__main__":
    main()
