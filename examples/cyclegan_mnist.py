"""CycleGAN (Zhu et al. 2017) between MNIST digits (domain A) and bold digits (domain B: each
digit dilated by a 3x3 max filter; --domain thick-inverted also draws them dark on white),
unpaired: A and B come from disjoint halves of the training images, so no B image is a
transform of an A image.

    python examples/cyclegan_mnist.py                     # embedded 4,000 training digits
    python examples/cyclegan_mnist.py --domain thick-inverted
    python examples/cyclegan_mnist.py --resume            # continue OUT/checkpoint.npz

Trained by tl.train.Trainer with two optimizers (model.optimizers(): Adam 2e-4, beta1 0.5 for
both generators and for both discriminators). After each epoch, on the 1,000 test digits:
"acc_ab" = accuracy of a classifier trained on all training digits drawn in style B
(tl.eval.train_image_classifier; a judge only, CycleGAN never sees pairs) on
the translations G(a), scored against the source digit's label; "acc_b" = its accuracy on the
real domain-B test digits (the ceiling) and "acc_a_raw" = on untranslated A digits (the
floor); "test_cycle_l1" = mean |F(G(a)) - a| in [0, 1] pixels. Writes OUT/triplets.png
(source, translation, reconstruction), loss_curve.png and checkpoint.npz.

With --domain thick-inverted, 10 epochs end in a shortcut the cycle loss rewards: G draws a
dark outline round the still-white stroke (F undoes it easily), and the judge recognises only
~5% of the translations; the identity loss (weight 5) makes it worse, as it asks G to keep
intensities. Bold digits (the default) need no such trick.
"""
import argparse
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset, load_mnist, make_grid
from tinylatent.eval import train_image_classifier
from tinylatent.models import CycleGAN
from tinylatent.train import Trainer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

RESUMABLE = ("resume", "epochs", "out", "limit_train_batches", "data_dir")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="CycleGAN: MNIST <-> bold MNIST (unpaired)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    p.add_argument("--domain", choices=["thick", "thick-inverted"], default="thick",
                   help="domain B: bold digits, or bold digits dark on white")
    p.add_argument("--epochs", type=int, default=10, help="passes over the unpaired pairs")
    p.add_argument("--batch-size", type=int, default=32, help="A and B images per step")
    p.add_argument("--hidden-channels", type=int, default=16, help="C of all four networks")
    p.add_argument("--n-blocks", type=int, default=2, help="residual blocks per generator")
    p.add_argument("--identity-weight", type=float, default=0.0,
                   help="identity loss weight (the paper: 0.5 lambda = 5 for photos; it keeps "
                        "intensities, which fights the inversion here)")
    p.add_argument("--classifier-epochs", type=int, default=30, help="domain-B classifier")
    p.add_argument("--n-eval", type=int, default=1000, help="test digits translated")
    p.add_argument("--seed", type=int, default=0, help="weights, pools and shuffling")
    p.add_argument("--out", default="runs/cyclegan_mnist", help="pictures and checkpoint")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train-batches", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def to_domain_b(images: np.ndarray, style: str = "thick") -> np.ndarray:
    """(N, 28, 28) in [0, 1] -> the digit thickened (3x3 max filter), and for
    "thick-inverted" also drawn dark on white."""
    pad = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    thick = np.max([pad[:, i:i + 28, j:j + 28] for i in range(3) for j in range(3)], axis=0)
    return 1.0 - thick if style == "thick-inverted" else thick


def save_triplets(a, fake_b, rec_a, path):
    """Rows of (source, translation, reconstruction) triplets, 4 triplets per row."""
    tiles = np.stack([a, fake_b, rec_a], axis=1).reshape(-1, 784)       # (3N, 784)
    fig, ax = plt.subplots(figsize=(8, len(a) / 4 * 0.7 + 0.6))
    ax.imshow(make_grid(tiles, 12), cmap="gray", vmin=0, vmax=1)
    ax.set_title("A: x,  G(x) in B,  F(G(x))", fontsize=9)
    ax.axis("off")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    tl.manual_seed(args.seed)
    images, labels = load_mnist("mnist", "train", args.data_dir)
    images = images.astype(np.float32) / 255.0                          # (N, 28, 28)
    order = np.random.default_rng(args.seed).permutation(len(images))
    half = len(images) // 2
    ia, ib = order[:half], order[half:2 * half]                         # disjoint: unpaired
    x_a = images[ia][:, None]                                           # (N/2, 1, 28, 28)
    x_b = to_domain_b(images[ib], args.domain)[:, None]
    test_images, test_labels = load_mnist("mnist", "test", args.data_dir)
    test_a = (test_images[:args.n_eval].astype(np.float32) / 255.0)     # (n, 28, 28)
    test_y = test_labels[:args.n_eval]
    # the judge, not part of CycleGAN's data: a classifier on every training digit in style B
    judge_images = to_domain_b(images, args.domain).reshape(len(images), -1)  # (N, 784)
    classifier = train_image_classifier(judge_images, labels, epochs=args.classifier_epochs,
                                        seed=args.seed)

    def accuracy(x):
        with tl.no_grad():
            logits = classifier(tl.tensor(np.asarray(x, np.float32).reshape(len(x), -1)))
        return float((logits.numpy().argmax(1) == test_y).mean())

    acc_b, acc_a_raw = accuracy(to_domain_b(test_a, args.domain)), accuracy(test_a)

    def evaluate(model):
        src = tl.tensor(test_a[:, None])
        fake_b = model.translate_ab(src)
        rec = model.translate_ba(fake_b).numpy()
        save_triplets(test_a[:16], fake_b.numpy()[:16, 0], rec[:16, 0],
                      f"{args.out}/triplets.png")
        return {"acc_ab": accuracy(fake_b.numpy()), "acc_b": acc_b, "acc_a_raw": acc_a_raw,
                "test_cycle_l1": float(np.abs(rec[:, 0] - test_a).mean())}

    loader = DataLoader(TensorDataset(tl.tensor(x_a), tl.tensor(x_b)), args.batch_size,
                        shuffle=True, generator=tl.Generator(args.seed))
    model = CycleGAN(hidden_channels=args.hidden_channels, n_blocks=args.n_blocks,
                     identity_weight=args.identity_weight)
    trainer = Trainer(model, model.optimizers(), args.out, config=vars(args),
                      evaluate=evaluate, resumable_keys=RESUMABLE)
    history = trainer.fit(loader, args.epochs, resume=args.resume,
                          max_steps_per_epoch=args.limit_train_batches or None)
    h = history[-1]
    print(f"translated A->B recognised: {h['acc_ab']:.3f} (real B {acc_b:.3f}, raw A "
          f"{acc_a_raw:.3f}); cycle L1 {h['test_cycle_l1']:.4f}")
    print(f"wrote {args.out}/triplets.png, loss_curve.png, checkpoint.npz")
    return history


if __name__ == "__main__":
    main()
