"""The MAF recipe of examples/flows_mnist.py (--model maf) written again in PyTorch, next to
tinylatent's maf_mnist, side by side (as benchmarks/vae_reference.py does for the VAE).

Recipe (Papamakarios et al. 2017, Sec. 4, with ActNorm for batch normalisation): dequantised
pixels x = (pixel + u) / 256, logit transform p = a + (1 - 2a) x, y = logit p (a = 1e-6);
then `steps` x [ActNorm (data-initialised on a first batch of 256), a MADE-affine layer with
one hidden layer (natural ordering, alpha = 3 tanh(raw / 3), zero-initialised output),
reversal of the ordering]; Adam lr 1e-3, batches of 64; bits/dim from the density on
[0, 1]^784. The PyTorch twin computes its own masks and its own ActNorm initialisation from
the same first batch; only the MADE weights are copied (their random init), and both see the
same dequantised minibatches.

    python -m benchmarks.maf_reference --steps 500 --seeds 0 1 2          # embedded MNIST
    python -m benchmarks.maf_reference --dataset fashion-mnist --steps 300 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import math

import numpy as np

import tinylatent as tl
from benchmarks.flow_reference import FlowSideBySide, run_table
from benchmarks.twin_checkpoint import TwinCheckpoint, add_checkpoint_args
from tinylatent.data import dequantize
from tinylatent.models.flows import ImageFlowConfig, maf_mnist

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the benchmark skips without PyTorch
    torch = None

D = 784


def natural_masks(d: int, hidden: int, seed: int):
    """MADE masks for the natural ordering (degrees 1..D), hidden degrees uniform on
    {1..D-1} from default_rng((seed, 0, 2)); the output mask tiled for (mu, alpha)."""
    m_in = np.arange(1, d + 1)
    m_hid = np.random.default_rng((seed, 0, 2)).integers(1, d, size=hidden)
    out = (m_in[:, None] > m_hid[None, :]).astype(np.float32)
    direct = (m_in[:, None] > m_in[None, :]).astype(np.float32)
    return ((m_hid[:, None] >= m_in[None, :]).astype(np.float32), np.tile(out, (2, 1)),
            np.tile(direct, (2, 1)))


if torch is not None:
    class TorchMAF(nn.Module):
        def __init__(self, hidden=512, steps=5, alpha=1e-6):
            super().__init__()
            self.alpha, self.steps = alpha, steps
            self.log_s = nn.ParameterList([nn.Parameter(torch.zeros(D)) for _ in range(steps)])
            self.b = nn.ParameterList([nn.Parameter(torch.zeros(D)) for _ in range(steps)])
            self.hid = nn.ModuleList([nn.Linear(D, hidden) for _ in range(steps)])
            self.out = nn.ModuleList([nn.Linear(hidden, 2 * D) for _ in range(steps)])
            self.direct = nn.ModuleList([nn.Linear(D, 2 * D, bias=False) for _ in range(steps)])
            self.masks = [[torch.from_numpy(m) for m in natural_masks(D, hidden, k)]
                          for k in range(steps)]
            self.initialized = False

        def log_prob(self, x):
            """log p(x) of dequantised images (B, 1, 28, 28) on [0, 1]^784, (B,)."""
            p = self.alpha + (1 - 2 * self.alpha) * x.reshape(len(x), -1)
            y = torch.log(p) - torch.log1p(-p)
            total = (math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)).sum(1)
            for k in range(self.steps):
                if not self.initialized:          # ActNorm: zero mean, unit std per feature
                    with torch.no_grad():
                        std = y.std(0, unbiased=False) + 1e-6
                        self.log_s[k].copy_(-torch.log(std))
                        self.b[k].copy_(-y.mean(0) / std)
                y = y * torch.exp(self.log_s[k]) + self.b[k]
                total = total + self.log_s[k].sum()
                mh, mo, md = self.masks[k]
                h = F.relu(F.linear(y, self.hid[k].weight * mh, self.hid[k].bias))
                out = F.linear(h, self.out[k].weight * mo, self.out[k].bias) \
                    + F.linear(y, self.direct[k].weight * md)
                mu, a = out[:, :D], 3.0 * torch.tanh(out[:, D:] / 3.0)
                y = ((y - mu) * torch.exp(-a)).flip(1)            # MAF layer, then reverse
                total = total - a.sum(1)
            self.initialized = True
            return total - 0.5 * (y * y).sum(1) - 0.5 * D * math.log(2 * math.pi)


class SideBySide(FlowSideBySide):
    """tinylatent's maf_mnist and the PyTorch twin: same MADE weights, same batches."""

    def __init__(self, seed=0, hidden=512, steps=5, lr=1e-3, batch_size=64, n_test=1000,
                 data_dir=None, dataset="mnist"):
        tl.manual_seed(seed)
        torch.manual_seed(seed)
        self.train, _ = tl.data.load_mnist(dataset, "train", data_dir=data_dir)
        test, _ = tl.data.load_mnist(dataset, "test", data_dir=data_dir)
        self.rng, self.batch_size = np.random.default_rng(seed), batch_size
        self.x_test = dequantize(test[:n_test], np.random.default_rng(123))
        self.tl_flow = maf_mnist(ImageFlowConfig(hidden_features=hidden, steps=steps))
        self.pt_flow = TorchMAF(hidden, steps)
        layers = list(self.tl_flow.transform.transforms)
        with torch.no_grad():
            for k in range(steps):
                made = layers[3 + 3 * k].made
                for dst, src in ((self.pt_flow.hid[k].weight, made.hidden[0].weight),
                                 (self.pt_flow.hid[k].bias, made.hidden[0].bias),
                                 (self.pt_flow.out[k].weight, made.output.weight),
                                 (self.pt_flow.out[k].bias, made.output.bias),
                                 (self.pt_flow.direct[k].weight, made.direct.weight)):
                    dst.copy_(torch.from_numpy(src.detach().numpy()))
        self.start_training(lr)

    def masks_equal(self) -> bool:
        layers = list(self.tl_flow.transform.transforms)
        return all(np.array_equal(a.numpy(), b.numpy())
                   for k in range(self.pt_flow.steps)
                   for a, b in zip((layers[3 + 3 * k].made.hidden[0].mask,
                                    layers[3 + 3 * k].made.output.mask,
                                    layers[3 + 3 * k].made.direct.mask), self.pt_flow.masks[k]))


def main() -> None:
    p = argparse.ArgumentParser(description="MAF recipe: tinylatent vs PyTorch")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None, help="a directory with the IDX files")
    add_checkpoint_args(p)
    args = p.parse_args()
    torch.set_num_threads(1)
    s = SideBySide(0, hidden=8, steps=1, n_test=10, data_dir=args.data_dir,
                   dataset=args.dataset)
    print(f"masks identical: {s.masks_equal()}")
    run_table(lambda seed: SideBySide(seed, data_dir=args.data_dir, dataset=args.dataset),
              f"MAF on {args.dataset}", args.steps, args.eval_every, args.seeds,
              TwinCheckpoint(args.checkpoint, vars(args)), args.resume)


if __name__ == "__main__":
    main()
