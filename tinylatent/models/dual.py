"""Dual supervised learning (seed 000; Xia, Qin, Chen, Bian, Yu & Liu 2017, "Dual Supervised
Learning", ICML, sec. 2).

Two tasks in dual form, here image classification and class-conditional image generation,
are trained together. The primal model P(y|x; theta_xy) is a classifier; the dual model
P(x|y; theta_yx) a class-conditional density over binary pixels. Both factorise the same
joint, so for perfect models (their eq. 1)
    P(x) P(y|x; theta_xy) = P(x, y) = P(y) P(x|y; theta_yx).
DSL turns this probabilistic duality into a constraint on the two supervised objectives
(eq. 2), relaxed by Lagrange multipliers into the squared log-gap (eq. 3)
    l_duality(x, y) = (log P^(x) + log P(y|x; theta_xy) - log P^(y) - log P(x|y; theta_yx))^2
with P^(x) an unconditional density model trained beforehand and frozen, and P^(y) the
empirical label marginal. Each model minimises its own loss plus lambda times the term
(eq. 4, Algorithm 1):
    theta_xy:  (1/n) sum_i [ -log P(y_i|x_i; theta_xy) + lambda_xy l_duality(x_i, y_i) ]
    theta_yx:  (1/n) sum_i [ -log P(x_i|y_i; theta_yx) + lambda_yx l_duality(x_i, y_i) ]
One `loss` sums both objectives; in the lambda_xy term the dual model's log P(x|y) is held
constant (detached) and in the lambda_yx term the classifier's log P(y|x) is, so each model
gets the gradient of its own objective, as in Algorithm 1's two updates. P^(x) is never
trained by the regulariser: its parameters have requires_grad False.

The dual model is a conditional MADE (Germain et al. 2015, sec. 4.2: context may reach every
hidden unit without breaking the autoregressive property): a label embedding added to every
hidden layer's pre-activation and to the output logits,
    h_l = relu(M_l W_l h_{l-1} + b_l + E_l[y]),  logits = M_o W_o h_L + M_d V x + E_o[y].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.data import binarize
from tinylatent.distributions import Categorical
from tinylatent.tensor import Tensor

from .autoregressive import MADE, _bernoulli_log_prob
from .config import resolve_config

__all__ = ["DualSupervised", "DualSupervisedConfig", "ConditionalMADE", "train_epoch",
           "evaluate_dual"]


@dataclass(frozen=True)
class DualSupervisedConfig:
    in_features: int = 784               # binary pixels D
    out_features: int = 10               # classes K
    hidden_features: tuple = (500,)      # the classifier's hidden widths (primal model)
    density_hidden_features: tuple = (500,)  # the (conditional) MADEs' hidden widths
    lambda_xy: float = 0.01              # weight of l_duality in the classifier's objective
    lambda_yx: float = 0.01              # ... and in the conditional density's (eq. 4)
    seed: int = 0                        # MADE ordering and connectivity


class ConditionalMADE(nn.Module):
    """MADE over D binary variables with a class label as context: p(x|y) (B,) from
    log_prob(x, y); an embedding of y reaches every hidden unit and every output logit."""

    def __init__(self, in_features: int, num_classes: int, hidden_features: tuple,
                 seed: int = 0):
        super().__init__()
        self.made = MADE(in_features=in_features, hidden_features=tuple(hidden_features),
                         seed=seed)
        self.num_classes = num_classes
        self.context = nn.ModuleList([nn.Embedding(num_classes, h)
                                      for h in list(hidden_features) + [in_features]])
        with tl.no_grad():
            for emb in self.context:
                emb.weight.zero_()    # starts as the unconditional MADE with the same masks

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Bernoulli logits of p(x_d = 1 | x_<d, y) for all d: (B, D), (B,) -> (B, D)."""
        made, h = self.made, x
        for layer, emb in zip(made.hidden, self.context):
            h = tl.relu(layer(h) + emb(y))   # (B, H_l): y reaches every unit, no x leaks
        return made.output(h) + made.direct(x) + self.context[-1](y)

    def log_prob(self, x: Tensor, y: Tensor) -> Tensor:
        """log p(x|y) per example, (B,)."""
        return _bernoulli_log_prob(x, self(x, y))

    @tl.no_grad()
    def sample(self, y: Tensor, generator=None) -> Tensor:
        """Ancestral sampling of one image per label y (n,): D passes, (n, D)."""
        w = self.made.output.weight
        x = tl.zeros(len(y), self.made.features, dtype=w.dtype, device=w.device)
        for d in np.argsort(self.made.ordering(self.made.mask_index)):
            p = tl.sigmoid(self(x, y)[:, d: d + 1])
            x[:, d: d + 1] = tl.bernoulli(p, generator=generator)
        return x


class DualSupervised(nn.Module):
    """Primal classifier P(y|x), dual conditional MADE P(x|y), frozen marginal P^(x), and the
    empirical label marginal P^(y), trained with the duality regulariser (Xia et al. 2017).

    `marginal`: a trained density model with log_prob(x) -> (B,) (e.g. a MADE); it is frozen
    (requires_grad False). Without one an untrained MADE of the same widths is built, to be
    replaced by trained weights (load_state_dict) before the regulariser means anything.
    Call `set_label_marginal(train_labels)` once: P^(y) is their frequencies.
    """

    def __init__(self, config: DualSupervisedConfig | None = None, *, marginal=None,
                 **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, DualSupervisedConfig, config, overrides)
        D, K = cfg.in_features, cfg.out_features
        widths = [D] + list(cfg.hidden_features)
        layers = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.classifier = nn.Sequential(*layers, nn.Linear(widths[-1], K))
        self.conditional = ConditionalMADE(D, K, cfg.density_hidden_features, seed=cfg.seed)
        if marginal is None:
            marginal = MADE(in_features=D, hidden_features=tuple(cfg.density_hidden_features),
                            seed=cfg.seed)
        elif getattr(getattr(marginal, "config", None), "in_features", D) != D:
            raise ValueError(f"DualSupervised: the marginal model's in_features must be "
                             f"{D}, got {marginal.config.in_features}")
        self.marginal = marginal.requires_grad_(False)
        self.register_buffer("log_label_prior", tl.full((K,), -float(np.log(K))))

    def set_label_marginal(self, labels) -> None:
        """log P^(y) = log (count of y / N) over `labels` (N,) ints in 0..K-1."""
        y = np.asarray(labels.numpy() if isinstance(labels, Tensor) else labels).ravel()
        K = self.config.out_features
        counts = np.bincount(y.astype(np.int64), minlength=K)
        if len(counts) != K or (counts == 0).any():
            raise ValueError(f"DualSupervised.set_label_marginal: labels must cover every "
                             f"class 0..{K - 1} (counts {counts.tolist()})")
        self.log_label_prior = tl.tensor(np.log(counts / counts.sum()),
                                         dtype=self.log_label_prior.dtype)

    def forward(self, x: Tensor) -> Tensor:
        """Classifier logits, (B, D) -> (B, K)."""
        return self.classifier(x)

    def classify(self, x: Tensor) -> Tensor:
        """argmax_y P(y|x), (B,) int64."""
        with tl.no_grad():
            return self(x).argmax(axis=1)

    def log_prob_y(self, x: Tensor, y: Tensor) -> Tensor:
        """log P(y|x; theta_xy), (B,) (the primal model)."""
        return Categorical(logits=self(x)).log_prob(y)

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log P(x|y; theta_yx) (B,) (the dual model); without y the dual model's marginal
        log sum_y P^(y) P(x|y), (B,) (K passes)."""
        if y is not None:
            return self.conditional.log_prob(x, y)
        B, K = x.shape[0], self.config.out_features
        lps = [self.conditional.log_prob(x, tl.full((B,), k, dtype=tl.int64)) for k in range(K)]
        return tl.logsumexp(tl.stack(lps, axis=1) + self.log_label_prior, axis=1)

    def duality_gap(self, x: Tensor, y: Tensor) -> Tensor:
        """log P^(x) + log P(y|x) - log P^(y) - log P(x|y), (B,): zero when the two models
        and the marginals satisfy eq. 1 (its square is eq. 3)."""
        return (self.marginal.log_prob(x) + self.log_prob_y(x, y)
                - self.log_label_prior[y] - self.log_prob(x, y))

    def loss(self, batch) -> tuple[Tensor, dict]:
        """Both objectives of eq. 4 on a labelled batch (x (B, D), y (B,))."""
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError("DualSupervised.loss: batch must be (x, y), images (B, D) and "
                            "labels (B,)")
        x, y = batch
        cfg = self.config
        log_py = self.log_prob_y(x, y)                             # primal, (B,)
        log_px = self.log_prob(x, y)                               # dual, (B,)
        with tl.no_grad():
            const = self.marginal.log_prob(x) - self.log_label_prior[y]
        # each model's term sees the other model's log-probability as a constant (Alg. 1)
        gap_xy = const + log_py - log_px.detach()
        gap_yx = const + log_py.detach() - log_px
        ce, nll = -log_py.mean(), -log_px.mean()
        duality = (gap_xy.detach() ** 2).mean()                    # l_duality, eq. 3
        loss = (ce + nll + cfg.lambda_xy * (gap_xy ** 2).mean()
                + cfg.lambda_yx * (gap_yx ** 2).mean())
        gap = gap_xy.detach()
        return loss, {"loss": loss.detach(), "cross_entropy": ce.detach(), "nll": nll.detach(),
                      "duality": duality, "duality_gap": gap.mean(),
                      "duality_gap_abs": gap.abs().mean()}

    @tl.no_grad()
    def sample(self, n: int, y=None, generator=None) -> Tensor:
        """n images from P(x|y) (n, D); y an int, labels (n,), or None: y ~ P^(y)."""
        if y is None:
            y = Categorical(logits=self.log_label_prior).sample((n,), generator=generator)
        elif isinstance(y, (int, np.integer)):
            y = tl.full((n,), int(y), dtype=tl.int64)
        elif not isinstance(y, Tensor):
            y = tl.tensor(np.asarray(y, dtype=np.int64))
        if y.shape != (n,):
            raise ValueError(f"DualSupervised.sample: y must have shape ({n},), got {y.shape}")
        return self.conditional.sample(y, generator=generator)


def train_epoch(model, optimizer, images, labels, rng: np.random.Generator,
                batch_size: int = 100) -> dict:
    """One epoch over uint8 `images` (N, 28, 28) in an order drawn from `rng`, dynamically
    binarised (x ~ Bernoulli(pixel / 255)) from `rng`; `model.loss((x, y))` for a
    DualSupervised model, `model.loss(x)` for an unconditional one (the marginal P^(x)).
    Returns the per-example mean of every metric."""
    model.train()
    perm = rng.permutation(len(images))
    sums, n = {}, 0
    for i in range(0, len(perm), batch_size):
        idx = perm[i: i + batch_size]
        x = tl.tensor(binarize(images[idx], rng))                      # (B, 784)
        batch = (x, tl.tensor(np.asarray(labels)[idx])) if isinstance(model, DualSupervised) \
            else x
        loss, metrics = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + float(v.item()) * len(idx)
        n += len(idx)
    return {k: v / n for k, v in sums.items()}


def evaluate_dual(model: DualSupervised, x: Tensor, y, batch_size: int = 500) -> dict:
    """On binary images x (N, D) with labels y (N,): classification accuracy, the dual
    model's mean -log P(x|y) ("nll", nats), the frozen marginal's mean -log P^(x)
    ("marginal_nll") and the duality gap of every example ("gap", NumPy (N,))."""
    y = np.asarray(y.numpy() if isinstance(y, Tensor) else y)
    was = model.training
    model.eval()
    parts = {"correct": [], "nll": [], "marginal_nll": [], "gap": []}
    with tl.no_grad():
        for i in range(0, len(y), batch_size):
            xb, yb = x[i: i + batch_size], tl.tensor(y[i: i + batch_size])
            parts["correct"].append(model.classify(xb).numpy() == y[i: i + batch_size])
            parts["nll"].append(-model.log_prob(xb, yb).numpy())
            parts["marginal_nll"].append(-model.marginal.log_prob(xb).numpy())
            parts["gap"].append(model.duality_gap(xb, yb).numpy())
    model.train(was)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    return {"accuracy": float(out["correct"].mean()), "nll": float(out["nll"].mean()),
            "marginal_nll": float(out["marginal_nll"].mean()), "gap": out["gap"]}
