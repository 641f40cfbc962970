"""Train a DCGAN or a WGAN-GP on MNIST / Fashion-MNIST and save sample grids, a latent
interpolation and the sample-quality score every epoch.

    python examples/gan_mnist.py                            # DCGAN, MNIST (embedded 4,000)
    python examples/gan_mnist.py --model wgangp --epochs 80
    python examples/gan_mnist.py --dataset fashion-mnist --classifier runs/fashion_classifier.npz
    python examples/gan_mnist.py --resume                   # continue OUT/checkpoint.npz

The models are tinylatent/models/dcgan.py (Radford et al. 2016; Gulrajani et al. 2017),
trained by tl.train.Trainer with two optimizers (model.optimizers(): Adam 2e-4, beta1 0.5 for
DCGAN; Adam 1e-4, betas (0, 0.9), 5 critic steps per generator step for WGAN-GP). DCGAN's
discriminator sees the batch's feature spread (minibatch std, Karras et al. 2018) and, per
image, how many images of its batch lie near it (minibatch discrimination, Salimans et al.
2016) unless --no-minibatch-std / --minibatch-kernels 0: without them MNIST's digit 1 is
drawn 1.3-3.7% of the time. After each
epoch: the Frechet distance between 1,000 test images and 1,000 samples in the feature space
of tl.eval's classifier ("fd"; the shipped MNIST classifier, or --classifier for another data
set, made by scripts/train_eval_classifier.py) and the fraction of classes drawn >= 5% of the
time ("coverage"). Writes OUT/samples.png, interpolation.png, loss_curve.png, checkpoint.npz.
"""
import argparse
import os

import tinylatent as tl
from tinylatent.data import MNIST, DataLoader, save_image_grid
from tinylatent.eval import SampleQuality
from tinylatent.models import DCGAN, WGANGP, DCGANConfig
from tinylatent.train import Trainer


RESUMABLE = ("resume", "epochs", "out", "limit_train_batches", "data_dir")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="DCGAN / WGAN-GP on MNIST (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--model", choices=["dcgan", "wgangp"], default="dcgan",
                   help="dcgan (Radford et al.) or wgangp (Gulrajani et al.)")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist",
                   help="training images")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files")
    p.add_argument("--epochs", type=int, default=20, help="passes over the training images")
    p.add_argument("--batch-size", type=int, default=64, help="images per step")
    p.add_argument("--hidden-channels", type=int, default=32, help="C: D has C, 2C channels")
    p.add_argument("--latent-dim", type=int, default=100, help="size of z")
    p.add_argument("--no-minibatch-std", dest="minibatch_std", action="store_false",
                   help="DCGAN without D's minibatch-std feature (Karras et al. 2018)")
    p.add_argument("--minibatch-kernels", type=int, default=DCGANConfig.minibatch_kernels,
                   help="DCGAN: minibatch-discrimination kernels in D (Salimans et al. "
                        "2016); 0: none")
    p.add_argument("--seed", type=int, default=0, help="weights, noise and shuffling")
    p.add_argument("--classifier", default=None,
                   help="sample-quality classifier .npz (default: the shipped MNIST one; "
                        "for fashion-mnist the score is skipped without one)")
    p.add_argument("--n-eval", type=int, default=1000, help="test images and samples scored")
    p.add_argument("--out", default="runs/gan_mnist", help="folder for pictures and checkpoint")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train-batches", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_evaluate(args, test_images):
    quality = None
    if args.classifier or args.dataset == "mnist":
        quality = SampleQuality(args.classifier)

    def evaluate(model):
        g = tl.Generator(args.seed + 1)           # the same z every epoch: comparable grids
        samples = model.sample(max(args.n_eval, 64), generator=g).numpy()
        save_image_grid(samples[:64], f"{args.out}/samples.png", 8,
                        f"{args.model}: x = G(z)")
        z = model.latent(16, tl.Generator(args.seed + 2))                  # (16, K)
        save_image_grid(model.interpolate(z[:8], z[8:], 10).numpy(),
                        f"{args.out}/interpolation.png", 10,
                        "G((1 - t) z_a + t z_b), t = 0 ... 1")
        if quality is None:
            return {}
        n = min(args.n_eval, len(test_images))
        return {"fd": quality.frechet_distance(test_images[:n], samples[:n]),
                "coverage": quality.mode_coverage(samples[:n]),
                "min_class": float(quality.class_histogram(samples[:n]).min())}
    return evaluate


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    tl.manual_seed(args.seed)
    train = MNIST("train", args.dataset, args.data_dir)           # (N, 1, 28, 28) in [0, 1]
    test = MNIST("test", args.dataset, args.data_dir)
    loader = DataLoader(train, args.batch_size, shuffle=True, generator=tl.Generator(args.seed))
    if args.model == "dcgan":
        model = DCGAN(hidden_channels=args.hidden_channels, latent_features=args.latent_dim,
                      minibatch_std=args.minibatch_std,
                      minibatch_kernels=args.minibatch_kernels)
    else:
        model = WGANGP(hidden_channels=args.hidden_channels, latent_features=args.latent_dim)
    trainer = Trainer(model, model.optimizers(), args.out, config=vars(args),
                      evaluate=make_evaluate(args, test.tensors[0].numpy()),
                      resumable_keys=RESUMABLE)
    history = trainer.fit(loader, args.epochs, resume=args.resume,
                          max_steps_per_epoch=args.limit_train_batches or None)
    print(f"wrote {args.out}/samples.png, interpolation.png, loss_curve.png, checkpoint.npz")
    return history


if __name__ == "__main__":
    main()
