"""Train one of the autoencoders of tinylatent/models/autoencoders.py on MNIST, save pictures.

    python examples/autoencoders_mnist.py --model ae            # offline: embedded 5k MNIST
    python examples/autoencoders_mnist.py --model denoising --noise salt_pepper --noise-level 0.2
    python examples/autoencoders_mnist.py --model contractive --weight 1.0
    python examples/autoencoders_mnist.py --model conv --dataset fashion-mnist --data-dir DIR

Models: ae (784-256-32), deep (784-512-256-64-32), conv (up-convolutions), denoising, sparse
(L1 code penalty, --weight = lambda), contractive (||J_f||_F^2, --weight = lambda). Trains
with tl.train.Trainer. Writes to --out: reconstructions.png (test images over their
reconstructions; for the denoising AE the rows are clean / corrupted / reconstructed from
the corrupted), loss_curve.png, codes.png (histogram of code activations, which shows what
the sparse penalty does) and checkpoint.npz; --resume continues exactly where that left off.
"""
import argparse
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.data import DataLoader, TensorDataset, save_image_grid
from tinylatent.models.autoencoders import (AEConfig, Autoencoder, ContractiveAE,
                                            ConvAutoencoder, DenoisingAE, SparseAE, corrupt,
                                            reconstruction_error)
from tinylatent.train import Trainer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

MODELS = ["ae", "deep", "conv", "denoising", "sparse", "contractive"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Autoencoders on MNIST (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--model", choices=MODELS, default="ae")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--code-dim", type=int, default=32)
    p.add_argument("--noise", choices=["gaussian", "masking", "salt_pepper"], default="masking")
    p.add_argument("--noise-level", type=float, default=0.5)
    p.add_argument("--weight", type=float, default=None,
                   help="lambda of the sparse (default 0.2) or contractive (default 1.0) penalty")
    p.add_argument("--limit-train", type=int, default=10000,
                   help="use at most this many training images (CPU time)")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None, help="folder with the IDX *-ubyte(.gz) files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (needs CuPy)")
    p.add_argument("--out", default="runs/autoencoders_mnist")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    return p.parse_args(argv)


def build(args):
    if args.model == "conv":
        return ConvAutoencoder(latent_features=args.code_dim)
    if args.model == "deep":
        return Autoencoder(AEConfig(hidden_features=(512, 256, 64),
                                    latent_features=args.code_dim))
    if args.model == "denoising":
        return DenoisingAE(hidden_features=(256,), latent_features=args.code_dim,
                           noise=args.noise, noise_level=args.noise_level)
    if args.model == "sparse":  # a wider ReLU code, so that sparsity has room to show
        return SparseAE(hidden_features=(256,), latent_features=max(args.code_dim, 128),
                        sparsity_weight=0.2 if args.weight is None else args.weight)
    if args.model == "contractive":  # one sigmoid layer: the closed-form penalty applies
        return ContractiveAE(latent_features=max(args.code_dim, 64),
                             contractive_weight=1.0 if args.weight is None else args.weight)
    return Autoencoder(hidden_features=(256,), latent_features=args.code_dim)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    tl.manual_seed(args.seed)
    x_train, _ = tl.data.load_mnist(args.dataset, "train", data_dir=args.data_dir)
    x_test, _ = tl.data.load_mnist(args.dataset, "test", data_dir=args.data_dir)
    x_train = x_train[:args.limit_train]
    to_tensor = lambda a: tl.tensor(a.reshape(len(a), -1) / 255.0,  # noqa: E731
                                    dtype=tl.float32, device=args.device)
    x_train, x_test = to_tensor(x_train), to_tensor(x_test)
    model = build(args).to(args.device)
    print(f"{args.model}: {model.num_parameters()} parameters, {len(x_train)} training images")
    loader = DataLoader(TensorDataset(x_train), args.batch_size, shuffle=True,
                        generator=tl.Generator(args.seed))
    trainer = Trainer(model, tl.optim.Adam(model.parameters(), lr=args.lr), args.out,
                      config=vars(args), evaluate=lambda m: {
                          "test_mse": reconstruction_error(m, x_test[:1000])})
    trainer.fit(loader, args.epochs, resume=args.resume)  # also writes loss_curve.png
    model.eval()
    err = reconstruction_error(model, x_test)
    print(f"test reconstruction error (MSE per pixel): {err:.4f}")

    x = x_test[:16]
    with tl.no_grad():
        if args.model == "denoising":
            x_noisy = corrupt(x, args.noise, args.noise_level, generator=tl.Generator(1))
            rows = [x.numpy(), x_noisy.numpy(), model(x_noisy).numpy()]
            noisy_all = corrupt(x_test, args.noise, args.noise_level, generator=tl.Generator(1))
            print(f"corrupted test images -> clean: MSE per pixel "
                  f"{reconstruction_error(model, noisy_all, x_test):.4f}")
            title = f"clean / {args.noise} {args.noise_level} / denoised"
        else:
            rows, title = [x.numpy(), model(x).numpy()], "test images / reconstructions"
        codes = model.encode(x_test).numpy()
    save_image_grid(np.concatenate(rows), os.path.join(args.out, "reconstructions.png"),
                    len(rows[0]), f"{args.model}: {title}", tile_inches=0.45)
    active = (np.abs(codes) > 1e-6).sum(1).mean()
    print(f"code units active per image: {active:.1f} of {codes.shape[1]}")

    plt.figure(figsize=(5, 3.2))
    plt.hist(codes.ravel(), bins=80, color="tab:blue")
    plt.yscale("log")
    plt.title(f"{args.model}: code activations on test images ({active:.1f} active)")
    plt.savefig(os.path.join(args.out, "codes.png"), dpi=100, bbox_inches="tight")
    plt.close()
    print(f"pictures in {args.out}/")


if __name__ == "__main__":
    main()
