"""Retrieval with autoencoder codes (seed 000): similar MNIST images by deep-AE codes vs
pixels, and similar King James Bible chapters by a bag-of-words autoencoder vs word counts.

    python examples/retrieval.py                      # offline: embedded MNIST + KJV
    python examples/retrieval.py --epochs 20 --code-dim 16 --out runs/retrieval
    python examples/retrieval.py --resume             # continue both AEs' checkpoints

Writes to --out: mnist_queries.png (each row: a test query, then its 10 nearest training
images by pixels, then by AE codes), and prints a precision@k table for both tasks plus the
nearest chapters of a few KJV queries. Each AE trains with tl.train.Trainer: a progress bar,
and OUT/mnist_ae/ and OUT/kjv_ae/ hold its checkpoint.npz (exact --resume) and loss_curve.png.
"""
import argparse
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, load_kjv_bow, tfidf
from tinylatent.eval import nearest_neighbours, precision_at_k
from tinylatent.models.autoencoders import Autoencoder
from tinylatent.models.retrieval import BagOfWordsAE
from tinylatent.train import Trainer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Retrieval with AE codes (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--code-dim", type=int, default=32)
    p.add_argument("--ks", default="1,10,50", help="comma-separated k of precision@k")
    p.add_argument("--limit-train", type=int, default=10000)
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/retrieval")
    p.add_argument("--resume", action="store_true", help="continue from the AEs' checkpoints")
    return p.parse_args(argv)


def train_autoencoder(model, x, batch_size, args, name):
    """Adam 3e-3 on shuffled minibatches of x, checkpointed under OUT/name; then eval mode."""
    loader = DataLoader(x, batch_size, shuffle=True, generator=tl.Generator(args.seed))
    Trainer(model, tl.optim.Adam(model.parameters(), lr=3e-3), os.path.join(args.out, name),
            config=vars(args)).fit(loader, args.epochs, resume=args.resume)
    model.eval()


def table(title, rows, ks):
    print(f"\n{title}\n{'representation':<28}" + "".join(f"  P@{k:<5}" for k in ks))
    for name, fn in rows:
        print(f"{name:<28}" + "".join(f"  {fn(k):.4f}" for k in ks))


def mnist_task(args, ks):
    x_tr, y_tr = tl.data.load_mnist("mnist", "train", data_dir=args.data_dir)
    x_te, y_te = tl.data.load_mnist("mnist", "test", data_dir=args.data_dir)
    x_tr, y_tr = x_tr[:args.limit_train], y_tr[:args.limit_train]
    as_t = lambda a: tl.tensor(a.reshape(len(a), -1) / 255.0, dtype=tl.float32)  # noqa: E731
    x_tr, x_te = as_t(x_tr), as_t(x_te[:2000])
    y_te = y_te[:2000]
    tl.manual_seed(args.seed)
    ae = Autoencoder(hidden_features=(256,), latent_features=args.code_dim)
    train_autoencoder(ae, x_tr, 64, args, "mnist_ae")
    with tl.no_grad():
        z_tr, z_te = ae.encode(x_tr), ae.encode(x_te)
    table(f"MNIST: {len(x_te)} test queries against {len(x_tr)} training images", [
        ("pixels, Euclidean", lambda k: precision_at_k(x_te, y_te, x_tr, y_tr, k)),
        ("pixels, cosine", lambda k: precision_at_k(x_te, y_te, x_tr, y_tr, k, "cosine")),
        (f"AE codes ({args.code_dim}), Euclidean",
         lambda k: precision_at_k(z_te, y_te, z_tr, y_tr, k)),
        (f"AE codes ({args.code_dim}), cosine",
         lambda k: precision_at_k(z_te, y_te, z_tr, y_tr, k, "cosine"))], ks)

    q = np.arange(8) * 37  # a few fixed queries
    nn_pix = nearest_neighbours(x_te[q], x_tr, 10).numpy()
    nn_code = nearest_neighbours(z_te[q], z_tr, 10).numpy()
    fig, axes = plt.subplots(len(q), 21, figsize=(21 * 0.5, len(q) * 0.55))
    for r, qi in enumerate(q):
        tiles = [x_te[int(qi)]] + [x_tr[int(j)] for j in nn_pix[r]] + \
            [x_tr[int(j)] for j in nn_code[r]]
        labels = [y_te[qi]] + list(y_tr[nn_pix[r]]) + list(y_tr[nn_code[r]])
        for c, (t, lab) in enumerate(zip(tiles, labels)):
            ax = axes[r, c]
            ok = c == 0 or lab == y_te[qi]
            ax.imshow(t.numpy().reshape(28, 28), cmap="gray" if ok else "Reds_r")
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("query", fontsize=7)
    axes[0, 5].set_title("10 nearest by pixels", fontsize=7)
    axes[0, 15].set_title("10 nearest by AE codes", fontsize=7)
    path = os.path.join(args.out, "mnist_queries.png")
    plt.savefig(path, dpi=100, bbox_inches="tight")
    plt.close()
    print(f"(wrong-label results drawn in red) -> {path}")


def text_task(args, ks):
    counts, labels, meta = load_kjv_bow()
    y = labels.numpy()
    perm = np.random.default_rng(args.seed).permutation(len(y))
    test, train = np.sort(perm[:239]), np.sort(perm[239:])
    c_tr, c_te = counts[train], counts[test]
    tl.manual_seed(args.seed)
    ae = BagOfWordsAE(in_features=counts.shape[1], latent_features=args.code_dim)
    train_autoencoder(ae, c_tr, 32, args, "kjv_ae")
    with tl.no_grad():
        z_tr, z_te = ae.encode(c_tr), ae.encode(c_te)
    f_tr, idf = tfidf(c_tr)
    f_te = tfidf(c_te, idf)[0]
    table(f"KJV: {len(test)} held-out chapters against {len(train)}; label = one of "
          f"{len(meta['label_names'])} sections ({', '.join(meta['label_names'])})", [
              ("raw counts, cosine", lambda k: precision_at_k(c_te, y[test], c_tr, y[train],
                                                              k, "cosine")),
              ("tf-idf, cosine", lambda k: precision_at_k(f_te, y[test], f_tr, y[train], k,
                                                          "cosine")),
              (f"BoW-AE codes ({args.code_dim}), cosine",
               lambda k: precision_at_k(z_te, y[test], z_tr, y[train], k, "cosine"))], ks)
    name = lambda i: f"{meta['book_names'][meta['book'][i]]} {meta['chapter'][i]}"  # noqa
    nn_idx = nearest_neighbours(z_te[:5], z_tr, 5, "cosine").numpy()
    for r in range(5):
        print(f"  {name(test[r]):<18} -> " + ", ".join(name(train[j]) for j in nn_idx[r]))


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    ks = [int(k) for k in args.ks.split(",")]
    mnist_task(args, ks)
    text_task(args, ks)


if __name__ == "__main__":
    main()
