"""Noisy Student self-training (Xie et al. 2020) with 500 labels: a teacher trained on
the labelled images with model noise (dropout, stochastic depth), then equal-or-larger
students trained on labelled + pseudo-labelled images with input noise (random affine warps;
flips on Fashion-MNIST) and model noise, each student the next teacher; and the ablation
without noise (no warps, no dropout, no stochastic depth, for every model). The default
is a residual MLP (teacher 512 wide, students 512, 1024, 1024); --arch cnn --student-steps
2000 is a small CNN (width w: 3x3 convolutions of w and 2w channels, each max-pooled, two
residual blocks of 8w units; teacher 8, students 8, 12, 16).

    python examples/noisy_student.py                    # Fashion-MNIST (README row)
    python examples/noisy_student.py --seed 1           # the second seed
    python examples/noisy_student.py --dataset mnist --val 200 --steps 20 \
        --student-steps 20 --iterations 1 --hidden 32 --student-hidden 32   # a smoke run

500 labelled training images, --val held-out labelled training images (the only labels used
to choose settings: never the test split), the rest unlabelled (Fashion-MNIST: 54,500).
Validation and test accuracy per iteration for both runs, gains against each student's own
teacher and against the first; the number of iterations chosen on validation (iterate while
a student gains >= --min-gain points on its own teacher); accuracy.png under --out. Students
see labelled : pseudo-labelled 1 : R in every batch (their sec. 4), the clean teacher's
pseudo-labels balanced across classes (their sec. 3), soft p_T(y | x) unless --hard.
"""
import argparse
import json
import os
import sys

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data.transforms import Compose, RandomAffine, RandomHorizontalFlip
from tinylatent.models.noisy_student import (NoisyStudentConfig, iterations_by_validation,
                                             self_train)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Noisy Student on MNIST with few labels",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--labels", type=int, default=500, help="labelled training images")
    p.add_argument("--val", type=int, default=5000, help="held-out labelled images, "
                   "for choosing settings only")
    p.add_argument("--limit-unlabelled", type=int, default=None)
    p.add_argument("--iterations", type=int, default=3, help="student generations")
    p.add_argument("--steps", type=int, default=1000, help="Adam steps per model")
    p.add_argument("--arch", default="mlp", choices=["cnn", "mlp"], help="width w: cnn "
                   "w, 2w channels then 8w units; mlp w units on the pixels")
    p.add_argument("--hidden", type=int, default=None, help="teacher width (mlp 512, cnn 8)")
    p.add_argument("--student-hidden", type=int, nargs="+", default=None,
                   help="student width (>= teacher), or one per iteration (the first "
                   "--iterations of them); mlp 512 1024 1024, cnn 8 12 16")
    p.add_argument("--student-steps", type=int, default=3000)
    p.add_argument("--unlabelled-ratio", type=float, default=1.0,
                   help="pseudo-labelled : labelled images in a student batch")
    p.add_argument("--no-balance", action="store_true", help="pseudo-labels unbalanced")
    p.add_argument("--threshold", type=float, default=0.0, help="pseudo-label confidence")
    p.add_argument("--hard", action="store_true", help="hard pseudo-labels (default soft)")
    p.add_argument("--degrees", type=float, default=5.0, help="warp rotation (input noise)")
    p.add_argument("--translate", type=float, default=0.05,
                   help="warp shift (fraction of the side) and scale 1 +- it")
    p.add_argument("--teacher-augment", action="store_true",
                   help="input noise for the first teacher too (default: model noise only)")
    p.add_argument("--min-gain", type=float, default=1.0, help="validation gain (points) "
                   "on its own teacher for a student to be kept (the iteration rule)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/noisy_student")
    p.add_argument("--resume", action="store_true", help="reuse results.json runs")
    return p.parse_args(argv)


def report(name, model, val, test):
    out = {"val": model.accuracy(*val), "test": model.accuracy(*test)}
    print(f"{name}: validation {out['val']:.4f}  test {out['test']:.4f}", flush=True)
    return out


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    (x, y), (xt, yt) = (tl.data.load_mnist(args.dataset, split) for split in ("train", "test"))
    x, xt = x[:, None] / np.float32(255), xt[:, None] / np.float32(255)  # (N, 1, 28, 28)
    if args.labels + args.val >= len(x):
        sys.exit(f"--labels + --val leave no unlabelled images of {len(x)}")
    perm = np.random.default_rng(args.seed).permutation(len(x))
    n = args.labels + args.val
    lab, val, unl = perm[:args.labels], perm[args.labels:n], perm[n:][:args.limit_unlabelled]
    # input noise (Xie et al. sec. 3: RandAugment): affine warps, mirroring where classes are
    # symmetric (clothes). On validation, 10 deg / 10% cost a first MLP student 0.9 points
    t = args.translate
    augment = Compose(([RandomHorizontalFlip()] if args.dataset == "fashion-mnist" else []) +
                      [RandomAffine(degrees=args.degrees, translate=(t, t),
                                    scale=(1 - t, 1 + t))])
    cnn = args.arch == "cnn"

    def make(w):
        return (NoisyStudentConfig(hidden_channels=(w, 2 * w), hidden_features=8 * w) if cnn
                else NoisyStudentConfig(hidden_features=w))
    config = make(args.hidden or (8 if cnn else 512))
    # growing students (Xie et al.: equal-or-larger; 1024 beat 512 by 0.86 validation points)
    widths = args.student_hidden or ([8, 12, 16] if cnn else [512, 1024, 1024])
    widths = widths * args.iterations if len(widths) == 1 else widths[:args.iterations]
    if len(widths) != args.iterations:
        sys.exit(f"--student-hidden: one width or >= {args.iterations}, got {len(widths)}")
    students = [make(w) for w in widths]
    path = os.path.join(args.out, "results.json")
    done = {}
    if args.resume and os.path.exists(path):  # each run is a unit: finished ones are kept
        with open(path) as f:
            saved = json.load(f)
        tl.serialization.check_resume_args(saved["args"], vars(args), may_change=("min_gain",))
        done = saved["runs"]
    for name, noise in (("noisy", True), ("no noise", False)):
        if name in done:
            print(f"{name}: from {path}")
            continue
        runs = self_train(x[lab], y[lab], x[unl], config, args.iterations, noise=noise,
                          augment=augment, soft=not args.hard, threshold=args.threshold,
                          steps=args.steps, seed=args.seed, student_config=students,
                          student_steps=args.student_steps, balance=not args.no_balance,
                          unlabelled_ratio=args.unlabelled_ratio,
                          augment_teacher=args.teacher_augment,
                          evaluate=lambda m: report(name, m, (x[val], y[val]), (xt, yt)),
                          progress=sys.stderr.isatty())   # a bar on a terminal, not in logs
        done[name] = [{"kept": r["kept"], **r["score"]} for r in runs]
        with open(path, "w") as f:
            json.dump({"args": vars(args), "runs": done}, f)
    for name, runs in done.items():
        for split in ("val", "test"):
            accs = " -> ".join(f"{100 * r[split]:.2f}" for r in runs)
            own = " ".join(f"{100 * (b[split] - a[split]):+.2f}" for a, b in zip(runs, runs[1:]))
            first = " ".join(f"{100 * (r[split] - runs[0][split]):+.2f}" for r in runs[1:])
            print(f"{name:9s} {split:4s} teacher -> students {accs}%; gain on own teacher "
                  f"{own}, on the first {first}")
        k = iterations_by_validation([r["val"] for r in runs], args.min_gain / 100)
        print(f"{name}: {k} iteration(s) chosen on validation (gain >= {args.min_gain} points "
              f"on the own teacher), test {100 * runs[k]['test']:.2f}%")
    plt.figure(figsize=(5, 3.4))
    for name, runs in done.items():
        plt.plot(range(len(runs)), [100 * r["test"] for r in runs], "o-", label=name)
    plt.xticks(range(args.iterations + 1), ["teacher"] + [f"student {i}" for i in
                                                          range(1, args.iterations + 1)])
    plt.ylabel(f"test accuracy (%), {args.labels} labels")
    plt.legend()
    plt.tight_layout()
    plt.savefig(os.path.join(args.out, "accuracy.png"), dpi=110)
    plt.close()
    return done


if __name__ == "__main__":
    main()
