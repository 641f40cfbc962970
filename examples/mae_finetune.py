"""Fine-tuning a masked autoencoder vs the same ViT from scratch (He et al. 2022, Sec. 4).

    python examples/mae_finetune.py                         # embedded MNIST offline
    python examples/mae_finetune.py --dataset fashion-mnist --limit-train 20000 --labelled 1000

Arguments: --epochs (pre-training), --finetune-epochs, --labelled, --finetune-lr, and the
rest of examples/mae_mnist.py's (sizes, --mask-ratio, --limit-train, --dataset, --resume ...).

1. Pre-train an MAE (tinylatent/models/mae.py, 75% of the 7x7 patches masked) on
   --limit-train images WITHOUT labels.
2. Fine-tune: ViTClassifier (tinylatent/models/mae_finetune.py) = the MAE's encoder, no
   masking, mean-pooled tokens, a linear head; all weights trained on the first --labelled
   training images with their labels.
3. Scratch: the same ViTClassifier from its random init (same seed), trained the same way
   (same labelled images, epochs, optimizer, learning rate).
Test accuracy after every epoch of 2 and 3, on the same test split. Writes to --out:
finetune.png (test accuracy per epoch, both), result.json, and per phase (pretrain/,
finetune/, scratch/) loss_curve.png and checkpoint.npz; --resume continues every phase.
"""
import argparse
import json
import os
import sys

import matplotlib

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset
from tinylatent.models import MAE
from tinylatent.models.mae_finetune import ViTClassifier
from tinylatent.train import RESUMABLE_KEYS, Trainer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mae_mnist  # noqa: E402  (the pre-training arguments and data loading are its own)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def parse_args(argv=None):
    """Fine-tuning arguments here; everything else (--epochs = pre-training epochs, --lr,
    --mask-ratio, sizes, --limit-train, --dataset, --seed, --device, --resume ...) is
    examples/mae_mnist.py's."""
    p = argparse.ArgumentParser(description="MAE fine-tuning vs scratch (tinylatent); other "
                                "arguments: python examples/mae_mnist.py --help",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument("--finetune-lr", type=float, default=1e-3, help="fine-tuning and scratch")
    p.add_argument("--labelled", type=int, default=1000, help="labelled images to fine-tune on")
    p.add_argument("--out", default="runs/mae_finetune")
    own, rest = p.parse_known_args(argv)
    args = mae_mnist.parse_args(rest + ["--out", own.out])
    args.__dict__.update(vars(own))
    return args


def train(model, data, epochs, lr, out, args, evaluate=None):
    loader = DataLoader(TensorDataset(*data), args.batch_size, shuffle=True,
                        generator=tl.Generator(args.seed))
    trainer = Trainer(model, tl.optim.Adam(model.parameters(), lr=lr), out,
                      config=vars(args), evaluate=evaluate,
                      resumable_keys=RESUMABLE_KEYS + ("finetune_epochs",))
    return trainer.fit(loader, epochs, resume=args.resume,
                       max_steps_per_epoch=args.limit_train_batches)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    x_tr, y_tr = mae_mnist.load(args, "train", args.limit_train)
    x_te, y_te = mae_mnist.load(args, "test", args.limit_test)
    cfg = dict(patch_size=args.patch_size, hidden_features=args.hidden_features,
               num_layers=args.num_layers, mask_ratio=args.mask_ratio)
    tl.manual_seed(args.seed)
    mae = MAE(**cfg).to(args.device)
    print(f"1. pre-training the MAE on {len(x_tr):,} unlabelled images")
    train(mae, (x_tr,), args.epochs, args.lr, f"{args.out}/pretrain", args)
    n = min(args.labelled, len(x_tr))
    labelled = (x_tr[:n], tl.tensor(y_tr[:n], device=args.device))
    curves = {}
    for name in ("finetune", "scratch"):
        tl.manual_seed(args.seed + 1)     # both heads (and the scratch encoder) from one seed
        clf = ViTClassifier(mae.config, num_classes=10).to(args.device)
        if name == "finetune":
            clf.load_encoder(mae)
        print(f"{2 if name == 'finetune' else 3}. {name}: {n:,} labelled images")
        history = train(clf, labelled, args.finetune_epochs, args.finetune_lr,
                        f"{args.out}/{name}", args,
                        evaluate=lambda m: {"test_accuracy": m.accuracy(x_te, y_te)})
        curves[name] = [h["test_accuracy"] for h in history]
    result = {"test_accuracy": {k: v[-1] for k, v in curves.items()}, "per_epoch": curves,
              "labelled": n, "pretrain_images": len(x_tr), "test": len(x_te),
              "mask_ratio": args.mask_ratio}
    print(f"test accuracy with {n:,} labels: MAE fine-tuned "
          f"{result['test_accuracy']['finetune']:.4f} vs same ViT from scratch "
          f"{result['test_accuracy']['scratch']:.4f}")
    with open(f"{args.out}/result.json", "w") as f:
        json.dump(result, f, indent=1)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, label in (("finetune", "MAE pre-trained, fine-tuned"),
                        ("scratch", "same ViT from scratch")):
        ax.plot(range(1, len(curves[name]) + 1), curves[name], "o-", label=label)
    ax.set(xlabel="epoch (labelled data)", ylabel="test accuracy",
           title=f"{args.dataset}: {n:,} labels, MAE pre-trained on {len(x_tr):,} images")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(f"{args.out}/finetune.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"pictures in {args.out}/")
    return result


if __name__ == "__main__":
    main()
