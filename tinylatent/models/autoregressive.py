"""Autoregressive density models of binary vectors: MADE and NADE (seeds 000, 001, 003).

Both factorise p(x) = prod_d p(x_d | x_<d) and so are normalised by construction; both
compute all D conditionals in one pass.

MADE (Germain et al. 2015): an autoencoder whose weights are masked so that output d
depends only on inputs that come before d in an ordering. Order- and connectivity-agnostic
training samples a new (ordering, connectivity) from a fixed set at each step; at test time
the probabilities of several masks are averaged.

NADE (Larochelle & Murray 2011): h_d = sigmoid(c + W[:, <d] x_<d),
p(x_d = 1 | x_<d) = sigmoid(b_d + V_d . h_d). The pre-activations share weights:
a_{d+1} = a_d + W[:, d] x_d, so all D hidden vectors cost O(DH), not O(D^2 H).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Bernoulli
from tinylatent.tensor import Tensor

from .config import resolve_config

__all__ = ["MaskedLinear", "made_masks", "MADE", "MADEConfig", "NADE", "NADEConfig"]


def _bernoulli_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    """log prod_d Bern(x_d; sigmoid(l_d)) per example: (B, D) -> (B,)."""
    return Bernoulli(logits=logits).log_prob(x).sum(axis=1)


def _nll_metrics(nll: Tensor) -> dict:
    return {"loss": nll.detach(), "nll": nll.detach()}


class MaskedLinear(nn.Module):
    """y = x (W * M)^T + b with a fixed binary connectivity mask M (out, in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        k = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(tl.uniform(-k, k, (out_features, in_features)))
        self.bias = nn.Parameter(tl.zeros(out_features)) if bias else None
        self.register_buffer("mask", tl.ones(out_features, in_features), persistent=False)

    def set_mask(self, mask: np.ndarray) -> None:
        if mask.shape != self.mask.shape:
            raise ValueError(f"MaskedLinear.set_mask: mask shape {mask.shape} != weight shape "
                             f"{self.mask.shape}")
        self.mask = tl.tensor(mask, dtype=self.weight.dtype, device=self.weight.device)

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight * self.mask.to(self.weight.dtype)
        return tl.linear(x, w, self.bias)


def made_masks(ordering: np.ndarray, hidden_sizes: list[int], rng: np.random.Generator):
    """Germain et al. 2015, Sec. 4: degrees m^0 = ordering (1..D); hidden degrees
    m^l_k ~ U{min m^{l-1}, ..., D-1}; hidden masks [m^l_k >= m^{l-1}_j]; output mask
    [m^0_d > m^L_k]; direct input-output mask [m^0_d > m^0_j]. Returns (hidden masks,
    output mask, direct mask), each (out, in)."""
    d = len(ordering)
    degrees = [np.asarray(ordering)]
    for h in hidden_sizes:
        low = min(int(degrees[-1].min()), d - 1)
        degrees.append(rng.integers(low, d, size=h) if d > 1 else np.ones(h, dtype=int))
    hidden = [(degrees[i + 1][:, None] >= degrees[i][None, :]).astype(np.float32)
              for i in range(len(hidden_sizes))]
    output = (degrees[0][:, None] > degrees[-1][None, :]).astype(np.float32)
    direct = (degrees[0][:, None] > degrees[0][None, :]).astype(np.float32)
    return hidden, output, direct


@dataclass(frozen=True)
class MADEConfig:
    in_features: int = 784
    hidden_features: tuple = (500,)
    out_multiplier: int = 1     # blocks of D outputs (1: Bernoulli logits; 2: MAF's mu, alpha)
    num_masks: int = 1          # > 1: order- and connectivity-agnostic training
    ordering: object = "random"  # "natural", "reverse", "random" or a permutation of 0..D-1
    seed: int = 0
    zero_init_output: bool = False  # flows start at the identity


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation (Germain et al. 2015).

    Outputs out_multiplier * D values (blocks of D: e.g. Bernoulli logits, or MAF's
    (mu, alpha)); output d of every block depends only on inputs of smaller degree.
    """

    def __init__(self, config: MADEConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, MADEConfig, config, overrides)
        self.features, self.hidden_sizes = cfg.in_features, list(cfg.hidden_features)
        self.out_multiplier, self.num_masks = cfg.out_multiplier, cfg.num_masks
        self.ordering_kind, self.seed = cfg.ordering, cfg.seed
        sizes = [self.features] + self.hidden_sizes
        self.hidden = nn.ModuleList([MaskedLinear(a, b) for a, b in zip(sizes, sizes[1:])])
        self.output = MaskedLinear(sizes[-1], self.out_multiplier * self.features)
        self.direct = MaskedLinear(self.features, self.out_multiplier * self.features,
                                   bias=False)
        if cfg.zero_init_output:
            with tl.no_grad():
                self.output.weight.zero_()
                self.direct.weight.zero_()
        self.mask_index = -1
        self.set_mask(0)

    def ordering(self, index: int) -> np.ndarray:
        """Degrees 1..D of the inputs for mask `index` (deterministic from the seed)."""
        d = self.features
        kind = self.ordering_kind
        if isinstance(kind, str) and kind == "natural":
            order = np.arange(d)
        elif isinstance(kind, str) and kind == "reverse":
            order = np.arange(d)[::-1]
        elif isinstance(kind, str) and kind == "random":
            order = np.random.default_rng((self.seed, index, 1)).permutation(d)
        else:
            order = np.asarray(kind)
        degrees = np.empty(d, dtype=np.int64)
        degrees[order] = np.arange(1, d + 1)   # order[k] is the k-th variable generated
        return degrees

    def set_mask(self, index: int) -> None:
        """Switch to mask `index` mod num_masks (ordering and connectivity from the seed)."""
        index %= self.num_masks
        if index == self.mask_index:
            return
        rng = np.random.default_rng((self.seed, index, 2))
        hidden, output, direct = made_masks(self.ordering(index), self.hidden_sizes, rng)
        for layer, m in zip(self.hidden, hidden):
            layer.set_mask(m)
        self.output.set_mask(np.tile(output, (self.out_multiplier, 1)))
        self.direct.set_mask(np.tile(direct, (self.out_multiplier, 1)))
        self.mask_index = index

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for layer in self.hidden:
            h = tl.relu(layer(h))
        return self.output(h) + self.direct(x)                  # (B, k D)

    def log_prob(self, x: Tensor, num_masks: int = 1) -> Tensor:
        """log p(x) of binary x (B, D); with num_masks > 1 the ensemble
        p(x) = (1/K) sum_k p_k(x) over masks 0..K-1 (Germain et al. 2015, Sec. 4.3)."""
        if num_masks == 1:
            return _bernoulli_log_prob(x, self(x))
        current = self.mask_index
        lps = []
        for k in range(num_masks):
            self.set_mask(k)
            lps.append(_bernoulli_log_prob(x, self(x)))
        self.set_mask(current)
        return tl.logsumexp(tl.stack(lps, axis=0), axis=0) - math.log(num_masks)

    def loss(self, x: Tensor) -> tuple[Tensor, dict]:
        """Mean NLL in nats; in training mode the next mask is used each call."""
        if self.training and self.num_masks > 1:
            self.set_mask(self.mask_index + 1)
        nll = -_bernoulli_log_prob(x, self(x)).mean()
        return nll, _nll_metrics(nll)

    @tl.no_grad()
    def sample(self, n: int, generator=None) -> Tensor:
        """Ancestral sampling: D passes, variable of degree k drawn at pass k."""
        degrees = self.ordering(self.mask_index)
        x = tl.zeros(n, self.features, dtype=self.output.weight.dtype,
                     device=self.output.weight.device)
        for d in np.argsort(degrees):
            p = tl.sigmoid(self(x)[:, d: d + 1])
            x[:, d: d + 1] = tl.bernoulli(p, generator=generator)
        return x


@dataclass(frozen=True)
class NADEConfig:
    in_features: int = 784
    hidden_features: int = 500


class NADE(nn.Module):
    """Neural autoregressive distribution estimator (Larochelle & Murray 2011), natural
    ordering. W (H, D), c (H,), V (D, H), b (D,). `generator` draws the initial weights."""

    def __init__(self, config: NADEConfig | None = None, *, generator=None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, NADEConfig, config, overrides)
        features, hidden = cfg.in_features, cfg.hidden_features
        self.features, self.hidden = features, hidden
        # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as for a Linear layer of the same shape
        self.W = nn.Parameter(tl.uniform(-1, 1, (hidden, features), generator=generator)
                              / math.sqrt(features))
        self.c = nn.Parameter(tl.zeros(hidden))
        self.V = nn.Parameter(tl.uniform(-1, 1, (features, hidden), generator=generator)
                              / math.sqrt(hidden))
        self.b = nn.Parameter(tl.zeros(features))

    def forward(self, x: Tensor) -> Tensor:
        """Logits of p(x_d = 1 | x_<d) for all d: (B, D) -> (B, D)."""
        xw = x.unsqueeze(-1) * self.W.transpose(0, 1)           # (B, D, H): x_j W[:, j]
        a = tl.cumsum(xw, axis=1) - xw + self.c                 # (B, D, H): sum_{j<d}, O(DH)
        h = tl.sigmoid(a)
        return (h * self.V).sum(axis=-1) + self.b               # (B, D)

    def log_prob(self, x: Tensor) -> Tensor:
        return _bernoulli_log_prob(x, self(x))

    def loss(self, x: Tensor) -> tuple[Tensor, dict]:
        nll = -self.log_prob(x).mean()
        return nll, _nll_metrics(nll)

    @tl.no_grad()
    def sample(self, n: int, generator=None) -> Tensor:
        """Ancestral sampling, carrying a_d forward: O(DH) per sample."""
        a = self.c.reshape(1, -1) + tl.zeros(n, self.hidden, dtype=self.W.dtype,
                                             device=self.W.device)
        cols = []
        for d in range(self.features):
            logit = (tl.sigmoid(a) * self.V[d]).sum(axis=1, keepdims=True) + self.b[d]
            xd = tl.bernoulli(tl.sigmoid(logit), generator=generator)   # (n, 1)
            cols.append(xd)
            a = a + xd * self.W[:, d]
        return tl.cat(cols, axis=1)
