"""The classical baselines on MNIST (seeds 002, 003, 004): eigen-digits, K-means centroids,
a Gaussian mixture fitted by EM, and the patch-level PCA / K-means feature baseline.

    python examples/pca_kmeans.py                     # offline: embedded 5,000-image MNIST
    python examples/pca_kmeans.py --clusters 16 --patch-features 128 --out runs/pca_kmeans

Writes to --out: eigendigits.png (mean and top principal components), explained_variance.png,
centroids.png (K-means centres), gmm_loglik.png (EM's log-likelihood per iteration, which
never decreases), patch_dictionary.png (K-means centroids of whitened 6x6 patches), and
prints the linear-classifier accuracy on pixels vs patch features (seed 003, TIP #2).
"""
import argparse
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.eval import LogisticRegression, cluster_accuracy, normalized_mutual_info
from tinylatent.models.classical import PCA, GaussianMixture, KMeans
from tinylatent.models.patch_features import PatchFeatures

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="PCA, K-means, GMM and patch features on MNIST",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--components", type=int, default=16, help="eigen-digits to draw")
    p.add_argument("--clusters", type=int, default=10)
    p.add_argument("--n-init", type=int, default=4)
    p.add_argument("--gmm-components", type=int, default=10)
    p.add_argument("--patch-features", type=int, default=64, help="K-means patch centroids")
    p.add_argument("--limit-train", type=int, default=10000)
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (needs CuPy)")
    p.add_argument("--out", default="runs/pca_kmeans")
    return p.parse_args(argv)


def tiles(images, ncol, path, title, size=28, symmetric=False):
    imgs = np.asarray(images).reshape(-1, size, size)
    nrow = int(np.ceil(len(imgs) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 0.8, nrow * 0.8 + 0.3))
    for ax, i in zip(np.ravel(axes), range(nrow * ncol)):
        ax.axis("off")
        if i < len(imgs):
            lim = np.abs(imgs[i]).max() if symmetric else None
            ax.imshow(imgs[i], cmap="RdBu_r" if symmetric else "gray",
                      vmin=-lim if symmetric else None, vmax=lim)
    fig.suptitle(title, fontsize=9)
    plt.savefig(path, dpi=100, bbox_inches="tight")
    plt.close()


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    x_tr, y_tr = tl.data.load_mnist("mnist", "train", data_dir=args.data_dir)
    x_te, y_te = tl.data.load_mnist("mnist", "test", data_dir=args.data_dir)
    x_tr, y_tr = x_tr[:args.limit_train], y_tr[:args.limit_train]
    flat = lambda a: tl.tensor(a.reshape(len(a), -1) / 255.0, dtype=tl.float32,  # noqa: E731
                               device=args.device)
    X, X_te = flat(x_tr), flat(x_te)

    # PCA: eigendecomposition of the covariance (seed 002)
    pca = PCA(n_components=50).fit(X)
    comps = pca.components_.numpy()[:args.components]
    tiles(np.concatenate([pca.mean_.numpy()[None], comps]), 9,
          os.path.join(args.out, "eigendigits.png"), "mean digit and the top principal "
          "components (red +, blue -)", symmetric=True)
    evr = pca.explained_variance_ratio_.numpy()
    recon = pca.inverse_transform(pca.transform(X_te))
    print(f"PCA: 50 components explain {evr.sum():.3f} of the variance; test reconstruction "
          f"MSE per pixel {float(((recon - X_te) ** 2).mean().item()):.4f}")
    plt.figure(figsize=(5, 3.2))
    plt.plot(np.arange(1, 51), np.cumsum(evr), marker=".")
    plt.xlabel("components")
    plt.ylabel("cumulative explained variance")
    plt.savefig(os.path.join(args.out, "explained_variance.png"), dpi=100,
                bbox_inches="tight")
    plt.close()

    # K-means on pixels (seeds 002, 003)
    km = KMeans(args.clusters, n_init=args.n_init, seed=args.seed).fit(X)
    labels = km.labels_.numpy()
    purity = sum(np.bincount(y_tr[labels == c]).max() for c in range(args.clusters)
                 if (labels == c).any()) / len(labels)
    print(f"K-means (K={args.clusters}): inertia {km.inertia_:.1f}, cluster purity "
          f"{purity:.3f}, accuracy (Hungarian) {cluster_accuracy(y_tr, labels):.3f}, NMI "
          f"{normalized_mutual_info(y_tr, labels):.3f}, {km.n_iter_} Lloyd iterations")
    tiles(km.cluster_centers_.numpy(), min(args.clusters, 10),
          os.path.join(args.out, "centroids.png"), f"K-means centroids (K={args.clusters})")

    # Gaussian mixture by EM in the 50-d PCA space (seed 004)
    Z = pca.transform(X)
    gmm = GaussianMixture(args.gmm_components, covariance_type="full", max_iter=100,
                          seed=args.seed).fit(Z)
    ll = gmm.log_likelihoods_
    print(f"GMM ({args.gmm_components} full-covariance components, 50-d PCA space): "
          f"log-likelihood per image {ll[0]:.2f} -> {ll[-1]:.2f} in {len(ll)} EM iterations, "
          f"test {gmm.score(pca.transform(X_te)):.2f}")
    plt.figure(figsize=(5, 3.2))
    plt.plot(np.arange(1, len(ll) + 1), ll, marker=".")
    plt.xlabel("EM iteration")
    plt.ylabel("mean log-likelihood")
    plt.savefig(os.path.join(args.out, "gmm_loglik.png"), dpi=100, bbox_inches="tight")
    plt.close()

    # Patch-level features + a linear classifier: the baseline (seed 003, TIP #2)
    acc = {"pixels": LogisticRegression(10).fit(X, y_tr).score(X_te, y_te)}
    for method, k in (("pca", 16), ("kmeans", args.patch_features)):
        feats = PatchFeatures(method=method, n_features=k, seed=args.seed).fit(x_tr)
        clf = LogisticRegression(10).fit(feats.transform(x_tr), y_tr)
        acc[f"patch {method} ({k})"] = clf.score(feats.transform(x_te), y_te)
        if method == "kmeans":
            atoms = tl.Tensor._make(feats.dictionary_).numpy()  # (K, 36), host copy
            tiles(atoms, 16, os.path.join(args.out, "patch_dictionary.png"),
                  "K-means centroids of whitened 6x6 patches", size=6, symmetric=True)
    print(f"\nlinear classifier, {len(x_tr)} training images, test accuracy:")
    for name, a in acc.items():
        print(f"  {name:<22} {a:.3f}")
    print(f"pictures in {args.out}/")


if __name__ == "__main__":
    main()
