"""The RealNVP and Glow recipes of examples/flows_mnist.py written again in PyTorch, next to
tinylatent's realnvp_mnist / glow_mnist, side by side (as benchmarks/maf_reference.py does
for MAF).

Recipe: dequantised pixels x = (pixel + u) / 256, logit transform p = a + (1 - 2a) x,
y = logit p (a = 1e-6; Dinh et al. 2017, Sec. 4.1); then a multi-scale flow (Sec. 3.6) whose
levels factor out the first half of the channels to N(0, I):
  * RealNVP: per level `steps` x [ActNorm, checkerboard affine coupling], then (not on the
    last level) squeeze and `steps` x [ActNorm, channel affine coupling];
  * Glow (Kingma & Dhariwal 2018, Fig. 2): per level squeeze, then `steps` x [ActNorm,
    invertible 1x1 conv in LU form (eq. 10), channel affine coupling].
The couplings: (raw, t) = NN(m x), log s = scale tanh(raw) (1 - m), y = x e^{log s} + t (1 - m),
NN = 3x3 conv, ReLU, 1x1 conv, ReLU, zero-initialised 3x3 conv. ActNorm is initialised from
the data (zero mean, unit variance per channel) on a first batch of 256. Adam lr 1e-3,
batches of 64 drawn with replacement, fresh dequantisation noise each step.

The twin is written from the papers; its layers mirror tinylatent's layer order so that the
random initial values (conv weights, the 1x1 convs' random rotations) can be copied over, and
each side runs its own ActNorm initialisation on the same batch. Both see the same
minibatches, so the trainings agree to float32 rounding step by step.

    python -m benchmarks.flow_reference --model realnvp --steps 500 --seeds 0 1 2
    python -m benchmarks.flow_reference --model glow --dataset fashion-mnist --steps 500
    python -m benchmarks.flow_reference ... --checkpoint runs/twins/glow.npz [--resume]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

import tinylatent as tl
from benchmarks.twin_checkpoint import TwinCheckpoint, add_checkpoint_args, load_pair_state
from tinylatent.data import dequantize
from tinylatent.models.flow_image_transforms import ActNorm, InvertibleConv1x1, Squeeze
from tinylatent.models.flow_transforms import AffineCoupling
from tinylatent.models.flows import ImageFlowConfig, bits_per_dim, glow_mnist, realnvp_mnist

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the benchmark skips without PyTorch
    torch = None

D = 784
DEFAULTS = {"realnvp": dict(hidden=32, steps=3), "glow": dict(hidden=64, steps=4)}


def checkerboard(size: int, parity: int) -> np.ndarray:
    """1 on the squares (i + j + parity) even: the half the coupling conditions on."""
    i, j = np.indices((size, size))
    return ((i + j + parity) % 2 == 0).astype(np.float32)[None, None]


def channels_first_half(c: int, parity: int) -> np.ndarray:
    m = (np.arange(c) < c // 2).astype(np.float32)
    return (m if parity == 0 else 1 - m).reshape(1, c, 1, 1)


if torch is not None:
    class TActNorm(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.log_s, self.b = nn.Parameter(torch.zeros(c)), nn.Parameter(torch.zeros(c))
            self.initialized = False

        def forward(self, x):
            if not self.initialized:          # data-dependent initialisation (Glow, Sec. 3.1)
                with torch.no_grad():
                    std = x.std(dim=(0, 2, 3), unbiased=False) + 1e-6
                    self.log_s.copy_(-torch.log(std))
                    self.b.copy_(-x.mean(dim=(0, 2, 3)) / std)
                self.initialized = True
            y = x * torch.exp(self.log_s)[None, :, None, None] + self.b[None, :, None, None]
            return y, x.shape[2] * x.shape[3] * self.log_s.sum()

    class TConv1x1LU(nn.Module):
        """W = P L (U + diag(sign(s) e^{log|s|})) (Kingma & Dhariwal 2018, eq. 10)."""

        def __init__(self, c):
            super().__init__()
            self.register_buffer("P", torch.eye(c))
            self.register_buffer("sign_s", torch.ones(c))
            self.lower = nn.Parameter(torch.zeros(c, c))
            self.upper = nn.Parameter(torch.zeros(c, c))
            self.log_s = nn.Parameter(torch.zeros(c))

        def forward(self, x):
            eye = torch.eye(len(self.log_s))
            w = self.P @ ((torch.tril(self.lower, -1) + eye)
                          @ (torch.triu(self.upper, 1) + torch.diag(self.sign_s
                                                                    * torch.exp(self.log_s))))
            return F.conv2d(x, w[:, :, None, None]), x.shape[2] * x.shape[3] * self.log_s.sum()

    class TCoupling(nn.Module):
        def __init__(self, mask: np.ndarray, c: int, hidden: int):
            super().__init__()
            self.register_buffer("mask", torch.from_numpy(mask))
            # one scale per mask channel: per channel for channel masks, one for a
            # checkerboard (as tinylatent's AffineCoupling sizes it)
            self.scale = nn.Parameter(torch.ones(1, mask.shape[1], 1, 1))
            self.conv1 = nn.Conv2d(c, hidden, 3, padding=1)
            self.conv2 = nn.Conv2d(hidden, hidden, 1)
            self.conv3 = nn.Conv2d(hidden, 2 * c, 3, padding=1)

        def forward(self, x):
            h = self.conv3(F.relu(self.conv2(F.relu(self.conv1(x * self.mask)))))
            raw, t = h.chunk(2, dim=1)
            free = 1 - self.mask
            log_s = self.scale * torch.tanh(raw) * free
            return x * torch.exp(log_s) + t * free, log_s.sum(dim=(1, 2, 3))

    class TSqueeze(nn.Module):
        def forward(self, x):
            b, c, h, w = x.shape                   # each 2x2 block -> 4 channels
            y = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
            return y.reshape(b, 4 * c, h // 2, w // 2), 0.0

    class TorchImageFlow(nn.Module):
        def __init__(self, model: str, hidden: int, steps: int, levels: int = 2,
                     alpha: float = 1e-6):
            super().__init__()
            self.alpha = alpha
            self.levels = nn.ModuleList()
            c, s = 1, 28
            for lvl in range(levels):
                layers = []
                if model == "glow":
                    c, s = 4 * c, s // 2
                    layers.append(TSqueeze())
                    for i in range(steps):
                        layers += [TActNorm(c), TConv1x1LU(c),
                                   TCoupling(channels_first_half(c, i % 2), c, hidden)]
                else:
                    for i in range(steps):
                        layers += [TActNorm(c), TCoupling(checkerboard(s, i % 2), c, hidden)]
                    if lvl < levels - 1:
                        layers.append(TSqueeze())
                        c, s = 4 * c, s // 2
                        for i in range(steps):
                            layers += [TActNorm(c),
                                       TCoupling(channels_first_half(c, i % 2), c, hidden)]
                self.levels.append(nn.ModuleList(layers))
                c = c - c // 2                      # the first half is factored out

        def log_prob(self, x):
            """log p(x) of dequantised images (B, 1, 28, 28) on [0, 1]^784, (B,)."""
            p = self.alpha + (1 - 2 * self.alpha) * x
            y = torch.log(p) - torch.log1p(-p)
            total = (math.log(1 - 2 * self.alpha) - torch.log(p)
                     - torch.log1p(-p)).sum(dim=(1, 2, 3))
            z_parts = []
            for k, layers in enumerate(self.levels):
                for layer in layers:
                    y, ld = layer(y)
                    total = total + ld
                if k < len(self.levels) - 1:
                    half = y.shape[1] // 2
                    z_parts.append(y[:, :half].flatten(1))
                    y = y[:, half:]
            z = torch.cat(z_parts + [y.flatten(1)], dim=1)
            return total - 0.5 * (z * z).sum(1) - 0.5 * D * math.log(2 * math.pi)


def _tl_layers(flow) -> list:
    """tinylatent's layers in order (inside the logit transform and the multi-scale wrapper)."""
    multiscale = flow.transform.transforms[1]
    return [layer for level in multiscale.levels for layer in level.transforms]


def copy_initial_values(tl_flow, pt_flow) -> None:
    """Copy tinylatent's random initial values into the twin, layer by layer in order: conv
    weights and biases, coupling scales, the 1x1 convs' LU factors (ActNorm initialises
    itself from data on each side)."""
    pt_layers = [layer for level in pt_flow.levels for layer in level]
    tl_layers = _tl_layers(tl_flow)
    assert len(pt_layers) == len(tl_layers), (len(pt_layers), len(tl_layers))
    with torch.no_grad():
        for a, b in zip(tl_layers, pt_layers):
            if isinstance(a, AffineCoupling):
                pairs = [(a.scale, b.scale)] + [
                    (getattr(a.net, n).weight, getattr(b, n).weight) for n in
                    ("conv1", "conv2", "conv3")] + [
                    (getattr(a.net, n).bias, getattr(b, n).bias) for n in
                    ("conv1", "conv2", "conv3")]
            elif isinstance(a, InvertibleConv1x1):
                pairs = [(getattr(a, n), getattr(b, n))
                         for n in ("P", "sign_s", "lower", "upper", "log_s")]
            else:
                assert isinstance(a, (ActNorm, Squeeze)), type(a)
                pairs = []
            for src, dst in pairs:
                assert tuple(src.shape) == tuple(dst.shape), (type(a), src.shape, dst.shape)
                dst.copy_(torch.from_numpy(src.detach().numpy()))


class FlowSideBySide:
    """A tinylatent flow and its PyTorch twin on dequantised images: the shared loop of the
    flow twins (this file's RealNVP / Glow and benchmarks/maf_reference.py's MAF). A
    subclass sets tl_flow, pt_flow, train, x_test, rng and batch_size, then calls
    start_training."""

    def start_training(self, lr: float) -> None:
        """Each side's ActNorm initialisation on the same first batch of 256, then Adam."""
        init = dequantize(self.train[self.rng.permutation(len(self.train))[:256]], self.rng)
        with tl.no_grad():
            self.tl_flow.log_prob(tl.tensor(init))
        with torch.no_grad():
            self.pt_flow.log_prob(torch.from_numpy(init))
        self.tl_opt = tl.optim.Adam(self.tl_flow.parameters(), lr=lr)
        self.pt_opt = torch.optim.Adam(self.pt_flow.parameters(), lr=lr)

    def pair(self) -> tuple:
        """(tinylatent model, its optimizer, PyTorch model, its optimizer): for checkpoints."""
        return self.tl_flow, self.tl_opt, self.pt_flow, self.pt_opt

    def batch(self) -> np.ndarray:
        idx = self.rng.integers(0, len(self.train), self.batch_size)
        return dequantize(self.train[idx], self.rng)          # fresh noise each time

    def step(self, x: np.ndarray) -> tuple[float, float, float, float]:
        """One training step of each on x -> (tl loss, pt loss, tl s, pt s); nats/image."""
        t0 = time.perf_counter()
        loss, _ = self.tl_flow.loss(tl.tensor(x))
        self.tl_opt.zero_grad()
        loss.backward()
        self.tl_opt.step()
        tl_loss = float(loss.item())
        t1 = time.perf_counter()
        pt_loss = -self.pt_flow.log_prob(torch.from_numpy(x)).mean()
        self.pt_opt.zero_grad()
        pt_loss.backward()
        self.pt_opt.step()
        return tl_loss, float(pt_loss.item()), t1 - t0, time.perf_counter() - t1

    def test_bpd(self, batch: int = 250) -> tuple[float, float]:
        with tl.no_grad():
            a = np.concatenate([self.tl_flow.log_prob(tl.tensor(self.x_test[i: i + batch]))
                                .numpy() for i in range(0, len(self.x_test), batch)])
        with torch.no_grad():
            b = np.concatenate([self.pt_flow.log_prob(torch.from_numpy(
                self.x_test[i: i + batch])).numpy() for i in range(0, len(self.x_test), batch)])
        return bits_per_dim(float(a.mean()), D), bits_per_dim(float(b.mean()), D)



class SideBySide(FlowSideBySide):
    """tinylatent's realnvp_mnist / glow_mnist and the PyTorch twin: same initial values,
    same batches."""

    def __init__(self, model="realnvp", seed=0, hidden=None, steps=None, lr=1e-3,
                 batch_size=64, n_test=1000, data_dir=None, dataset="mnist"):
        tl.manual_seed(seed)
        torch.manual_seed(seed)
        self.train, _ = tl.data.load_mnist(dataset, "train", data_dir=data_dir)
        test, _ = tl.data.load_mnist(dataset, "test", data_dir=data_dir)
        self.rng, self.batch_size = np.random.default_rng(seed), batch_size
        self.x_test = dequantize(test[:n_test], np.random.default_rng(123))
        hidden = hidden or DEFAULTS[model]["hidden"]
        steps = steps or DEFAULTS[model]["steps"]
        build = realnvp_mnist if model == "realnvp" else glow_mnist
        self.tl_flow = build(ImageFlowConfig(hidden_features=hidden, steps=steps))
        self.pt_flow = TorchImageFlow(model, hidden, steps)
        copy_initial_values(self.tl_flow, self.pt_flow)
        self.start_training(lr)

def main() -> None:
    p = argparse.ArgumentParser(description="RealNVP / Glow recipe: tinylatent vs PyTorch",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=sorted(DEFAULTS), default="realnvp")
    p.add_argument("--steps", type=int, default=500, help="optimizer steps")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None, help="a directory with the IDX files")
    add_checkpoint_args(p)
    args = p.parse_args()
    torch.set_num_threads(1)
    run_table(lambda seed: SideBySide(args.model, seed, data_dir=args.data_dir,
                                      dataset=args.dataset),
              f"{args.model} on {args.dataset}", args.steps, args.eval_every, args.seeds,
              TwinCheckpoint(args.checkpoint, vars(args)), args.resume)


def run_table(make, title: str, steps: int, eval_every: int, seeds,
              checkpoint: TwinCheckpoint | None = None, resume: bool = False) -> np.ndarray:
    """Train make(seed) (a FlowSideBySide) for `steps` per seed, printing losses, test bits/dim
    and ms per step every `eval_every` (and saving `checkpoint` there); returns the final
    (tl, torch) bits/dim per seed. resume: continue the run saved in `checkpoint`."""
    checkpoint = checkpoint or TwinCheckpoint(None, {})
    saved = checkpoint.load() if resume else None
    finals = [] if saved is None else [tuple(r) for r in saved["results"]]
    log = [] if saved is None else list(saved["extra"]["log"])     # the table so far
    print("".join(log), end="")
    for k, seed in enumerate(seeds):
        if k < len(finals):
            continue                                  # finished before the interruption
        s = make(seed)
        start, times = 1, np.zeros(2)
        if saved is not None and saved["seed_index"] == k:
            load_pair_state(s, saved["pair"])
            start, times = saved["progress"] + 1, np.array(saved["extra"]["times"])
        if start == 1:
            log.append(f"{title}: {len(s.train)} train / {len(s.x_test)} test; seed {seed}\n"
                       " step   tl_loss   pt_loss  tl_bpd  pt_bpd    diff  tl_ms  pt_ms\n")
            print(log[-1], end="")
        for i in range(start, steps + 1):
            tl_loss, pt_loss, a, b = s.step(s.batch())
            times += (a, b)
            if i % eval_every == 0 or i == steps:
                tb, pb = s.test_bpd()
                log.append(f"{i:5d}  {tl_loss:8.2f}  {pt_loss:8.2f}  {tb:6.3f}  {pb:6.3f}  "
                           f"{tb - pb:+6.3f}  {1e3 * times[0] / i:5.0f}  "
                           f"{1e3 * times[1] / i:5.0f}\n")
                print(log[-1], end="", flush=True)
                if i == steps:
                    finals.append((tb, pb))
                checkpoint.save(k, i, finals, s, {"times": times.tolist(), "log": log})
    a, b = np.mean(finals, axis=0)
    print(f"mean test bits/dim after {steps} steps over seeds {list(seeds)}: "
          f"tinylatent {a:.4f}  PyTorch {b:.4f}  diff {a - b:+.4f}")
    return np.array(finals)

if __name__ == "__main__":
    main()
