"""Train the classifier behind tl.eval.SampleQuality (Frechet distance, class histogram).

    python scripts/train_eval_classifier.py --embedded # -> the shipped weights file
    python scripts/train_eval_classifier.py --out runs/mnist_classifier.npz   # full MNIST
    python scripts/train_eval_classifier.py --dataset fashion-mnist --data-dir DIR \
        --out runs/fashion_classifier.npz              # IDX files in DIR
    python scripts/train_eval_classifier.py --npz my_images.npz --out my_classifier.npz

--npz: arrays train_images, train_labels, test_images, test_labels (28x28 images, uint8 or
floats in [0, 1]). --embedded: the 5,000-image MNIST subset that ships with tinylatent.
Otherwise MNIST comes from the usual loader (cache, download, else the embedded subset).
The shipped tinylatent/eval/weights/mnist_classifier.npz was made by the first command
(4,000 training images, seed 0, 30 epochs); its test accuracy on the 1,000 embedded test
images (0.968) is stored in the file ("info") and printed here. Use another file as
SampleQuality(classifier=OUT).
"""
import argparse

import numpy as np

from tinylatent.data import EMBEDDED_MNIST, load_mnist
from tinylatent.eval import (MNIST_CLASSIFIER, ClassifierConfig, SampleQuality,
                             save_classifier, train_image_classifier)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None, help="folder with the IDX *-ubyte(.gz) files")
    p.add_argument("--npz", default=None, help="an .npz with train/test images and labels")
    p.add_argument("--embedded", action="store_true",
                   help="train on the embedded 5,000-image MNIST subset (the shipped weights)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=MNIST_CLASSIFIER)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.npz or args.embedded:
        with np.load(args.npz or EMBEDDED_MNIST, allow_pickle=False) as f:
            x_tr, y_tr, x_te, y_te = (f[k] for k in ("train_images", "train_labels",
                                                     "test_images", "test_labels"))
        source = args.npz or "embedded MNIST subset (4,000 train images)"
    else:
        x_tr, y_tr = load_mnist(args.dataset, "train", args.data_dir)
        x_te, y_te = load_mnist(args.dataset, "test", args.data_dir)
        source = f"{args.dataset} ({len(x_tr)} train images)"
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    model = train_image_classifier(x_tr, y_tr, epochs=args.epochs, seed=args.seed,
                                   config=ClassifierConfig(n_classes=n_classes),
                                   log=lambda e, loss: print(f"epoch {e}: loss {loss:.4f}",
                                                             flush=True))
    accuracy = float((SampleQuality(model).predict(x_te) == y_te).mean())
    save_classifier(model, args.out, data=source, seed=args.seed, epochs=args.epochs,
                    test_accuracy=accuracy)
    print(f"test accuracy {accuracy:.4f}; weights in {args.out}")


if __name__ == "__main__":
    main()
