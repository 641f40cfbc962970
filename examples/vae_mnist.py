"""Train a variational autoencoder on MNIST and save pictures of what it learned.

    python examples/vae_mnist.py                 # MNIST (offline: the embedded 5,000 images)
    python examples/vae_mnist.py --latent-dim 2  # + the 2-D latent manifold and a scatter
    python examples/vae_mnist.py --dataset fashion-mnist --data-dir DIR  # IDX files in DIR
    mpiexec -n 2 python examples/vae_mnist.py --distributed  # data-parallel, batch per rank

The recipe of pytorch/examples vae/main.py (784-400-20, ReLU, Adam 1e-3, batch 128, BCE (sum)
+ analytic KL per image); the model is tinylatent/models/vae.py. Writes to --out, every epoch:
reconstructions, interpolations, samples, loss_curve (and with --latent-dim 2: manifold,
latent_codes) .png, and checkpoint.npz; --resume continues exactly where that left off.
"""
import argparse
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.data import MNIST, DataLoader, DistributedSampler, save_image_grid
from tinylatent.models.vae import VAE, VAEConfig, kl_anneal_weight
from tinylatent.train import plot_history

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


# Arguments that may differ on --resume (this run's value wins); any other difference is
# refused by tl.serialization.check_resume_args.
RESUMABLE = ("epochs", "device", "out", "data_dir", "iwae_k")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="VAE on MNIST (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=None,
                   help="default 10 (the PyTorch recipe), or 50 on the 4,000-image embedded "
                        "subset (1,600 steps, about a minute on one core)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None, help="folder with the IDX *-ubyte(.gz) files")
    p.add_argument("--out", default="runs/vae_mnist")
    p.add_argument("--device", default="cpu", help="cpu or cuda (needs CuPy)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--kl-anneal-epochs", type=float, default=0.0,
                   help="warm the KL weight up linearly from 0 to 1 over this many epochs")
    p.add_argument("--free-bits", type=float, default=0.0, help="nats per latent dim")
    p.add_argument("--iwae-k", type=int, default=0,
                   help="at the end, estimate test log p(x) with the k-sample IWAE bound")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the ranks of `mpiexec -n N` (--batch-size is per "
                        "rank; rank 0 prints, draws and checkpoints)")
    p.add_argument("--limit-train-batches", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def evaluate(model, loader, device, seed):
    """Test loss: the negative ELBO per image, one fixed-seed posterior sample per image."""
    model.eval()
    g = tl.Generator(seed)
    with tl.no_grad():
        total = sum(float(model.loss(x.to(device), generator=g)[1]["neg_elbo"].item()) * len(x)
                    for x, _ in loader)
    return total / len(loader.dataset)


def save_pictures(model, test, history, args):
    x, y = test.take(np.arange(min(len(test), 2000)))
    x = x.to(args.device)
    pair = np.concatenate([x[:16].numpy_host(), model.reconstruct(x[:16]).numpy_host()])
    save_image_grid(pair, f"{args.out}/reconstructions.png", 8,
                    "test images (rows 1-2), reconstructions (rows 3-4)")
    save_image_grid(model.interpolate(x[:8], x[8:16], 10).numpy_host(),
                    f"{args.out}/interpolations.png", 10,
                    "decoded (1 - t) mu_a + t mu_b, t = 0 ... 1")
    samples = model.sample(64, generator=tl.Generator(args.seed), device=args.device)
    save_image_grid(samples.numpy_host(), f"{args.out}/samples.png", 8,
                    "x ~ p(x|z), z ~ N(0, I)")
    plot_history(history, f"{args.out}/loss_curve.png", "loss = -ELBO (nats per image)")
    if args.latent_dim == 2:
        save_image_grid(model.latent_grid(20).numpy_host(), f"{args.out}/manifold.png", 20,
                        "decoded z on a 20x20 grid of Gaussian quantiles")
        mu = model.encode(x).detach().numpy_host()                # (N, 2) posterior means
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        dots = ax.scatter(mu[:, 0], mu[:, 1], c=y.numpy_host(), cmap="tab10", s=4)
        fig.colorbar(dots, label="label")
        ax.set(xlabel="z1", ylabel="z2", title="test images encoded (posterior means)")
        fig.savefig(f"{args.out}/latent_codes.png", dpi=100, bbox_inches="tight")
        plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    rank, world = 0, 1
    if args.distributed:
        import tinylatent.distributed as dist
        dist.init_process_group("mpi")
        rank, world = dist.get_rank(), dist.get_world_size()
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = f"{args.out}/checkpoint.npz"
    tl.manual_seed(args.seed)                          # weights and the reparameterization noise
    shuffle_gen = tl.Generator(args.seed)              # the order of the training images
    train = MNIST("train", args.dataset, args.data_dir, flatten=True)
    test = MNIST("test", args.dataset, args.data_dir, flatten=True)
    if args.epochs is None:
        args.epochs = 50 if train.source == "embedded" else 10
    # each rank its shard of every epoch's shuffle: together the batch of one N-times process
    sampler = DistributedSampler(train, world, rank, seed=args.seed) if args.distributed else None
    loader = DataLoader(train, args.batch_size, shuffle=sampler is None, generator=shuffle_gen,
                        sampler=sampler)
    model = VAE(VAEConfig(in_features=784, hidden_features=400,
                          latent_features=args.latent_dim, free_bits=args.free_bits)
                ).to(args.device)
    optimizer = tl.optim.Adam(model.parameters(), lr=args.lr)
    trainer = tl.nn.parallel.DistributedDataParallel(model) if args.distributed else model
    steps_per_epoch = min(len(loader), args.limit_train_batches or len(loader))
    start, step, history = 1, 0, []
    if args.resume and os.path.exists(ckpt_path):
        ckpt = tl.load(ckpt_path)
        try:   # a changed --lr or --batch-size would not continue the saved run: refuse
            tl.serialization.check_resume_args(ckpt.get("args"), vars(args), RESUMABLE)
        except ValueError as e:
            raise SystemExit(f"vae_mnist.py: {e}") from None
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        tl.set_rng_state(ckpt["rng"])
        shuffle_gen.set_state(ckpt["shuffle_rng"])
        start, step, history = ckpt["epoch"] + 1, ckpt["step"], list(ckpt["history"])
        print(f"resumed from {ckpt_path} after epoch {ckpt['epoch']}")
    elif args.resume:
        print(f"no checkpoint at {ckpt_path}: starting from scratch")
    print(f"{model.num_parameters():,} parameters; {len(train):,} train / {len(test):,} test "
          f"images; {args.epochs} epochs of {steps_per_epoch} steps")
    for epoch in range(start, args.epochs + 1):
        model.train()
        if args.distributed:   # per-rank noise, a function of the epoch: resumable on any N
            sampler.set_epoch(epoch)
            tl.manual_seed(args.seed + 1000 * rank + epoch)
        total, n = 0.0, 0
        bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch}/{args.epochs}",
                   leave=False, mininterval=0.5,     # a bar on a terminal only, not in logs
                   disable=rank > 0 or not sys.stderr.isatty())
        for i, (x, _) in enumerate(bar):
            if i == steps_per_epoch:
                break
            beta = kl_anneal_weight(step, int(args.kl_anneal_epochs * steps_per_epoch))
            loss, metrics = trainer.loss(x.to(args.device), kl_weight=beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            neg_elbo = float(metrics["neg_elbo"].item())     # the host sync, once a step
            total, n = total + neg_elbo * len(x), n + len(x)
            bar.set_postfix(loss=f"{neg_elbo:.1f}", kl=f"{float(metrics['kl'].item()):.1f}")
        if args.distributed:                           # the train loss over all ranks
            sums = tl.tensor([total, n], dtype="float64")
            dist.all_reduce(sums)
            total, n = sums.tolist()
        history.append({"epoch": epoch, "train": total / n,
                        "test": evaluate(model, DataLoader(test, 1000), args.device, args.seed)})
        if rank == 0:
            print(f"epoch {epoch:3d}  train loss {history[-1]['train']:8.2f}  "
                  f"test loss {history[-1]['test']:8.2f}  (nats per image)", flush=True)
            save_pictures(model, test, history, args)
            tl.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "epoch": epoch, "step": step, "rng": tl.get_rng_state(),
                     "shuffle_rng": shuffle_gen.get_state(), "history": history,
                     "args": vars(args)}, ckpt_path)   # temp file + rename: never half-written
        if args.distributed:
            dist.barrier()                             # no rank runs ahead of the checkpoint
    if args.distributed:
        dist.destroy_process_group()
    if args.iwae_k > 0 and rank == 0:
        model.eval()
        g = tl.Generator(args.seed)
        bound = np.concatenate([model.iwae_bound(x.to(args.device), k=args.iwae_k,
                                                 generator=g).numpy_host()
                                for x, _ in DataLoader(test, 100)])
        print(f"test IWAE bound (k={args.iwae_k}): log p(x) >= {bound.mean():.2f} nats per image")
    print(f"pictures and checkpoint in {args.out}/")
    return history


if __name__ == "__main__":
    main()
