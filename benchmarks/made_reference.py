"""The MADE recipe of examples/autoregressive_mnist.py written again in PyTorch, next to
tinylatent's MADE, side by side (as benchmarks/vae_reference.py does for the VAE).

Recipe (Germain et al. 2015): one hidden layer of 500 ReLU units, direct input-output
connections, 8 (ordering, connectivity) masks cycled during training and averaged at test
time (order- and connectivity-agnostic training, Sec. 4.3), Adam lr 3e-3, batches of 100,
dynamic binarisation x ~ Bernoulli(pixel / 255) (fresh each epoch), test set binarised once
with a fixed seed. The PyTorch twin computes its masks with its own code from the same seeds
(a check that the mask recipe is the same, not a copy of tinylatent's masks), starts from
tinylatent's initial weights and sees the same binarised minibatches in the same order.

    python -m benchmarks.made_reference --epochs 10 --seeds 0 1 2      # embedded MNIST
    python -m benchmarks.made_reference --dataset fashion-mnist --epochs 10 --seeds 0 1 2

MNIST is the embedded subset (4,000 train / 1,000 test images) unless the cache or --data-dir
holds the IDX files of full MNIST; Fashion-MNIST is the full 60k/10k set (the cache, Debian's
dataset-fashion-mnist, or --data-dir). `BinarySideBySide` and `run_table` serve NADE's twin
(benchmarks/nade_reference.py) too.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

import tinylatent as tl
from benchmarks.twin_checkpoint import TwinCheckpoint, add_checkpoint_args, load_pair_state
from tinylatent.data import binarize
from tinylatent.models.autoregressive import MADE

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the benchmark skips without PyTorch
    torch = None


def twin_masks(d: int, hidden: int, seed: int, index: int):
    """Germain et al. 2015, Sec. 4, written independently of tinylatent's made_masks: input
    degrees a random ordering from default_rng((seed, index, 1)); hidden degrees uniform on
    {1..D-1} from default_rng((seed, index, 2)); masks [m_hid >= m_in], [m_out > m_hid],
    direct [m_out > m_in]. Returns (hidden (H, D), output (D, H), direct (D, D))."""
    order = np.random.default_rng((seed, index, 1)).permutation(d)
    m_in = np.empty(d, dtype=np.int64)
    m_in[order] = np.arange(1, d + 1)
    m_hid = np.random.default_rng((seed, index, 2)).integers(1, d, size=hidden)
    return ((m_hid[:, None] >= m_in[None, :]).astype(np.float32),
            (m_in[:, None] > m_hid[None, :]).astype(np.float32),
            (m_in[:, None] > m_in[None, :]).astype(np.float32))


if torch is not None:
    class TorchMADE(nn.Module):
        """One-hidden-layer MADE with direct connections and K cycled masks, in PyTorch."""

        def __init__(self, d=784, hidden=500, num_masks=8, seed=0):
            super().__init__()
            self.hidden = nn.ModuleList([nn.Linear(d, hidden)])
            self.output = nn.Linear(hidden, d)
            self.direct = nn.Linear(d, d, bias=False)
            self.masks = [[torch.from_numpy(m) for m in twin_masks(d, hidden, seed, k)]
                          for k in range(num_masks)]
            self.index = 0

        def logits(self, x, index=None):
            mh, mo, md = self.masks[self.index if index is None else index]
            h = F.relu(F.linear(x, self.hidden[0].weight * mh, self.hidden[0].bias))
            return F.linear(h, self.output.weight * mo, self.output.bias) \
                + F.linear(x, self.direct.weight * md)

        def nll(self, x, index=None):
            """-log p(x) per image: sum of Bernoulli cross-entropies from logits, (B,)."""
            return F.binary_cross_entropy_with_logits(
                self.logits(x, index), x, reduction="none").sum(1)

        def train_loss(self, x):
            """tinylatent's MADE.loss: the next mask each step, then the mean NLL."""
            self.index = (self.index + 1) % len(self.masks)
            return self.nll(x).mean()

        def ensemble_nll(self, x):
            """-log (1/K) sum_k p_k(x) (Germain et al. 2015, Sec. 4.3), (B,)."""
            lps = torch.stack([-self.nll(x, k) for k in range(len(self.masks))])
            return -(torch.logsumexp(lps, 0) - math.log(len(self.masks)))


class BinarySideBySide:
    """A tinylatent model and its PyTorch twin on dynamically binarised MNIST-family images:
    same initial weights, same minibatches in the same order, the same fixed binarised test
    set. A subclass builds the pair (`build`) and says how each side computes its training
    loss and its test NLL per image."""

    def __init__(self, seed=0, lr=3e-3, batch_size=100, data_dir=None, n_test=None,
                 dataset="mnist", **model_kwargs):
        tl.manual_seed(seed)
        torch.manual_seed(seed)
        train, _ = tl.data.load_mnist(dataset, "train", data_dir=data_dir)
        test, _ = tl.data.load_mnist(dataset, "test", data_dir=data_dir)
        self.train, self.rng = train, np.random.default_rng(seed)
        self.x_test = binarize(test[:n_test], np.random.default_rng(123))   # fixed
        self.batch_size = batch_size
        self.tl_model, self.pt_model = self.build(seed, **model_kwargs)
        with torch.no_grad():
            state = self.tl_model.state_dict()
            for name, p in self.pt_model.named_parameters():
                p.copy_(torch.from_numpy(state[name].numpy()))
        self.tl_opt = tl.optim.Adam(self.tl_model.parameters(), lr=lr)
        self.pt_opt = torch.optim.Adam(self.pt_model.parameters(), lr=lr)

    def build(self, seed, **model_kwargs):
        raise NotImplementedError

    def pt_train_loss(self, x):
        raise NotImplementedError

    def tl_test_nll(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def pt_test_nll(self, x):
        raise NotImplementedError

    def pair(self) -> tuple:
        """(tinylatent model, its optimizer, PyTorch model, its optimizer): for checkpoints."""
        return self.tl_model, self.tl_opt, self.pt_model, self.pt_opt

    def batches(self):
        """One epoch of dynamically binarised minibatches (the example's order)."""
        perm = self.rng.permutation(len(self.train))
        for i in range(0, len(perm), self.batch_size):
            yield binarize(self.train[perm[i: i + self.batch_size]], self.rng)

    def step(self, x: np.ndarray) -> tuple[float, float, float, float]:
        """One training step of each on batch x -> (tl loss, pt loss, tl s, pt s)."""
        t0 = time.perf_counter()
        loss, _ = self.tl_model.loss(tl.tensor(x))
        self.tl_opt.zero_grad()
        loss.backward()
        self.tl_opt.step()
        tl_loss = float(loss.item())
        t1 = time.perf_counter()
        pt_loss = self.pt_train_loss(torch.from_numpy(x))
        self.pt_opt.zero_grad()
        pt_loss.backward()
        self.pt_opt.step()
        return tl_loss, float(pt_loss.item()), t1 - t0, time.perf_counter() - t1

    def test_nll(self, batch: int = 500) -> tuple[float, float]:
        """Test NLL (nats per image), both sides."""
        self.tl_model.eval()
        with tl.no_grad():
            a = np.concatenate([self.tl_test_nll(self.x_test[i: i + batch])
                                for i in range(0, len(self.x_test), batch)])
        self.tl_model.train()
        with torch.no_grad():
            b = torch.cat([self.pt_test_nll(torch.from_numpy(x))
                           for x in np.array_split(self.x_test, max(1, len(self.x_test)
                                                                    // batch))])
        return float(a.mean()), float(b.mean())


class SideBySide(BinarySideBySide):
    """tinylatent's MADE and the PyTorch twin."""

    def __init__(self, seed=0, hidden=500, num_masks=8, lr=3e-3, batch_size=100,
                 data_dir=None, n_test=None, dataset="mnist"):
        self.num_masks = num_masks
        super().__init__(seed, lr, batch_size, data_dir, n_test, dataset, hidden=hidden)

    def build(self, seed, hidden):
        return (MADE(in_features=784, hidden_features=(hidden,), num_masks=self.num_masks,
                     seed=seed),
                TorchMADE(784, hidden, self.num_masks, seed))

    def pt_train_loss(self, x):
        return self.pt_model.train_loss(x)

    def tl_test_nll(self, x):
        """The K-mask ensemble's -log p(x) (Germain et al. 2015, Sec. 4.3)."""
        return -self.tl_model.log_prob(tl.tensor(x), num_masks=self.num_masks).numpy()

    def pt_test_nll(self, x):
        return self.pt_model.ensemble_nll(x)

    def masks_equal(self) -> bool:
        ok = True
        for k in range(self.num_masks):
            self.tl_model.set_mask(k)
            tl_masks = [self.tl_model.hidden[0].mask, self.tl_model.output.mask,
                        self.tl_model.direct.mask]
            ok &= all(np.array_equal(a.numpy(), b.numpy())
                      for a, b in zip(tl_masks, self.pt_model.masks[k]))
        self.tl_model.set_mask(0)
        return ok


def run_table(side_by_side, title: str, epochs: int, seeds, checkpoint=None, resume=False,
              **kwargs) -> np.ndarray:
    """Train each seed's pair for `epochs`, printing a per-epoch line (and saving `checkpoint`
    after each); returns the test NLLs (seed, epoch, [tl, torch]) and prints their mean over
    the seeds. resume: continue the run saved in `checkpoint` (a TwinCheckpoint)."""
    checkpoint = checkpoint or TwinCheckpoint(None, {})
    saved = checkpoint.load() if resume else None
    tests = np.zeros((len(seeds), epochs, 2)) if saved is None else np.array(saved["results"])
    done = (0, 0) if saved is None else (saved["seed_index"], saved["progress"])
    log = [] if saved is None else list(saved["extra"]["log"])     # the table so far
    print("".join(log), end="")
    for k, seed in enumerate(seeds):
        if (k, epochs) <= done:
            continue                                  # finished before the interruption
        s = side_by_side(seed, **kwargs)
        start = 0
        if k == done[0] and saved is not None:
            load_pair_state(s, saved["pair"])
            start = done[1]
        if start == 0:
            log.append(f"{title}: {len(s.train)} train / {len(s.x_test)} test images; seed "
                       f"{seed}\nepoch  tl_train  pt_train   tl_test   pt_test   diff   "
                       "tl_s/ep  pt_s/ep\n")
            print(log[-1], end="")
        for epoch in range(start, epochs):
            sums = np.zeros(4)
            n = 0
            for x in s.batches():
                sums += np.array(s.step(x)) * np.array([len(x), len(x), 1, 1])
                n += len(x)
            tests[k, epoch] = s.test_nll()
            log.append(f"{epoch + 1:5d}  {sums[0] / n:8.2f}  {sums[1] / n:8.2f}  "
                       f"{tests[k, epoch, 0]:8.2f}  {tests[k, epoch, 1]:8.2f}  "
                       f"{tests[k, epoch, 0] - tests[k, epoch, 1]:+5.2f}  {sums[2]:7.2f}  "
                       f"{sums[3]:7.2f}\n")
            print(log[-1], end="", flush=True)
            checkpoint.save(k, epoch + 1, tests, s, {"log": log})
    mean = tests.mean(axis=0)
    print(f"mean test NLL over seeds {list(seeds)} (nats per image):")
    for epoch, (a, b) in enumerate(mean, 1):
        print(f"{epoch:5d}  tinylatent {a:8.2f}  PyTorch {b:8.2f}  diff {a - b:+5.2f}")
    return tests


def reference_args(description: str, epochs: int) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist",
                   help="mnist: the cache or the embedded 4k/1k subset; fashion-mnist: the "
                        "cache or Debian's dataset-fashion-mnist files")
    p.add_argument("--data-dir", default=None, help="a directory with the IDX files")
    add_checkpoint_args(p)
    return p.parse_args()


def main() -> None:
    args = reference_args("MADE recipe: tinylatent vs PyTorch, per epoch", epochs=10)
    torch.set_num_threads(1)
    s = SideBySide(0, data_dir=args.data_dir, n_test=10, dataset=args.dataset)
    print(f"masks identical: {s.masks_equal()}")
    run_table(SideBySide, f"MADE on {args.dataset}", args.epochs, args.seeds,
              TwinCheckpoint(args.checkpoint, vars(args)), args.resume,
              data_dir=args.data_dir, dataset=args.dataset)


if __name__ == "__main__":
    main()
