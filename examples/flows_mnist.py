"""RealNVP, Glow or MAF on dequantised MNIST: test bits/dim, a grid of samples as a PNG.

    python examples/flows_mnist.py --model glow --steps 2000 --out out/glow
    python examples/flows_mnist.py --model realnvp --hidden 32 --out out/realnvp

Pixels are dequantised, x = (pixel + u) / 256 with u ~ U[0, 1), and mapped to logit space
inside the flow; bits/dim = -(log p(x) - 784 log 256) / (784 log 2). Anchors (RealNVP 1.06,
Glow 1.05) are for full MNIST after long GPU training.
"""
import argparse
import math
import os
import time

import numpy as np

import tinylatent as tl
from tinylatent.data import dequantize
from tinylatent.models.flows import (ImageFlowConfig, bits_per_dim, glow_mnist,
                                     maf_mnist, realnvp_mnist)

BUILDERS = {"realnvp": realnvp_mnist, "glow": glow_mnist, "maf": maf_mnist}


def evaluate(flow, x_test: np.ndarray, batch: int = 100) -> float:
    with tl.no_grad():
        lps = [flow.log_prob(tl.tensor(x_test[i: i + batch])).numpy()
               for i in range(0, len(x_test), batch)]
    return bits_per_dim(float(np.concatenate(lps).mean()), 784)


def save_grid(images: np.ndarray, path: str, nrow: int = 8) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = math.ceil(len(images) / nrow)
    grid = np.ones((rows * 29 + 1, nrow * 29 + 1))
    for k, img in enumerate(images):
        r, c = divmod(k, nrow)
        grid[1 + r * 29: 1 + r * 29 + 28, 1 + c * 29: 1 + c * 29 + 28] = img.reshape(28, 28)
    plt.imsave(path, np.clip(grid, 0, 1), cmap="gray")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(BUILDERS), default="glow")
    ap.add_argument("--steps", type=int, default=1000, help="optimizer steps")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=None,
                    help="coupling-net channels (MADE units for MAF)")
    ap.add_argument("--flow-steps", type=int, default=None, help="couplings / steps a level")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--temperature", type=float, default=0.7, help="sampling: z ~ N(0, T^2)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/flows_mnist")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train, _ = tl.data.load_mnist(split="train", data_dir=args.data_dir)
    test, _ = tl.data.load_mnist(split="test", data_dir=args.data_dir)
    x_test = dequantize(test[: args.n_test], np.random.default_rng(123))

    defaults = {"realnvp": (32, 3), "glow": (64, 4), "maf": (512, 5)}[args.model]
    cfg = ImageFlowConfig(hidden_features=args.hidden or defaults[0],
                          steps=args.flow_steps or defaults[1])
    flow = BUILDERS[args.model](cfg)
    with tl.no_grad():                      # ActNorm's data-dependent initialisation
        flow.log_prob(tl.tensor(dequantize(train[rng.permutation(len(train))[:256]], rng)))
    opt = tl.optim.Adam(flow.parameters(), lr=args.lr)
    n_params = sum(p.numel() for p in flow.parameters())
    print(f"{args.model}: {n_params} parameters, init test {evaluate(flow, x_test):.3f} bits/dim")

    t0 = time.time()
    for step in range(1, args.steps + 1):
        idx = rng.integers(0, len(train), args.batch_size)
        loss, _ = flow.loss(tl.tensor(dequantize(train[idx], rng)))   # fresh noise each time
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            bpd = evaluate(flow, x_test)
            print(f"step {step:5d}  train {bits_per_dim(-loss.item(), 784):.3f}  "
                  f"test {bpd:.3f} bits/dim  ({time.time() - t0:6.1f} s)", flush=True)

    with tl.no_grad():
        z = flow.base.sample(32, generator=tl.Generator(args.seed)) * args.temperature
        x, _ = flow.inverse(z)
    save_grid(x.numpy(), os.path.join(args.out, f"{args.model}_samples.png"))
    print(f"final test {bpd:.3f} bits/dim ({args.model}, {args.steps} steps of "
          f"{args.batch_size}, {time.time() - t0:.0f} s); samples in {args.out}")


if __name__ == "__main__":
    main()
