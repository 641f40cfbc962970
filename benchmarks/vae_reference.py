"""The VAE recipe of pytorch/examples vae/main.py in PyTorch, next to tinylatent's, side by side.

Both models start from the SAME weights (PyTorch's copied from tinylatent's, whose Linear init
is PyTorch's) and see the SAME minibatches in the same order. The reparameterization noise
during training is each library's own (independent runs of one recipe), or with
shared_noise=True the same numbers (then the two trainings agree to float rounding: a test
that the recipes are identical). The test loss uses the same noise on both sides, so the
difference reported is the training's, not the evaluation's. Used by
benchmarks/test_bench_vae.py, and as a script that prints both test losses every epoch:

    python -m benchmarks.vae_reference --epochs 10 --seeds 1 2 3 4 5     # embedded MNIST
    python -m benchmarks.vae_reference --dataset fashion-mnist \\
        --data-dir /usr/share/datasets/fashion-mnist --epochs 10
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tinylatent as tl
from tinylatent.data import MNIST, DataLoader, Subset
from tinylatent.models.vae import VAE, VAEConfig

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the benchmark skips without PyTorch
    torch = None


if torch is not None:
    class TorchVAE(nn.Module):
        """pytorch/examples vae/main.py, with the BCE computed from logits (as ours)."""

        def __init__(self, input_dim=784, hidden_dim=400, latent_dim=20):
            super().__init__()
            self.enc_hidden = nn.Linear(input_dim, hidden_dim)
            self.enc_mu = nn.Linear(hidden_dim, latent_dim)
            self.enc_logvar = nn.Linear(hidden_dim, latent_dim)
            self.dec_hidden = nn.Linear(latent_dim, hidden_dim)
            self.dec_out = nn.Linear(hidden_dim, input_dim)

        def loss(self, x, eps=None):
            h = F.relu(self.enc_hidden(x))
            mu, logvar = self.enc_mu(h), self.enc_logvar(h)
            eps = torch.randn(mu.shape) if eps is None else eps
            logits = self.dec_out(F.relu(self.dec_hidden(mu + torch.exp(0.5 * logvar) * eps)))
            bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            return (bce + kld) / len(x)      # per image, as tinylatent's VAE.loss


class SideBySide:
    """Two identical VAEs (tinylatent, PyTorch), one shared data order; train and evaluate."""

    def __init__(self, dataset="mnist", data_dir=None, seed=1, batch_size=128, lr=1e-3,
                 latent_dim=20, shared_noise=False, n_train=None):
        tl.manual_seed(seed)
        torch.manual_seed(seed)
        train = MNIST("train", dataset, data_dir, flatten=True)
        self.test = MNIST("test", dataset, data_dir, flatten=True)
        self.train = train if n_train is None else Subset(train, np.arange(n_train))
        self.x_train_pt = torch.from_numpy(train.tensors[0].numpy()[:n_train])
        self.x_test_pt = torch.from_numpy(self.test.tensors[0].numpy())
        self.loader = DataLoader(self.train, batch_size, shuffle=True,
                                 generator=tl.Generator(seed))
        self.batch_size, self.seed = batch_size, seed
        self.tl_model = VAE(VAEConfig(latent_features=latent_dim))
        self.pt_model = TorchVAE(latent_dim=latent_dim)
        with torch.no_grad():
            for name, p in self.pt_model.named_parameters():
                p.copy_(torch.from_numpy(self.tl_model.state_dict()[name].numpy()))
        self.tl_opt = tl.optim.Adam(self.tl_model.parameters(), lr=lr)
        self.pt_opt = torch.optim.Adam(self.pt_model.parameters(), lr=lr)
        # with shared noise, tinylatent draws from noise_tl and PyTorch gets the same
        # numbers from an identically seeded twin stream
        self.noise_tl = tl.Generator(seed + 1000) if shared_noise else None
        self.noise_pt = tl.Generator(seed + 1000) if shared_noise else None

    def _pt_eps(self, n: int, gen):
        if gen is None:
            return None
        eps = tl.randn((n, self.tl_model.config.latent_features), generator=gen)
        return torch.from_numpy(eps.numpy())

    def tl_epoch(self) -> float:
        """One epoch of tinylatent, with its own DataLoader: the unit that is timed."""
        total = 0.0
        for x, _ in self.loader:
            loss, m = self.tl_model.loss(x)
            self.tl_opt.zero_grad()
            loss.backward()
            self.tl_opt.step()
            total += float(m["loss"].item()) * len(x)
        return total / len(self.train)

    def pt_epoch(self, order=None) -> float:
        """One epoch of PyTorch over `order` (default: a fresh permutation)."""
        n = len(self.x_train_pt)
        order = np.random.default_rng().permutation(n) if order is None else order
        order = torch.from_numpy(order)
        total = 0.0
        for i in range(0, n, self.batch_size):
            x = self.x_train_pt[order[i:i + self.batch_size]]
            loss = self.pt_model.loss(x, self._pt_eps(len(x), self.noise_pt))
            self.pt_opt.zero_grad()
            loss.backward()
            self.pt_opt.step()
            total += loss.item() * len(x)
        return total / n

    def paired_epoch(self) -> tuple[float, float, float, float]:
        """One epoch of each on the same minibatch order -> train losses and seconds."""
        order = self.loader.generator._np.permutation(len(self.train))
        t0 = time.perf_counter()
        total = 0.0
        for i in range(0, len(order), self.batch_size):
            x, _ = self.train.take(order[i:i + self.batch_size])
            loss, m = self.tl_model.loss(x, generator=self.noise_tl)
            self.tl_opt.zero_grad()
            loss.backward()
            self.tl_opt.step()
            total += float(m["loss"].item()) * len(x)
        t1 = time.perf_counter()
        pt_train = self.pt_epoch(order)
        return total / len(order), pt_train, t1 - t0, time.perf_counter() - t1

    def test_losses(self) -> tuple[float, float]:
        """Negative ELBO per test image (one fixed-seed sample per image), both sides."""
        with tl.no_grad():
            g, tl_total = tl.Generator(self.seed), 0.0
            for x, _ in DataLoader(self.test, 1000):
                neg_elbo = self.tl_model.loss(x, generator=g)[1]["neg_elbo"]
                tl_total += float(neg_elbo.item()) * len(x)
        with torch.no_grad():
            g = tl.Generator(self.seed)       # the same numbers tinylatent drew above
            pt_total = sum(self.pt_model.loss(x, self._pt_eps(len(x), g)).item() * len(x)
                           for x in self.x_test_pt.split(1000))
        n = len(self.test)
        return tl_total / n, pt_total / n


def main() -> None:
    p = argparse.ArgumentParser(description="VAE recipe: tinylatent vs PyTorch, per epoch")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--shared-noise", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    tests = np.zeros((len(args.seeds), args.epochs, 2))   # (seed, epoch, [tl, torch])
    for k, seed in enumerate(args.seeds):
        s = SideBySide(args.dataset, args.data_dir, seed, shared_noise=args.shared_noise)
        print(f"{args.dataset}: {len(s.train)} train / {len(s.test)} test; seed {seed}; "
              f"{'shared' if args.shared_noise else 'independent'} training noise")
        print("epoch  tl_train  pt_train   tl_test   pt_test   diff   tl_s/ep  pt_s/ep")
        for epoch in range(args.epochs):
            tl_train, pt_train, tl_s, pt_s = s.paired_epoch()
            tests[k, epoch] = s.test_losses()
            tl_test, pt_test = tests[k, epoch]
            print(f"{epoch + 1:5d}  {tl_train:8.2f}  {pt_train:8.2f}  {tl_test:8.2f}  "
                  f"{pt_test:8.2f}  {tl_test - pt_test:+5.2f}  {tl_s:7.2f}  {pt_s:7.2f}",
                  flush=True)
    if len(args.seeds) > 1:
        mean = tests.mean(axis=0)                          # (epoch, 2)
        print(f"mean test loss over seeds {args.seeds}:")
        for epoch, (a, b) in enumerate(mean, 1):
            print(f"{epoch:5d}  tinylatent {a:8.2f}  PyTorch {b:8.2f}  diff {a - b:+5.2f}")


if __name__ == "__main__":
    main()
