"""Tracking by colorization (Vondrick et al. 2018) on coloured Moving MNIST.

    python examples/tracking_colorization.py                 # embedded MNIST digits, offline
    python examples/tracking_colorization.py --num-train 2000 --epochs 6

Training clips of --clip frames show two bouncing digits, each in its own random hue
(tl.data.moving_mnist, colors=True). TrackingByColorization (tinylatent/models/tracking.py)
sees the gray frames only and must colour frames 1.. by COPYING the quantised colours
(k-means of ab, 16 clusters) of frame 0 through softmax attention over learned cell
embeddings. Evaluation (no colour at all): the digit that owns each cell of frame 0 is
propagated to every later frame of held-out --num-frames-frame videos through the same
attention; accuracy over foreground cells, per frame, next to the nearest-pixel baseline
(each cell keeps its frame-0 label) and the same network at its random init (same seed).
Writes to --out: accuracy.png (per frame), propagation.png (frames / true labels /
propagated / recoloured from frame 0), result.json, loss_curve.png and checkpoint.npz;
--resume continues (tl.train.Trainer).
"""
import argparse
import json
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset, make_grid, moving_mnist
from tinylatent.models import TrackingByColorization
from tinylatent.models.tracking import downsample_labels, nearest_pixel_accuracy
from tinylatent.train import Trainer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Tracking by colorization (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--num-train", type=int, default=1000, help="training clips")
    p.add_argument("--num-test", type=int, default=200, help="held-out videos")
    p.add_argument("--clip", type=int, default=4, help="frames per training clip")
    p.add_argument("--num-frames", type=int, default=10, help="frames per test video")
    p.add_argument("--size", type=int, default=64, help="canvas side")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden-channels", type=int, nargs="+", default=[16, 32])
    p.add_argument("--latent-features", type=int, default=32)
    p.add_argument("--num-colors", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (needs CuPy)")
    p.add_argument("--out", default="runs/tracking_colorization")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train-batches", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def save_pictures(model, test, x_te, curves, args):
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    frames = np.arange(1, args.num_frames)
    for name, acc in curves.items():
        ax.plot(frames, acc, "o-" if name == "trained" else "s--", label=name)
    ax.set(xlabel="frame (labels given at frame 0)", ylabel="label propagation accuracy",
           title="digit labels carried by attention (foreground cells)", ylim=(0, 1))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(f"{args.out}/accuracy.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    truth = downsample_labels(test.ids[:1], model.stride, 3)               # (1, T, h, w)
    pred = model.propagate(x_te[:1], truth[:, 0], 3).numpy_host()
    up = np.ones((model.stride, model.stride))
    palette = np.array([[0, 0, 0], [1, 0.35, 0.35], [0.35, 0.65, 1]])     # bg, digit 1, 2
    show = lambda lab: palette[np.kron(lab, up).astype(int)]  # noqa: E731  (cells -> pixels)
    rows = [test.videos[0].transpose(0, 2, 3, 1), show(truth[0]), show(pred[0]),
            model.reconstruct(x_te[:1]).numpy_host()[0].transpose(0, 2, 3, 1)]
    fig, ax = plt.subplots(figsize=(args.num_frames * 0.8, 3.6))
    ax.imshow(np.clip(make_grid(np.concatenate(rows), args.num_frames), 0, 1))
    ax.set_title("rows: frames / true digit labels / labels propagated from frame 0 / "
                 "colours copied from frame 0", fontsize=7)
    ax.axis("off")
    fig.savefig(f"{args.out}/propagation.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    train = moving_mnist(args.num_train, args.clip, size=args.size, colors=True,
                         generator=args.seed)
    test = moving_mnist(args.num_test, args.num_frames, size=args.size, colors=True,
                        generator=args.seed + 1)
    x_tr, x_te = (tl.tensor(v.videos, device=args.device) for v in (train, test))
    cfg = dict(image_size=args.size, hidden_channels=tuple(args.hidden_channels),
               latent_features=args.latent_features, num_colors=args.num_colors)
    tl.manual_seed(args.seed)
    model = TrackingByColorization(**cfg).to(args.device)
    tl.manual_seed(args.seed)
    random_init = TrackingByColorization(**cfg).to(args.device)   # where training starts
    model.fit_colors(x_tr[:200], seed=args.seed)
    print(f"TrackingByColorization: {model.num_parameters():,} parameters, "
          f"{len(x_tr):,} training clips of {args.clip} frames")
    loader = DataLoader(TensorDataset(x_tr), args.batch_size, shuffle=True,
                        generator=tl.Generator(args.seed))
    trainer = Trainer(model, tl.optim.Adam(model.parameters(), lr=args.lr), args.out,
                      config=vars(args), evaluate=lambda m: {
                          "test_propagation_acc": float(m.propagation_accuracy(
                              x_te, test.ids).mean())})
    trainer.fit(loader, args.epochs, resume=args.resume,
                max_steps_per_epoch=args.limit_train_batches)
    model.eval()
    random_init.eval()
    curves = {"trained": model.propagation_accuracy(x_te, test.ids),
              "random init": random_init.propagation_accuracy(x_te, test.ids),
              "nearest pixel": nearest_pixel_accuracy(test.ids, model.stride)}
    result = {"per_frame": {k: v.tolist() for k, v in curves.items()},
              "mean": {k: float(v.mean()) for k, v in curves.items()},
              "num_test": args.num_test, "num_frames": args.num_frames}
    print("label propagation accuracy over frames 1-%d: " % (args.num_frames - 1) +
          "  ".join(f"{k} {v:.4f}" for k, v in result["mean"].items()))
    print("last frame: " + "  ".join(f"{k} {v[-1]:.4f}" for k, v in curves.items()))
    with open(f"{args.out}/result.json", "w") as f:
        json.dump(result, f, indent=1)
    save_pictures(model, test, x_te, curves, args)
    print(f"pictures in {args.out}/")
    return result


if __name__ == "__main__":
    main()
