"""Contrastive representation learning on MNIST / Fashion-MNIST, evaluated with the encoder
FROZEN (no evaluation here ever updates the trained weights).

    python examples/contrastive.py --model triplet      # FaceNet triplet, semi-hard mining
    python examples/contrastive.py --model siamese      # Hadsell et al. contrastive loss
    python examples/contrastive.py --model npair        # Sohn's N-pair loss
    python examples/contrastive.py --model simclr --dataset fashion-mnist --epochs 20
    python examples/contrastive.py --model deepcluster   # k-means pseudo-labels each epoch
    python examples/contrastive.py --model clip          # images + generated captions

siamese / triplet / npair train on classes 0-4 only and report recall@1 (hit rate) of test
images of the unseen classes 5-9 among each other, next to raw-pixel nearest neighbours.
simclr trains on all training images without labels and reports a linear probe and k-NN
accuracy on the frozen h = f(x) and on z = g(h), next to raw pixels and the same encoder at
random init. deepcluster trains without labels and reports clustering accuracy and NMI of
k-means (k = 10) on its frozen features of the training images next to k-means on raw
pixels of the same images. clip pairs each image with a generated caption ("a drawing of a
digit seven.") and reports prompt-ensembled zero-shot accuracy next to a linear probe on the
same image embeddings, and image<->text recall@k.

Writes to --out: embedding.png (2-D PCA of the test embeddings), retrieval.png (queries and
their 6 nearest neighbours), similarity.png (simclr: cosine similarities of two views of 16
images; clip: one test image per class against the class prompts), loss_curve.png and
checkpoint.npz (--resume continues exactly).
"""
import argparse
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset, make_grid
from tinylatent.data.transforms import as_numpy_generator
from tinylatent.eval import (cluster_accuracy, hit_rate_at_k, knn_accuracy, linear_probe,
                             normalized_mutual_info)
from tinylatent.models import DeepCluster, KMeans, SimCLR, SiameseNet, TripletNet
from tinylatent.models.clip import CLIP, FASHION_NAMES, MNIST_NAMES, Captions
from tinylatent.models.deepcluster import uniform_cluster_sampler

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

METRIC = ("siamese", "triplet", "npair")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=METRIC + ("simclr", "deepcluster", "clip"), default="triplet",
                   help="which model")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist",
                   help="mnist offline = the embedded 4,000 / 1,000 images")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per step: 256; deepcluster 64")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam 1e-3; deepcluster: SGD 0.05, momentum 0.9 (the paper's)")
    p.add_argument("--latent-features", type=int, default=128,
                   help="embedding / projection width (deepcluster: PCA dimension 32)")
    p.add_argument("--mining", choices=["semi_hard", "batch_hard"], default="semi_hard",
                   help="triplet mining")
    p.add_argument("--temperature", type=float, default=0.2, help="simclr: NT-Xent tau")
    p.add_argument("--seed", type=int, default=0, help="weights, shuffling, augmentation")
    p.add_argument("--out", default=None, help="default runs/contrastive/<model>")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train-batches", type=int, default=0, help="0 = all (smoke tests)")
    p.add_argument("--limit-images", type=int, default=0,
                   help="use only the first N train and N test images (0 = all; smoke tests)")
    return p.parse_args(argv)


def load(dataset):
    x, y = tl.data.load_mnist(dataset, "train")
    xt, yt = tl.data.load_mnist(dataset, "test")
    return [(v.astype(np.float32) / 255.0)[:, None] for v in (x, xt)], y, yt   # (N,1,28,28)


def features(fn, x):
    with tl.no_grad():                                        # the encoder stays frozen
        return np.concatenate([fn(tl.tensor(x[i:i + 1000])).numpy()
                               for i in range(0, len(x), 1000)])


def build(args):
    if args.model == "clip":
        return CLIP()
    if args.model == "deepcluster":
        return DeepCluster()
    if args.model == "simclr":
        return SimCLR(latent_features=args.latent_features, temperature=args.temperature)
    if args.model == "siamese":
        return SiameseNet(latent_features=args.latent_features)
    return TripletNet(latent_features=args.latent_features, mining=args.mining,
                      objective="n_pair" if args.model == "npair" else "triplet")


class ClusterLoader:
    """DeepCluster's epoch: cluster the frozen features of all images (classifier
    re-initialised), then batches drawn uniformly over the pseudo-classes."""

    def __init__(self, model, optimizer, x, batch_size, generator):
        self.model, self.optimizer, self.x = model, optimizer, x
        self.batch_size, self.generator, self.dataset = batch_size, generator, x

    def __len__(self):
        return len(self.x) // self.batch_size

    def __iter__(self):
        rng = as_numpy_generator(self.generator)
        self.model.eval()
        labels = self.model.cluster(features(self.model.encode, self.x), rng)
        for p in self.model.classifier.parameters():       # a new classifier: no old moments
            self.optimizer.state.pop(p, None)
        self.model.train()
        idx = uniform_cluster_sampler(labels, len(self) * self.batch_size, rng)
        for b in range(len(self)):
            i = idx[b * self.batch_size:(b + 1) * self.batch_size]
            yield tl.tensor(self.x[i]), tl.tensor(labels[i])


class CaptionLoader:
    """(images, labels) batches -> (images, tokens of one random caption per label)."""

    def __init__(self, loader, captions):
        self.loader, self.captions, self.generator = loader, captions, loader.generator
        self.dataset = loader.dataset

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        rng = as_numpy_generator(self.generator)
        for x, y in self.loader:
            yield x, tl.tensor(self.captions.tokens(self.captions.sample(y.numpy(), rng)))


def clip_results(model, cap, x, y, xt, yt, out):
    with tl.no_grad():                                         # frozen towers
        w = model.zero_shot_weights(cap).numpy()                # (10, E) prompt ensembles
        t = model.encode_text(tl.tensor(cap.tokens(cap.sample(yt, np.random.default_rng(1)))))
    e, et, t = features(model.encode, x), features(model.encode, xt), t.numpy()
    res = {"zero-shot": float(((et @ w.T).argmax(1) == yt).mean()),
           "linear probe": linear_probe(e, y, et, yt)}
    for k in (1, 5):
        res[f"image->text R@{k}"] = hit_rate_at_k(et, yt, t, yt, k=k, metric="cosine")
        res[f"text->image R@{k}"] = hit_rate_at_k(t, yt, et, yt, k=k, metric="cosine")
    one = [int(np.flatnonzero(yt == c)[0]) for c in range(10)]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    im = ax.imshow(et[one] @ w.T, cmap="viridis")
    fig.colorbar(im)
    ax.set(title="cos(image of class i, prompts of class j)", xlabel="j", ylabel="i")
    fig.savefig(f"{out}/similarity.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return res


def pca2(v):
    v = v - v.mean(0)
    return v @ np.linalg.svd(v, full_matrices=False)[2][:2].T          # (N, 2)


def pictures(model, xq, yq, emb, out, title):
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    p = pca2(emb)
    dots = ax.scatter(p[:, 0], p[:, 1], c=yq, cmap="tab10", s=4)
    fig.colorbar(dots, label="class")
    ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    fig.savefig(f"{out}/embedding.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    queries = np.random.default_rng(0).choice(len(xq), 8, replace=False)
    near = np.argsort(-(e[queries] @ e.T), axis=1)[:, 1:7]             # skip the query itself
    rows = np.concatenate([np.concatenate([[q], n]) for q, n in zip(queries, near)])
    fig, ax = plt.subplots(figsize=(4.5, 6))
    ax.imshow(make_grid(xq[rows].reshape(len(rows), -1), 7), cmap="gray")
    ax.set_title("query | 6 nearest (cosine, frozen encoder)", fontsize=9)
    ax.axis("off")
    fig.savefig(f"{out}/retrieval.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def similarity_picture(model, x, out):
    v1, v2 = model.views(tl.tensor(x[:16]), generator=np.random.default_rng(1))
    z1, z2 = features(model.project, v1.numpy()), features(model.project, v2.numpy())
    z1, z2 = (z / np.linalg.norm(z, axis=1, keepdims=True) for z in (z1, z2))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    im = ax.imshow(z1 @ z2.T, cmap="viridis", vmin=-1, vmax=1)
    fig.colorbar(im)
    ax.set(title="cos(z_i, z'_j): view 1 rows, view 2 columns", xlabel="j", ylabel="i")
    fig.savefig(f"{out}/similarity.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    args.out = args.out or f"runs/contrastive/{args.model}"
    args.batch_size = args.batch_size or (64 if args.model == "deepcluster" else 256)
    (x, xt), y, yt = load(args.dataset)
    if args.limit_images:
        x, y, xt, yt = (v[:args.limit_images] for v in (x, y, xt, yt))
    if args.model in METRIC:                                   # classes 0-4 seen, 5-9 unseen
        train = TensorDataset(x[y < 5], y[y < 5])
        xq, yq = xt[yt >= 5], yt[yt >= 5]
    else:
        train, xq, yq = TensorDataset(x, y), xt, yt
    if args.model == "deepcluster":                             # clustered: the training images
        xq, yq = x, y
    tl.manual_seed(args.seed)
    model = build(args)
    init = {}
    if args.model == "simclr":                                 # the same encoder at random init
        model.eval()
        init = {"h": (features(model.encode, x), features(model.encode, xt))}
    loader = DataLoader(train, args.batch_size, shuffle=True, drop_last=True,
                        generator=tl.Generator(args.seed))
    optimizer = tl.optim.Adam(model.parameters(), lr=args.lr or 1e-3)
    if args.model == "deepcluster":                             # the paper's SGD
        optimizer = tl.optim.SGD(model.parameters(), lr=args.lr or 0.05, momentum=0.9,
                                 weight_decay=1e-5)
        loader = ClusterLoader(model, optimizer, x, args.batch_size, tl.Generator(args.seed))
    if args.model == "clip":
        cap = Captions(MNIST_NAMES if args.dataset == "mnist" else FASHION_NAMES)
        loader = CaptionLoader(loader, cap)

    def evaluate(m):                                           # cheap, every epoch
        if args.model == "deepcluster":                        # nearest centroid, 2,000 images
            with tl.no_grad():
                pseudo = m.pseudo_labels(tl.tensor(x[:2000]))
            return {"pseudo_label_nmi": normalized_mutual_info(y[:2000], pseudo)}
        emb = features(m.encode, xq[:1000])
        if args.model == "clip":
            with tl.no_grad():
                w = m.zero_shot_weights(cap).numpy()
            return {"zero_shot_test": float(((emb @ w.T).argmax(1) == yq[:1000]).mean())}
        return {"knn_test" if args.model == "simclr" else "recall@1_unseen":
                knn_accuracy(features(m.encode, x[:2000]), y[:2000], emb, yq[:1000])
                if args.model == "simclr" else
                hit_rate_at_k(emb, yq[:1000], emb, yq[:1000], k=1, metric="cosine",
                              exclude_self=True)}

    trainer = tl.train.Trainer(model, optimizer, args.out, config=vars(args), evaluate=evaluate)
    trainer.fit(loader, args.epochs, resume=args.resume,
                max_steps_per_epoch=args.limit_train_batches or None)
    model.eval()
    raw = lambda v: v.reshape(len(v), -1)                     # noqa: E731
    results = {}
    if args.model in METRIC:
        for name, fn in (("raw pixels", raw), ("conv trunk", model.features),
                         ("embedding", model.encode)):
            v = features(fn, xq)
            results[name] = hit_rate_at_k(v, yq, v, yq, k=1, metric="cosine",
                                          exclude_self=True)
        print(f"recall@1 among {len(xq)} test images of unseen classes 5-9 (cosine, frozen):")
    elif args.model == "clip":
        results = clip_results(model, cap, x, y, xt, yt, args.out)
        print("test accuracy and recall@k (class-level hits, cosine), frozen towers:")
    elif args.model == "deepcluster":
        for name, fn in (("raw pixels", raw), ("DeepCluster f(x)", model.encode)):
            v = features(fn, x)
            pred = np.asarray(KMeans(10, n_init=3, seed=args.seed).fit(v).predict(v))
            results[name] = (cluster_accuracy(y, pred), normalized_mutual_info(y, pred))
        print(f"k-means (k = 10) on {len(x)} training images, accuracy / NMI (frozen):")
    else:
        for name, (a, b) in (("raw pixels", (raw(x), raw(xt))), ("random-init h", init["h"]),
                             ("h = f(x)", (features(model.encode, x), features(model.encode, xt))),
                             ("z = g(h)", (features(model.project, x),
                                           features(model.project, xt)))):
            results[name] = (linear_probe(a, y, b, yt), knn_accuracy(a, y, b, yt, k=20))
        print("test accuracy: linear probe / 20-NN (cosine), on frozen features:")
        similarity_picture(model, xt, args.out)
    for name, v in results.items():
        print(f"  {name:18s} " + (f"{v:.4f}" if np.isscalar(v) else
                                 f"{v[0]:.4f} / {v[1]:.4f}"))
    pictures(model, xq[:2000], yq[:2000], features(model.encode, xq[:2000]), args.out,
             f"{args.model}: test embeddings (PCA)")
    print(f"pictures and checkpoint in {args.out}/")
    return trainer.history, results


if __name__ == "__main__":
    main()
