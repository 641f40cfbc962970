"""Distribution augmentation (seed 001; Jun, Child, Chen, Schulman, Ramesh, Radford &
Sutskever 2020, "Distribution Augmentation for Generative Modeling", ICML, sec. 3).

A density model fitted to data under transformations t (here the 8 symmetries of the square,
D4: rotations by 0/90/180/270 degrees, each with or without a transpose) learns
    p(T_t x | t),  t ~ U{0..7},  maximising E_t E_x log p(T_t x | t)          (their eq. 1)
and is evaluated at t = identity on untransformed data. Conditioning on t keeps the
identity-conditional a proper model of clean data while the shared weights see 8x as
many images (a data-dependent regulariser); without the conditioning ("unconditioned
augmentation") the model must spread its mass over all 8 views.

The density model is MADE (Germain et al. 2015, models/autoregressive.py) with the
transformation as context: an embedding of t added to the first hidden pre-activation,
connected to every hidden unit, and a per-t output bias (each view has its own pixel
marginals: a rotated "1" lies across), neither of which sees x, so the autoregressive
property holds (Germain et al. sec. 4.2, conditional MADE). Jun et al. condition their
transformer on t through a learned embedding of t; here:
    h_1 = relu(M_1 W_1 x + b_1 + E[t]),  logits = M_out W_out h_L + M_d V x + c[t].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.tensor import Tensor

from .autoregressive import MADE, _bernoulli_log_prob
from .config import resolve_config

__all__ = ["DistAug", "DistAugConfig", "d4_transform"]


@dataclass(frozen=True)
class DistAugConfig:
    in_features: int = 784
    image_size: int = 28             # x is a flattened image_size x image_size binary image
    hidden_features: tuple = (500,)
    num_transforms: int = 8          # the first n of D4: 1 = no augmentation, 4 = rotations
    conditional: bool = True         # False: unconditioned augmentation (the baseline)
    seed: int = 0                    # MADE's ordering and masks


def d4_transform(x, t, image_size: int):
    """T_t x for flattened square images x (B, S*S) and t (B,) in 0..7: rotate by
    90 (t mod 4) degrees counter-clockwise, then transpose if t >= 4. NumPy in, NumPy out."""
    B = len(x)
    img = np.asarray(x).reshape(B, image_size, image_size)  # (B, S*S) -> (B, S, S)
    out = np.empty_like(img)
    t = np.asarray(t)
    for k in range(8):
        sel = t == k
        if sel.any():
            r = np.rot90(img[sel], k % 4, axes=(1, 2))
            out[sel] = r.transpose(0, 2, 1) if k >= 4 else r
    return out.reshape(B, -1)


class DistAug(nn.Module):
    """MADE conditioned on a D4 transformation; loss(x) draws t per example in training."""

    def __init__(self, config: DistAugConfig | None = None, *, generator=None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, DistAugConfig, config, overrides)
        if cfg.in_features != cfg.image_size ** 2 or not 1 <= cfg.num_transforms <= 8:
            raise ValueError(f"DistAug: in_features ({cfg.in_features}) must be image_size^2 "
                             f"({cfg.image_size}^2) and num_transforms in 1..8, got "
                             f"{cfg.num_transforms}")
        self.made = MADE(in_features=cfg.in_features, hidden_features=cfg.hidden_features,
                         seed=cfg.seed)
        self.context = nn.Embedding(cfg.num_transforms, cfg.hidden_features[0])
        self.context_output = nn.Embedding(cfg.num_transforms, cfg.in_features)
        with tl.no_grad():  # starts as the plain MADE
            self.context.weight.zero_()
            self.context_output.weight.zero_()
        self._rng = np.random.default_rng(cfg.seed if generator is None else None)
        self._generator = generator

    def forward(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        """Bernoulli logits of p(x | t), (B, D); t None = identity."""
        made = self.made
        h = made.hidden[0](x)
        conditional = self.config.conditional
        if conditional:
            t = tl.zeros(x.shape[0], dtype=tl.int64) if t is None else t
            h = h + self.context(t)  # (B, H): t reaches every hidden unit, no x leaks
        h = h.relu()
        for layer in made.hidden[1:]:
            h = layer(h).relu()
        logits = made.output(h) + made.direct(x)
        return logits + self.context_output(t) if conditional else logits  # (B, D)

    def log_prob(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        """log p(x | t), (B,): t None scores clean data (the identity view)."""
        return _bernoulli_log_prob(x, self(x, t))

    def loss(self, x: Tensor):
        """Training: -mean log p(T_t x | t), t ~ U{0..n-1} per example; eval: clean NLL."""
        if not self.training or self.config.num_transforms == 1:
            nll = -self.log_prob(x).mean()
            return nll, {"loss": nll.detach(), "nll": nll.detach()}
        t = self._draw(len(x))
        xt = tl.tensor(d4_transform(x.detach().numpy(), t, self.config.image_size),
                       dtype=x.dtype)
        nll = -self.log_prob(xt, tl.tensor(t)).mean()
        return nll, {"loss": nll.detach(), "nll_augmented": nll.detach()}

    def _draw(self, n):
        n_t = self.config.num_transforms
        if self._generator is not None:
            return tl.randint(0, n_t, (n,), generator=self._generator).numpy()
        return self._rng.integers(0, n_t, n)

    @tl.no_grad()
    def sample(self, n: int, generator=None, t: int = 0) -> Tensor:
        """Ancestral sampling from p(x | t), (n, D)."""
        degrees = self.made.ordering(self.made.mask_index)
        x = tl.zeros(n, self.config.in_features)
        tt = tl.full((n,), t, dtype=tl.int64)
        for d in np.argsort(degrees):
            p = tl.sigmoid(self(x, tt)[:, d:d + 1])
            x[:, d:d + 1] = tl.bernoulli(p, generator=generator)
        return x
