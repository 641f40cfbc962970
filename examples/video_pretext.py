"""Video pretext tasks on Moving MNIST (tl.data.moving_mnist): next-frame prediction and the
arrow of time.

    python examples/video_pretext.py --task predict              # FramePredictor (ConvLSTM)
    python examples/video_pretext.py --task arrow --num-train 4000    # ArrowOfTime, gravity
    python examples/video_pretext.py --task arrow --variant bounce    # reversible: chance
    python examples/video_pretext.py --task order --num-train 4000 --epochs 5   # Shuffle&Learn

Videos: one MNIST digit, downsampled to 14x14, bouncing in a 32x32 canvas (CPU-sized Moving
MNIST; --size 64 --digit-size 28 for the paper's). predict: test MSE per pixel of every next
frame given the true past, next to copying the last frame and to linear extrapolation
clip(2 x_t - x_{t-1}) on the same steps; rollout.png shows 5 frames of context and the
model's own continuation under the truth. arrow: accuracy on held-out clips, each shown
forward and reversed. Writes result.json, loss_curve.png and checkpoint.npz under --out;
--resume continues (tl.train.Trainer).
"""
import argparse
import json
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset, make_grid
from tinylatent.models.order_verification import OrderVerification
from tinylatent.models.video_pretext import (ArrowOfTime, FramePredictor, copy_last_mse,
                                             linear_extrapolation_mse)
from tinylatent.train import Trainer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Video pretext tasks on Moving MNIST (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--task", choices=["predict", "arrow", "order"], default="predict")
    p.add_argument("--variant", choices=["bounce", "gravity", "fading"], default=None,
                   help="Moving MNIST dynamics; default gravity (arrow), else bounce")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--num-train", type=int, default=1000, help="training videos")
    p.add_argument("--num-test", type=int, default=200, help="test videos")
    p.add_argument("--num-frames", type=int, default=10)
    p.add_argument("--size", type=int, default=32, help="canvas side")
    p.add_argument("--digit-size", type=int, default=14, choices=[14, 28])
    p.add_argument("--hidden-channels", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (needs CuPy)")
    p.add_argument("--out", default=None, help="default runs/video_pretext_<task>")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train-batches", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_videos(args):
    """Train and test videos drawn from disjoint digit images (MNIST train / test)."""
    variant = args.variant or ("gravity" if args.task == "arrow" else "bounce")
    out = []
    for split, n, seed in (("train", args.num_train, args.seed), ("test", args.num_test,
                                                                  args.seed + 1)):
        imgs, labels = tl.data.load_mnist("mnist", split)
        if args.digit_size == 14:   # 2x2 average: 28 -> 14
            imgs = imgs.reshape(-1, 14, 2, 14, 2).mean((2, 4)).astype(np.float32) / 255.0
        v = tl.data.moving_mnist(n, args.num_frames, num_digits=1, size=args.size,
                                 variant=variant, digits=(imgs, labels),
                                 speed=(1.0, 2.5) if args.size == 32 else (2.0, 5.0),
                                 generator=seed).videos
        out.append(tl.tensor(v, device=args.device))
    return variant, out


def evaluate_predict(model, x_te):
    p = model.predict_next(x_te).numpy_host()
    x = x_te.numpy_host()
    return {"test_mse": float(((p[:, 1:] - x[:, 2:]) ** 2).mean()),     # steps t >= 2
            "copy_last_mse": copy_last_mse(x[:, 1:]),
            "linear_extrapolation_mse": linear_extrapolation_mse(x)}


def save_rollout(model, x_te, args):
    context = 5
    x = x_te[:4]
    pred = model.rollout(x[:, :context], x.shape[1] - context).numpy_host()
    rows = []
    for i in range(4):
        rows += [x.numpy_host()[i, :, 0], np.concatenate([x.numpy_host()[i, :context, 0],
                                                         pred[i, :, 0]])]
    fig, ax = plt.subplots(figsize=(args.num_frames * 0.7, 5))
    ax.imshow(make_grid(np.concatenate(rows), args.num_frames), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"pairs of rows: truth / {context} true frames then the model's rollout",
                 fontsize=8)
    ax.axis("off")
    fig.savefig(f"{args.out}/rollout.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    args.out = args.out or f"runs/video_pretext_{args.task}"
    os.makedirs(args.out, exist_ok=True)
    variant, (x_tr, x_te) = make_videos(args)
    tl.manual_seed(args.seed)
    if args.task == "predict":
        model = FramePredictor(image_size=args.size, hidden_channels=args.hidden_channels)
        evaluate = lambda m: evaluate_predict(m, x_te)  # noqa: E731
    elif args.task == "arrow":
        model = ArrowOfTime(num_frames=args.num_frames, image_size=args.size)
        evaluate = lambda m: {"test_accuracy": m.accuracy(x_te)}  # noqa: E731
    else:
        model = OrderVerification(image_size=args.size)
        evaluate = lambda m: {"test_accuracy": m.accuracy(x_te)}  # noqa: E731
    model = model.to(args.device)
    print(f"{type(model).__name__}: {model.num_parameters():,} parameters; {variant} videos "
          f"{tuple(x_tr.shape)} train, {len(x_te)} test")
    loader = DataLoader(TensorDataset(x_tr), args.batch_size, shuffle=True,
                        generator=tl.Generator(args.seed))
    trainer = Trainer(model, tl.optim.Adam(model.parameters(), lr=args.lr), args.out,
                      config=vars(args), evaluate=evaluate)
    history = trainer.fit(loader, args.epochs, resume=args.resume,
                          max_steps_per_epoch=args.limit_train_batches)
    model.eval()
    result = {"task": args.task, "variant": variant, **{k: v for k, v in history[-1].items()
                                                        if k.startswith("test") or
                                                        k.endswith("_mse")}}
    if args.task == "predict":
        print(f"next-frame test MSE per pixel {result['test_mse']:.5f}; copy last frame "
              f"{result['copy_last_mse']:.5f}; linear extrapolation "
              f"{result['linear_extrapolation_mse']:.5f}")
        save_rollout(model, x_te, args)
    else:
        print(f"{'arrow of time' if args.task == 'arrow' else 'order verification'} "
              f"({variant}): test accuracy {result['test_accuracy']:.4f} "
              "(chance 0.5)")
    with open(f"{args.out}/result.json", "w") as f:
        json.dump(result, f, indent=1)
    print(f"results in {args.out}/")
    return result


if __name__ == "__main__":
    main()
