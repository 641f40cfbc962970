"""Contrastive representation learning on MNIST / Fashion-MNIST, encoders evaluated FROZEN.

    python examples/contrastive.py --model triplet      # FaceNet triplet, semi-hard mining
    python examples/contrastive.py --model siamese      # Hadsell et al. (npair: Sohn 2016)
    python examples/contrastive.py --model simclr --epochs 100  # fashion-mnist: --epochs 15
    python examples/contrastive.py --model deepcluster   # k-means pseudo-labels each epoch
    python examples/contrastive.py --model clip          # images + generated captions

Figures (each model's `evaluate*`, encoders frozen, baselines on the same split; --validate
scores on the last 10% of the training images instead, for choosing settings): siamese /
triplet / npair recall@1 among test images of the unseen classes 5-9 (vs raw pixels); simclr
a linear probe and 20-NN on h = f(x) and z = g(h) (vs raw pixels and the same encoder at
random init); deepcluster k-means accuracy / NMI on the training images (vs k-means on
pixels); clip zero-shot accuracy (vs a linear probe) and image<->text recall@k. CMC, SimCSE,
the SimCLR batch x temperature sweep: examples/cmc.py, simcse_kjv.py, simclr_sweep.py.
Per-epoch log scores: training images only (metric: of 5-9); the test split is scored once.
Writes to --out: embedding.png (PCA of test embeddings), retrieval.png (queries, 6 nearest),
similarity.png (simclr: two views of 16 images; clip: test images vs the class prompts),
loss_curve.png and checkpoint.npz (--resume continues exactly).
"""
import argparse

import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset
from tinylatent.eval import (embedding_picture, frozen_features, hit_rate_at_k, knn_accuracy,
                             matrix_picture, normalized_mutual_info, retrieval_picture)
from tinylatent.models import DeepCluster, SimCLR, SiameseNet, TripletNet
from tinylatent.models.clip import CLIP, FASHION_NAMES, MNIST_NAMES, CaptionLoader, Captions
from tinylatent.models.deepcluster import ClusterLoader

METRIC = ("siamese", "triplet", "npair")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--model", choices=METRIC + ("simclr", "deepcluster", "clip"), default="triplet")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist",
                   help="mnist offline = the embedded 4,000 / 1,000 images")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per step: 256; simclr 128; deepcluster 64")
    p.add_argument("--lr", type=float, default=None, help="Adam 1e-3 (simclr 2e-3, cosine "
                   "decay over the epochs); deepcluster: SGD 0.05, momentum 0.9 (the paper's)")
    p.add_argument("--latent-features", type=int, default=128,
                   help="embedding / projection width (deepcluster: PCA dimension 32)")
    p.add_argument("--hidden-features", type=int, default=128, help="metric: 0 = linear head")
    p.add_argument("--mining", choices=["semi_hard", "batch_hard"], default="semi_hard")
    p.add_argument("--margin", type=float, default=None, help="metric: triplet 0.2, siamese 1")
    p.add_argument("--rho", type=float, default=0.0, help="triplet: P(negative -> positive)")
    p.add_argument("--temperature", type=float, default=0.2, help="simclr: NT-Xent tau")
    p.add_argument("--seed", type=int, default=0, help="weights, shuffling, augmentation")
    p.add_argument("--out", default=None, help="default runs/contrastive/<model>")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train-batches", type=int, default=0, help="0 = all (smoke tests)")
    p.add_argument("--limit-images", type=int, default=0, help="first N train / test images")
    p.add_argument("--validate", action="store_true", help="test on the last 10%% of train")
    return p.parse_args(argv)


def load(dataset, limit=0, validate=False):
    """(x, y, xt, yt): images (N, 1, 28, 28) in [0, 1] and labels, the first `limit`;
    validate: the last 10% of the training images stand in for the test split (not loaded)."""
    x, y = tl.data.load_mnist(dataset, "train")
    n = len(x) * 9 // 10 if validate else len(x)
    xt, yt = (x[n:], y[n:]) if validate else tl.data.load_mnist(dataset, "test")
    keep = slice(0, limit or None)
    return (x[:n].astype(np.float32)[keep, None] / 255.0, y[:n][keep],
            xt.astype(np.float32)[keep, None] / 255.0, yt[keep])


def build(args):
    if args.model == "clip":
        return CLIP()
    if args.model == "deepcluster":
        return DeepCluster()
    if args.model == "simclr":
        return SimCLR(latent_features=args.latent_features, temperature=args.temperature,
                      flip=args.dataset != "mnist")           # a mirrored 2, 5 or 7 is no digit
    size = dict(latent_features=args.latent_features, hidden_features=args.hidden_features,
                **({} if args.margin is None else {"margin": args.margin}))
    if args.model == "siamese":
        return SiameseNet(**size)
    return TripletNet(**size, mining=args.mining, rho=args.rho,
                      objective="n_pair" if args.model == "npair" else "triplet")


def make_evaluate(args, x, y, cap):
    """The cheap per-epoch score of each model, on frozen features of TRAINING images only:
    the test split is scored once, at the end (settings are chosen with --validate)."""
    unseen = np.flatnonzero(y >= 5)[:1000]      # metric: training images of classes 5-9,
    n = min(len(x), 3000)                       # which the model never trains on

    def evaluate(m):
        if args.model == "deepcluster":                        # nearest centroid, 2,000 images
            with tl.no_grad():
                pseudo = m.pseudo_labels(tl.tensor(x[:2000]))
            return {"pseudo_label_nmi": normalized_mutual_info(y[:2000], pseudo)}
        if args.model == "clip":
            with tl.no_grad():
                w = m.zero_shot_weights(cap).numpy()
            emb = frozen_features(m.encode, x[:1000], module=m)
            return {"zero_shot_train": float(((emb @ w.T).argmax(1) == y[:1000]).mean())}
        if args.model == "simclr":                             # 20-NN: 2/3 fit, 1/3 queries
            feats = frozen_features(m.encode, x[:n], module=m)
            k = n * 2 // 3
            return {"knn_train": knn_accuracy(feats[:k], y[:k], feats[k:], y[k:n])}
        emb = frozen_features(m.encode, x[unseen], module=m)
        return {"recall@1_unseen_train": hit_rate_at_k(emb, y[unseen], emb, y[unseen], k=1,
                                                       metric="cosine", exclude_self=True)}
    return evaluate


def final_results(args, model, init, x, y, xt, yt, xq, yq, cap):
    """The model's figure next to its baselines on the same split, encoders frozen."""
    if args.model in METRIC:
        print(f"recall@1 among {len(xq)} test images of unseen classes 5-9 (cosine, frozen):")
        return model.evaluate_unseen(xq, yq)
    if args.model == "deepcluster":
        print(f"k-means (k = 10) on {len(x)} training images, accuracy / NMI (frozen):")
        return model.evaluate(x, y, args.seed)
    if args.model == "clip":
        results, sim = model.evaluate(cap, x, y, xt, yt)
        title = "cos(image of class i, prompts of class j)"
        print("test accuracy and recall@k (class-level hits, cosine), frozen towers:")
    else:
        results = model.evaluate(x, y, xt, yt, init)
        sim = model.view_similarity(xt[:16], generator=np.random.default_rng(1))
        title = "cos(z_i, z'_j): view 1 rows, view 2 columns"
        print("test accuracy: linear probe / 20-NN (cosine), on frozen features:")
    matrix_picture(sim, f"{args.out}/similarity.png", title)
    return results


def main(argv=None):
    args = parse_args(argv)
    args.out = args.out or f"runs/contrastive/{args.model}"
    args.batch_size = args.batch_size or {"deepcluster": 64, "simclr": 128}.get(args.model, 256)
    x, y, xt, yt = load(args.dataset, args.limit_images, args.validate)
    train, xq, yq = TensorDataset(x, y), xt, yt
    if args.model in METRIC:                                   # classes 0-4 seen, 5-9 unseen
        train, xq, yq = TensorDataset(x[y < 5], y[y < 5]), xt[yt >= 5], yt[yt >= 5]
    if args.model == "deepcluster":                             # clustered: the training images
        xq, yq = x, y
    tl.manual_seed(args.seed)
    model = build(args)
    init = model.init_features(x, xt) if args.model == "simclr" else None   # random-init twin
    loader = DataLoader(train, args.batch_size, shuffle=True, drop_last=True,
                        generator=tl.Generator(args.seed))
    optimizer = tl.optim.Adam(model.parameters(), lr=args.lr or 1e-3)
    cap, scheduler = None, None                                 # clip: the captions
    if args.model == "simclr":                                  # cosine decay (sec. B.9)
        optimizer = tl.optim.Adam(model.parameters(), lr=args.lr or 2e-3, weight_decay=1e-6)
        scheduler = tl.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    if args.model == "deepcluster":                             # the paper's SGD
        optimizer = tl.optim.SGD(model.parameters(), lr=args.lr or 0.05, momentum=0.9,
                                 weight_decay=1e-5)
        loader = ClusterLoader(model, optimizer, x, args.batch_size, tl.Generator(args.seed))
    if args.model == "clip":
        cap = Captions(MNIST_NAMES if args.dataset == "mnist" else FASHION_NAMES)
        loader = CaptionLoader(loader, cap)
    trainer = tl.train.Trainer(model, optimizer, args.out, config=vars(args), scheduler=scheduler,
                               evaluate=make_evaluate(args, x, y, cap))
    trainer.fit(loader, args.epochs, resume=args.resume,
                max_steps_per_epoch=args.limit_train_batches or None)
    results = final_results(args, model, init, x, y, xt, yt, xq, yq, cap)
    for name, v in results.items():
        print(f"  {name:18s} " + " / ".join(f"{u:.4f}" for u in np.atleast_1d(v)))
    emb = frozen_features(model.encode, xq[:2000], module=model)
    embedding_picture(emb, yq[:2000], f"{args.out}/embedding.png",
                      f"{args.model}: test embeddings (PCA)")
    retrieval_picture(xq[:2000], emb, f"{args.out}/retrieval.png")
    print(f"pictures and checkpoint in {args.out}/")
    return trainer.history, results


if __name__ == "__main__":
    main()
