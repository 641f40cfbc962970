"""Dual supervised learning (Xia et al. 2017) on binarised MNIST: a classifier P(y|x) and a
class-conditional MADE P(x|y) trained with and without the probabilistic-duality regulariser.

    python examples/dual_mnist.py                        # the README figures
    python examples/dual_mnist.py --resume               # continue OUT/<phase>.npz

Phases, each checkpointed after every epoch (OUT/<phase>.npz; --resume continues exactly:
every epoch's order and binarisation come from (seed, phase, epoch)):
  marginal  an unconditional MADE P^(x), then frozen;
  warm      both models trained separately (lambda = 0): DSL starts from trained models;
  baseline  --epochs more with lambda = 0;   dsl  the same --epochs with lambda_xy, lambda_yx.
baseline and dsl start from the same warm weights and optimizer and see the same batches.
Prints test accuracy, class-conditional test NLL (nats) and the duality gap of each; writes
OUT/samples.png (one row per digit, from the DSL model) and OUT/gap_histogram.png.
"""
import argparse
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.data import binarize
from tinylatent.models import MADE, DualSupervised
from tinylatent.models.dual import evaluate_dual, train_epoch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--marginal-epochs", type=int, default=40)
    p.add_argument("--warm-epochs", type=int, default=10)
    p.add_argument("--epochs", type=int, default=20, help="baseline and DSL epochs")
    p.add_argument("--lambda-xy", type=float, default=0.01)
    p.add_argument("--lambda-yx", type=float, default=0.01)
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--marginal-lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--n-train", type=int, default=None, help="use the first N images")
    p.add_argument("--samples", type=int, default=8,
                   help="samples per digit in the picture (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/dual_mnist")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto")  # a tqdm bar
    return p.parse_args(argv)


def run_phase(name, model, lr, epochs, args, data, start=None, done=0):
    """Train `model` up to epoch `epochs`, from epoch `done` and `start` = (weights,
    optimizer state) if given, or from OUT/<name>.npz on --resume; returns its history."""
    opt = tl.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    path, history = os.path.join(args.out, f"{name}.npz"), []
    if args.resume and os.path.exists(path):
        ck = tl.load(path)
        try:
            tl.serialization.check_resume_args(dict(ck["args"]), vars(args),
                                               may_change=("epochs", "progress", "samples"))
        except ValueError as err:
            sys.exit(f"cannot resume from {path}: {err}")
        start, done, history = (ck["model"], ck["optimizer"]), int(ck["epoch"]), \
            [dict(h) for h in ck["history"]]
    if start is not None:
        model.load_state_dict(start[0])
        opt.load_state_dict(start[1])
    show = sys.stderr.isatty() if args.progress == "auto" else args.progress == "on"
    phase = int(name != "marginal")   # warm, baseline, dsl: one stream, the same batches
    for epoch in tqdm(range(done, epochs), initial=done, total=epochs, desc=name,
                      disable=not show):
        rng = np.random.default_rng((args.seed, phase, epoch))
        history.append(train_epoch(model, opt, *data, rng, args.batch_size))
        tl.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                 "epoch": epoch + 1, "history": history, "args": vars(args)}, path)
    if history:
        print(f"{name}: epoch {epochs}, train " + ", ".join(
            f"{k} {v:.3f}" for k, v in history[-1].items() if k != "loss"), flush=True)
    return (model.state_dict(), opt.state_dict()), history


def pictures(models, results, args):
    plt.figure(figsize=(5.5, 3.6))
    gaps = [results[k]["gap"] for k in models]
    bins = np.linspace(min(np.percentile(g, 0.5) for g in gaps),
                       max(np.percentile(g, 99.5) for g in gaps), 60)
    for k, g in zip(models, gaps):
        plt.hist(np.clip(g, bins[0], bins[-1]), bins, alpha=0.55,
                 label=f"{k}: mean {g.mean():+.2f}, mean sq {np.mean(g ** 2):.1f}")
    plt.xlabel("duality gap log P^(x) + log P(y|x) - log P^(y) - log P(x|y) (nats)")
    plt.ylabel("test images")
    plt.legend(fontsize=8)
    plt.tight_layout()
    plt.savefig(os.path.join(args.out, "gap_histogram.png"), dpi=110)
    plt.close()
    n = args.samples
    if not n:
        return
    y = np.repeat(np.arange(10), n)
    s = models["dsl"].sample(len(y), y=y, generator=tl.Generator(args.seed)).numpy()
    grid = s.reshape(10, n, 28, 28).transpose(0, 2, 1, 3).reshape(280, 28 * n)  # rows: digit
    plt.imsave(os.path.join(args.out, "samples.png"), grid, cmap="gray")


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    images, labels = tl.data.load_mnist("mnist", "train")
    test, y_test = tl.data.load_mnist("mnist", "test")
    data = (images[:args.n_train], labels[:args.n_train])
    x_test = tl.tensor(binarize(test, np.random.default_rng(123)))     # one fixed binarisation
    tl.manual_seed(args.seed)
    marginal = MADE(in_features=784, hidden_features=(args.hidden,), seed=args.seed)
    run_phase("marginal", marginal, args.marginal_lr, args.marginal_epochs, args, data)
    widths = dict(hidden_features=(args.hidden,), density_hidden_features=(args.hidden,),
                  seed=args.seed)
    tl.manual_seed(args.seed)
    warm = DualSupervised(**widths, lambda_xy=0.0, lambda_yx=0.0, marginal=marginal)
    warm.set_label_marginal(data[1])
    start, _ = run_phase("warm", warm, args.lr, args.warm_epochs, args, data)
    models = {"baseline": DualSupervised(warm.config, marginal=marginal),
              "dsl": DualSupervised(warm.config, marginal=marginal, lambda_xy=args.lambda_xy,
                                    lambda_yx=args.lambda_yx)}
    results = {}
    for name, model in models.items():
        hist = run_phase(name, model, args.lr, args.warm_epochs + args.epochs, args, data,
                         start, done=args.warm_epochs)[1]
        results[name] = evaluate_dual(model, x_test, y_test)
        results[name]["train"] = hist[-1] if hist else {}
    r0 = results["baseline"]
    print(f"marginal MADE P^(x): test NLL {r0['marginal_nll']:.2f} nats")
    for name, r in results.items():
        cfg = models[name].config
        print(f"{name:8s} (lambda {cfg.lambda_xy:g}/{cfg.lambda_yx:g}): test accuracy "
              f"{r['accuracy']:.4f}, P(x|y) test NLL {r['nll']:.2f} nats, gap mean "
              f"{r['gap'].mean():+.2f}, mean square {np.mean(r['gap'] ** 2):.2f}")
    pictures(models, results, args)
    return results


if __name__ == "__main__":
    main()
