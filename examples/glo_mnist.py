"""Generative latent optimization on MNIST (Bojanowski et al. 2018): a generator and one
code per training image on the unit sphere, fitted jointly with the Laplacian-pyramid L1
loss; reconstruction MSE on the training images set next to PCA with the same code size.

    python examples/glo_mnist.py                      # 32-d codes, 100 epochs, Lap1 loss
    python examples/glo_mnist.py --loss mse
    python examples/glo_mnist.py --dataset fashion-mnist --limit-train 10000

Offline MNIST is the embedded 4,000-image training subset. Writes under --out:
reconstructions.png (training images, GLO, PCA), interpolations.png (between two codes, along
the sphere), samples.png (z ~ a Gaussian fitted to the codes), loss_curve.png, checkpoint.npz
(--resume continues exactly: codes, generator, Adam state) and results.json.
"""
import argparse
import json
import os

import numpy as np

import tinylatent as tl
import tinylatent.nn.functional as F
from tinylatent.data import MNIST, DataLoader, TensorDataset, save_image_grid
from tinylatent.models import GLO, PCA



def parse_args(argv=None):
    p = argparse.ArgumentParser(description="GLO on MNIST (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="generator (Adam)")
    p.add_argument("--code-lr", type=float, default=2e-2, help="codes (Adam)")
    p.add_argument("--loss", choices=["lap1", "mse"], default="lap1")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--limit-train", type=int, default=0, help="use the first N images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/glo_mnist")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    return p.parse_args(argv)


class ProjectedAdam:
    """Adam, then z_i <- z_i / ||z_i|| (the paper's projection after every update)."""

    def __init__(self, model, lr, code_lr):
        self.model = model
        self.adam = tl.optim.Adam([{"params": list(model.generator.parameters())},
                                   {"params": [model.codes], "lr": code_lr}], lr=lr)

    def zero_grad(self):
        self.adam.zero_grad()

    def step(self):
        self.adam.step()
        self.model.project_codes()

    def state_dict(self):
        return self.adam.state_dict()

    def load_state_dict(self, state):
        self.adam.load_state_dict(state)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    train = MNIST("train", args.dataset, args.data_dir, flatten=True)
    X = train.tensors[0].numpy_host()
    if args.limit_train:
        X = X[:args.limit_train]
    N = len(X)
    tl.manual_seed(args.seed)
    model = GLO(num_codes=N, latent_features=args.latent_dim, loss=args.loss)
    model.init_codes_pca(tl.tensor(X))
    opt = ProjectedAdam(model, args.lr, args.code_lr)
    loader = DataLoader(TensorDataset(tl.tensor(X), tl.arange(N)), args.batch_size,
                        shuffle=True, generator=tl.Generator(args.seed))
    trainer = tl.train.Trainer(model, opt, args.out, config=vars(args))
    history = trainer.fit(loader, epochs=args.epochs, resume=args.resume)

    # reconstruction MSE on the training images: GLO's codes vs PCA with the same code size
    rec = np.concatenate([model.reconstruct_train(tl.arange(i, min(i + 1000, N))).numpy_host()
                          for i in range(0, N, 1000)])
    pca = PCA(args.latent_dim).fit(tl.tensor(X))
    pca_rec = np.clip(pca.inverse_transform(pca.transform(tl.tensor(X))).numpy_host(), 0, 1)
    results = {"data": f"{args.dataset} ({train.source}), {N} training images",
               "latent_dim": args.latent_dim, "loss": args.loss, "epochs": len(history),
               "glo_train_mse": float(((rec - X) ** 2).mean()),
               "pca_train_mse": float(((pca_rec - X) ** 2).mean())}
    print(f"reconstruction MSE on the training images: GLO {results['glo_train_mse']:.5f}, "
          f"PCA-{args.latent_dim} {results['pca_train_mse']:.5f} (clipped to [0, 1])")
    save_image_grid(np.concatenate([X[:10], rec[:10], pca_rec[:10]]),
                    f"{args.out}/reconstructions.png", 10, "training images / GLO g(z_i) / PCA")
    z = model.codes.detach()
    t = tl.tensor(np.linspace(0, 1, 10, dtype=np.float32)).reshape(1, 10, 1)
    path = F.normalize((1 - t) * z[:6].reshape(6, 1, -1) + t * z[6:12].reshape(6, 1, -1),
                       dim=2).reshape(60, -1)   # (6 pairs, 10 steps, latent) on the sphere
    with tl.no_grad():
        save_image_grid(model.decode(path).numpy_host(), f"{args.out}/interpolations.png", 10,
                        "g(normalize((1 - t) z_a + t z_b)), t = 0 ... 1")
    samples = model.sample(60, generator=tl.Generator(args.seed)).numpy_host()
    save_image_grid(samples, f"{args.out}/samples.png", 10,
                    "g(z), z ~ N(mu, Sigma) fitted to the codes")
    with open(f"{args.out}/results.json", "w") as fh:
        json.dump(results, fh, indent=1)
    print(f"pictures, checkpoint and results.json in {args.out}/")
    return history, results


if __name__ == "__main__":
    main()
