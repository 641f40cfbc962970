"""SGD vs sharpness-aware minimisation (Foret et al. 2021) on MNIST, and the Hessian
spectrum of the training loss where each ends (seed 001, "flat minima"; PyHessian, Yao et
al. 2020; Ghorbani et al. 2019): the top eigenvalue (Lanczos), the trace (Hutchinson) and
the spectral density (stochastic Lanczos quadrature), by tl.hessian.

    python examples/hessian_sam.py                 # both until train loss <= 0.05
    python examples/hessian_sam.py --max-epochs 1 --train 512 --hessian-examples 128 \\
        --lanczos-steps 6 --hutchinson 4 --slq-runs 1      # a smoke run
    python examples/hessian_sam.py --resume        # continue OUT/{sgd,sam}.npz

Both start from the same initialisation and see the same batches; each trains until its
full training loss <= --target-loss (or --max-epochs). Writes density.png (both spectral
densities) and prints top eigenvalue, trace and test accuracy per optimiser.
"""
import argparse
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
import tinylatent.nn.functional as F
from tinylatent import nn

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="SGD vs SAM: Hessian spectra of a small CNN",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--target-loss", type=float, default=0.05, help="stop at this train loss")
    p.add_argument("--max-epochs", type=int, default=40)
    p.add_argument("--train", type=int, default=4000, help="training images used")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--rho", type=float, default=0.05, help="SAM's neighbourhood radius")
    p.add_argument("--hessian-examples", type=int, default=1000,
                   help="training images the Hessian is taken on")
    p.add_argument("--lanczos-steps", type=int, default=20)
    p.add_argument("--hutchinson", type=int, default=30, help="probe vectors for the trace")
    p.add_argument("--slq-runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/hessian_sam")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def cnn():
    return nn.Sequential(nn.Conv2d(1, 8, 5, stride=2), nn.ReLU(),  # (8, 12, 12)
                         nn.Conv2d(8, 16, 5, stride=2), nn.ReLU(),  # (16, 4, 4)
                         nn.Flatten(), nn.Linear(16 * 4 * 4, 10))


def full_loss(model, X, Y, bs=500):
    with tl.no_grad():
        return float(np.mean([F.cross_entropy(model(X[i:i + bs]), Y[i:i + bs]).item()
                              for i in range(0, len(X), bs)]))


def train(name, args, X, Y):
    tl.manual_seed(args.seed)  # the same initialisation for both optimisers
    model = cnn()
    if name == "sam":
        opt = tl.optim.SAM(model.parameters(), tl.optim.SGD, rho=args.rho, lr=args.lr,
                           momentum=0.9)
    else:
        opt = tl.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    ckpt, epoch, history = os.path.join(args.out, f"{name}.npz"), 0, []
    if args.resume and os.path.exists(ckpt):
        ck = tl.load(ckpt)
        tl.serialization.check_resume_args(ck["args"], vars(args), ("max_epochs",))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        epoch, history = int(ck["epoch"]), list(ck["history"])
    loss_fn = lambda i: F.cross_entropy(model(X[i]), Y[i])  # noqa: E731
    bar = tqdm(total=args.max_epochs, initial=epoch, desc=name, disable=not sys.stderr.isatty())
    while epoch < args.max_epochs and not (history and history[-1] <= args.target_loss):
        perm = np.random.default_rng(args.seed + epoch).permutation(len(X))  # same batches
        for s in range(0, len(X), args.batch_size):
            idx = tl.tensor(perm[s:s + args.batch_size])
            opt.zero_grad()
            loss_fn(idx).backward()
            if name == "sam":  # two passes: climb to w + e(w), step with its gradient
                opt.first_step(zero_grad=True)
                loss_fn(idx).backward()
                opt.second_step(zero_grad=True)
            else:
                opt.step()
        epoch += 1
        history.append(full_loss(model, X, Y))
        bar.update(1)
        bar.set_postfix(train_loss=f"{history[-1]:.4f}")
        tl.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                 "history": history, "args": vars(args)}, ckpt)
    bar.close()
    return model, history


def spectrum(model, args, X, Y):
    params = list(model.parameters())
    n = args.hessian_examples
    batches = [(X[i:min(i + 250, n)], Y[i:min(i + 250, n)]) for i in range(0, n, 250)]
    H = tl.hessian.HessianOperator(lambda b: F.cross_entropy(model(b[0]), b[1]), params,
                                   batches=batches)
    top, _ = tl.hessian.eigenvalues(H, k=1, max_iter=args.lanczos_steps, seed=args.seed)
    tr, se = tl.hessian.trace(H, args.hutchinson, seed=args.seed)
    theta, tau = tl.hessian.slq_nodes(H, args.slq_runs, args.lanczos_steps, seed=args.seed)
    return {"top_eigenvalue": float(top[0]), "trace": tr, "trace_se": se,
            "nodes": theta, "weights": tau}


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    x, y = tl.data.load_mnist("mnist", "train")
    xt, yt = tl.data.load_mnist("mnist", "test")
    X, Y = tl.tensor(x[:args.train, None] / np.float32(255)), tl.tensor(y[:args.train])
    Xt, Yt = tl.tensor(xt[:, None] / np.float32(255)), tl.tensor(yt)
    result = {}
    for name in ("sgd", "sam"):
        model, history = train(name, args, X, Y)
        with tl.no_grad():
            acc = float((model(Xt).argmax(-1) == Yt).float().mean().item())
        result[name] = {"epochs": len(history), "train_loss": history[-1],
                        "test_accuracy": acc, **spectrum(model, args, X, Y)}
        r = result[name]
        print(f"{name.upper()}: {r['epochs']} epochs, train loss {r['train_loss']:.4f}, test "
              f"accuracy {acc:.4f}, top Hessian eigenvalue {r['top_eigenvalue']:.3f}, trace "
              f"{r['trace']:.2f} +- {r['trace_se']:.2f}")
    sgd, sam = result["sgd"], result["sam"]
    print(f"SAM / SGD: top eigenvalue x{sam['top_eigenvalue'] / sgd['top_eigenvalue']:.3f}, "
          f"trace x{sam['trace'] / sgd['trace']:.3f}")
    lo = min(r["nodes"].min() for r in (sgd, sam))
    hi = max(r["nodes"].max() for r in (sgd, sam))
    grid, sigma = np.linspace(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo), 1000), \
        0.01 * (hi - lo)
    plt.figure(figsize=(6, 3.6))
    for name, r in result.items():  # SLQ density: Gaussian-smoothed Gauss quadrature
        k = np.exp(-0.5 * ((grid[:, None, None] - r["nodes"][None]) / sigma) ** 2) \
            / (sigma * np.sqrt(2 * np.pi))  # (G, runs, steps)
        dens = (k * r["weights"][None]).sum(2).mean(1)
        plt.semilogy(grid, dens + 1e-7, label=f"{name.upper()} (top {r['top_eigenvalue']:.2f})")
    plt.xlabel("eigenvalue of the training-loss Hessian")
    plt.ylabel("density (SLQ)")
    plt.ylim(1e-6, None)
    plt.legend()
    plt.tight_layout()
    plt.savefig(os.path.join(args.out, "density.png"), dpi=110)
    plt.close()
    for r in result.values():
        for key in ("nodes", "weights"):
            r.pop(key)
    return result


if __name__ == "__main__":
    main()
