"""RealNVP, Glow or MAF on dequantised MNIST or Fashion-MNIST: test bits/dim, samples as a PNG.

    python examples/flows_mnist.py --model glow --steps 2000
    python examples/flows_mnist.py --model realnvp --dataset fashion-mnist --steps 3000 --resume

Pixels are dequantised, x = (pixel + u) / 256 with u ~ U[0, 1), and mapped to logit space
inside the flow; bits/dim = -(log p(x) - 784 log 256) / (784 log 2). Anchors (RealNVP 1.06,
Glow 1.05) are for full MNIST after long GPU training. Every --eval-every steps the run writes
OUT/checkpoint.npz (weights, optimizer, the data generator's state, history; temporary file
then rename), so --resume continues exactly where it stopped: 2 x 500 steps with a resume in
between give the same weights as 1,000 steps straight.
"""
import argparse
import os
import sys
import time

import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.data import dequantize, save_image_grid
from tinylatent.models.flows import (ImageFlowConfig, bits_per_dim, glow_mnist,
                                     maf_mnist, realnvp_mnist)

BUILDERS = {"realnvp": realnvp_mnist, "glow": glow_mnist, "maf": maf_mnist}
DEFAULTS = {"realnvp": (32, 3), "glow": (64, 4), "maf": (512, 5)}   # (hidden, flow steps)
# settings a resumed run may change (how long, how often it reports), not what it trains
RESUMABLE = {"steps", "eval_every", "resume", "out", "progress"}


def evaluate(flow, x_test: np.ndarray, batch: int = 100) -> float:
    with tl.no_grad():
        lps = [flow.log_prob(tl.tensor(x_test[i: i + batch])).numpy()
               for i in range(0, len(x_test), batch)]
    return bits_per_dim(float(np.concatenate(lps).mean()), 784)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=tl.train.DefaultsHelpFormatter)
    ap.add_argument("--model", choices=sorted(BUILDERS), default="glow")
    ap.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    ap.add_argument("--steps", type=int, default=1000, help="optimizer steps in all")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=None,
                    help="coupling-net channels (MADE units for MAF); default " +
                    ", ".join(f"{k} {v[0]}" for k, v in DEFAULTS.items()))
    ap.add_argument("--flow-steps", type=int, default=None, help="couplings / steps a level")
    ap.add_argument("--eval-every", type=int, default=250, help="test and checkpoint")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--temperature", type=float, default=0.7, help="sampling: z ~ N(0, T^2)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/flows_mnist")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    ap.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                    help="progress bar (auto: only on a terminal)")
    return ap.parse_args(argv)


def main(argv=None) -> list:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    tl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, _ = tl.data.load_mnist(args.dataset, "train", data_dir=args.data_dir)
    test, _ = tl.data.load_mnist(args.dataset, "test", data_dir=args.data_dir)
    x_test = dequantize(test[: args.n_test], np.random.default_rng(123))

    hidden, flow_steps = DEFAULTS[args.model]
    cfg = ImageFlowConfig(hidden_features=args.hidden or hidden,
                          steps=args.flow_steps or flow_steps)
    flow = BUILDERS[args.model](cfg)
    with tl.no_grad():                      # ActNorm's data-dependent initialisation
        flow.log_prob(tl.tensor(dequantize(train[rng.permutation(len(train))[:256]], rng)))
    opt = tl.optim.Adam(flow.parameters(), lr=args.lr)
    config = {k: v for k, v in vars(args).items() if k not in RESUMABLE}
    step, history = 0, []
    if args.resume and os.path.exists(ckpt_path):
        ckpt = tl.load(ckpt_path)
        if dict(ckpt["config"]) != config:
            sys.exit(f"cannot resume from {ckpt_path}: its settings {dict(ckpt['config'])} "
                     f"differ from this run's {config}")
        flow.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        rng.bit_generator.state = ckpt["data_rng"]
        step, history = int(ckpt["step"]), [dict(h) for h in ckpt["history"]]
        print(f"resumed from {ckpt_path} at step {step}")
    n_params = sum(p.numel() for p in flow.parameters())
    print(f"{args.model} on {args.dataset} ({len(train)} train / {len(x_test)} test): "
          f"{n_params} parameters")

    show = sys.stdout.isatty() if args.progress == "auto" else args.progress == "on"
    bar = tqdm(total=args.steps, initial=step, disable=not show, mininterval=0.5)
    t0 = time.time()
    while step < args.steps:
        idx = rng.integers(0, len(train), args.batch_size)
        loss, _ = flow.loss(tl.tensor(dequantize(train[idx], rng)))   # fresh noise each time
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        if step % args.eval_every == 0 or step == args.steps:
            entry = {"step": step, "train_bpd": bits_per_dim(-loss.item(), 784),
                     "test_bpd": evaluate(flow, x_test), "seconds": time.time() - t0}
            history.append(entry)
            bar.write(f"step {step:5d}  train {entry['train_bpd']:.3f}  test "
                      f"{entry['test_bpd']:.3f} bits/dim  ({entry['seconds']:6.1f} s)")
            tl.save({"model": flow.state_dict(), "optimizer": opt.state_dict(), "step": step,
                     "data_rng": rng.bit_generator.state, "history": history,
                     "config": config}, ckpt_path)            # temporary file + rename
    bar.close()

    with tl.no_grad():
        z = flow.base.sample(32, generator=tl.Generator(args.seed)) * args.temperature
        x, _ = flow.inverse(z)
    save_image_grid(x.numpy(), os.path.join(args.out, f"{args.model}_samples.png"), 8,
                    f"{args.model}: samples")
    if history:
        print(f"final test {history[-1]['test_bpd']:.3f} bits/dim ({args.model} on "
              f"{args.dataset}, {step} steps of {args.batch_size}); samples and checkpoint "
              f"in {args.out}")
    return history


if __name__ == "__main__":
    main()
