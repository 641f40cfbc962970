"""Restricted Boltzmann machines and deep belief networks (seed 001).

RBM (Smolensky 1986; Hinton 2002): binary visible v (V,) and hidden h (H,) units with

    E(v, h) = -v.b - h.c - h W v,   p(v, h) = exp(-E(v, h)) / Z,   W (H, V) as nn.Linear's,

so p(h_j = 1 | v) = sigmoid(c_j + W_j v), p(v_i = 1 | h) = sigmoid(b_i + (h W)_i), and the
free energy (h summed out) is F(v) = -v.b - sum_j softplus(c_j + W_j v), p(v) = exp(-F(v)) / Z.

The log-likelihood gradient is d log p(v) / d theta = -dF(v)/d theta + E_{p(v')}[dF(v')/d theta].
Contrastive divergence (Hinton 2002) replaces the model expectation by v_k, k Gibbs sweeps
from the data; persistent CD (Tieleman 2008) keeps the chains running across updates. Both
are the gradient of the surrogate loss  mean F(v) - mean F(v_k)  with v_k held fixed, which is
what `RBM.loss` returns (so any optimizer and tl.train.Trainer train it).

DBN (Hinton, Osindero & Teh 2006): RBMs stacked greedily, each trained on the hidden samples
of the one below; the top RBM is an undirected prior p(h_{L-1}, h_L), the layers below are
directed sigmoid belief nets p(h_{l-1} | h_l). log Z for both by AIS: tinylatent/models/ais.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Bernoulli
from tinylatent.tensor import Tensor

from .ais import AISResult, ais_log_partition, exact_log_partition
from .config import resolve_config

__all__ = ["RBM", "RBMConfig", "DBN", "DBNConfig"]

EXACT_MAX_HIDDEN = 20   # log_prob enumerates 2^H hidden states up to this size


@dataclass(frozen=True)
class RBMConfig:
    in_features: int = 784
    hidden_features: int = 500
    k: int = 1                 # Gibbs sweeps per update (CD-k / PCD-k)
    persistent: bool = False   # PCD (Tieleman 2008): chains kept across updates
    num_chains: int = 100      # persistent chains (PCD only)
    init_std: float = 0.01     # W ~ N(0, init_std^2) (Hinton 2010, "A practical guide", Sec. 8)


class RBM(nn.Module):
    """Binary-binary restricted Boltzmann machine trained by CD-k or PCD-k."""

    def __init__(self, config: RBMConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, RBMConfig, config, overrides)
        if cfg.k < 1 or cfg.in_features < 1 or cfg.hidden_features < 1:
            raise ValueError(f"RBM: need k, in_features, hidden_features >= 1, got {cfg}")
        V, H = cfg.in_features, cfg.hidden_features
        self.weight = nn.Parameter(tl.normal(0.0, cfg.init_std, (H, V)))
        self.v_bias = nn.Parameter(tl.zeros(V))
        self.h_bias = nn.Parameter(tl.zeros(H))
        # PCD's fantasy particles: state (saved in checkpoints), not trained
        self.register_buffer("chains", tl.bernoulli(tl.full((cfg.num_chains, V), 0.5))
                             if cfg.persistent else None)

    def init_visible_bias(self, x: Tensor, eps: float = 1e-3) -> None:
        """b_i = log(p_i / (1 - p_i)) for the data's pixel means p_i (Hinton 2010, Sec. 8)."""
        p = tl.clamp(x.detach().mean(axis=0), eps, 1.0 - eps)
        with tl.no_grad():
            self.v_bias.copy_(tl.log(p) - tl.log(1.0 - p))

    def _check(self, v: Tensor, name: str) -> None:
        if v.ndim != 2 or v.shape[1] != self.config.in_features:
            raise ValueError(f"RBM.{name}: expected v of shape (B, {self.config.in_features}), "
                             f"got {tuple(v.shape)}")

    # ------------------------------------------------------------ conditionals and energy
    def hidden_probs(self, v: Tensor) -> Tensor:
        """p(h = 1 | v) = sigmoid(W v + c): (B, V) -> (B, H)."""
        return tl.sigmoid(tl.linear(v, self.weight, self.h_bias))

    def visible_probs(self, h: Tensor) -> Tensor:
        """p(v = 1 | h) = sigmoid(h W + b): (B, H) -> (B, V)."""
        return tl.sigmoid(h @ self.weight + self.v_bias)

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -v.b - sum_j softplus(c_j + W_j v): (B, V) -> (B,)."""
        self._check(v, "free_energy")
        return -(v @ self.v_bias) - tl.softplus(tl.linear(v, self.weight, self.h_bias)).sum(axis=1)

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h) = -v.b - h.c - h W v: (B, V), (B, H) -> (B,)."""
        return -(v @ self.v_bias) - (h @ self.h_bias) - (tl.linear(v, self.weight) * h).sum(axis=1)

    def gibbs(self, v: Tensor, steps: int = 1, generator=None) -> Tensor:
        """`steps` sweeps v -> h ~ p(h|v) -> v ~ p(v|h), without a graph."""
        with tl.no_grad():
            for _ in range(steps):
                h = tl.bernoulli(self.hidden_probs(v), generator=generator)
                v = tl.bernoulli(self.visible_probs(h), generator=generator)
        return v

    def negative_sample(self, v: Tensor, generator=None) -> Tensor:
        """The negative phase: k sweeps from the data (CD-k) or from the persistent chains
        (PCD-k, which then move on)."""
        if not self.config.persistent:
            return self.gibbs(v.detach(), self.config.k, generator)
        self.chains = self.gibbs(self.chains.to(self.weight.device), self.config.k, generator)
        return self.chains

    # ------------------------------------------------------------ the contract
    def loss(self, v: Tensor, generator=None):
        """Surrogate: mean F(v) - mean F(v_k); its gradient is minus the CD-k / PCD-k estimate
        of the log-likelihood gradient (Hinton 2002, Eq. 5)."""
        self._check(v, "loss")
        v_neg = self.negative_sample(v, generator)
        f_pos, f_neg = self.free_energy(v).mean(), self.free_energy(v_neg).mean()
        loss = f_pos - f_neg
        with tl.no_grad():   # one mean-field reconstruction: the usual (biased) training monitor
            recon = Bernoulli(probs=tl.clamp(self.visible_probs(self.hidden_probs(v)),
                                             1e-6, 1 - 1e-6)).log_prob(v).sum(axis=1).mean()
        return loss, {"loss": loss.detach(), "free_energy": f_pos.detach(),
                      "recon_nll": -recon}

    def log_partition(self, method: str = "auto", **ais_kwargs) -> float:
        """log Z: exact (H <= 20) or by AIS (`ais_log_partition` arguments)."""
        if method == "exact" or (method == "auto" and
                                 self.config.hidden_features <= EXACT_MAX_HIDDEN):
            return exact_log_partition(self.weight, self.v_bias, self.h_bias)
        return self.ais(**ais_kwargs).log_z

    def ais(self, base_v_bias: Tensor | None = None, num_chains: int = 100,
            num_betas: int = 14500, generator=None) -> AISResult:
        """AIS estimate of log Z (Salakhutdinov & Murray 2008); see models/ais.py."""
        return ais_log_partition(self.weight, self.v_bias, self.h_bias, base_v_bias,
                                 num_chains, num_betas, generator)

    def log_prob(self, v: Tensor, log_z: float | None = None) -> Tensor:
        """log p(v) = -F(v) - log Z. log Z: given (e.g. `rbm.ais().log_z`, computed once per
        set of weights), else exact for H <= 20; a larger RBM without it raises."""
        if log_z is None:
            if self.config.hidden_features > EXACT_MAX_HIDDEN:
                raise ValueError(f"RBM.log_prob: log Z of {self.config.hidden_features} hidden "
                                 "units cannot be enumerated; pass log_z=rbm.ais().log_z")
            log_z = self.log_partition("exact")
        return -self.free_energy(v) - log_z

    def sample(self, n: int, generator=None, steps: int = 1000) -> Tensor:
        """n draws by `steps` Gibbs sweeps from uniform noise (approximate: a finite chain)."""
        v = tl.bernoulli(tl.full((n, self.config.in_features), 0.5, device=self.weight.device),
                         generator=generator)
        return self.gibbs(v, steps, generator)

    def encode(self, v: Tensor) -> Tensor:
        """The features: p(h = 1 | v), (B, V) -> (B, H)."""
        self._check(v, "encode")
        return self.hidden_probs(v)


@dataclass(frozen=True)
class DBNConfig:
    in_features: int = 784
    hidden_features: tuple = (500, 500)
    k: int = 1
    persistent: bool = False
    num_chains: int = 100
    init_std: float = 0.01


class DBN(nn.Module):
    """Deep belief net, trained greedily (Hinton et al. 2006, Sec. 4): `loss` trains the RBM
    `self.layer` on hidden samples of the frozen layers below; `next_layer()` moves up (the
    new RBM starts with W_{l+1} = W_l^T when the sizes allow, as in the paper's argument that
    the variational bound then cannot get worse)."""

    def __init__(self, config: DBNConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, DBNConfig, config, overrides)
        sizes = (cfg.in_features, *cfg.hidden_features)
        if len(sizes) < 2:
            raise ValueError("DBN: hidden_features needs at least one layer")
        self.rbms = nn.ModuleList([RBM(in_features=a, hidden_features=b, k=cfg.k,
                                       persistent=cfg.persistent, num_chains=cfg.num_chains,
                                       init_std=cfg.init_std) for a, b in zip(sizes, sizes[1:])])
        self.register_buffer("layer_index", tl.tensor(0, dtype="int64"))

    @property
    def layer(self) -> int:
        return int(self.layer_index.item())

    def next_layer(self) -> None:
        """Freeze the current RBM and train the next; init its weights from the one below."""
        i = self.layer
        if i + 1 >= len(self.rbms):
            raise ValueError(f"DBN.next_layer: layer {i} is the top of {len(self.rbms)}")
        below, above = self.rbms[i], self.rbms[i + 1]
        if above.weight.shape == below.weight.T.shape:
            with tl.no_grad():
                above.weight.copy_(below.weight.T)
                above.v_bias.copy_(below.h_bias)
                above.h_bias.copy_(below.v_bias)
        self.layer_index = tl.tensor(i + 1, dtype="int64")

    def up(self, v: Tensor, layers: int, generator=None, sample: bool = True) -> Tensor:
        """Propagate through the first `layers` RBMs: h_l ~ p(h_l | h_{l-1}) (or the probs)."""
        with tl.no_grad():
            for rbm in self.rbms[:layers]:
                p = rbm.hidden_probs(v)
                v = tl.bernoulli(p, generator=generator) if sample else p
        return v

    def loss(self, v: Tensor, generator=None):
        """The CD loss of RBM `layer` on binary samples of its input (the layers below fixed)."""
        return self.rbms[self.layer].loss(self.up(v, self.layer, generator), generator)

    def log_prob_lower_bound(self, v: Tensor, log_z: float | None = None, num_samples: int = 1,
                             generator=None) -> Tensor:
        """log p(v) >= E_q [log p(v | h1) + log p*(h1) - log q(h1 | v)] - log Z  (S&M 2008,
        Eq. 17; Hinton et al. 2006, Eq. 7), q(h1|v) = p(h1|v) of RBM 1, p*(h1) the top RBM's
        unnormalised marginal. Monte Carlo over `num_samples` draws of h1 ~ q, with the
        log-ratio (not the analytic entropy) so that a tight bound has zero variance.
        Two layers; log Z of the top RBM: exact if small, else pass `log_z` (AIS)."""
        if len(self.rbms) != 2:
            raise ValueError("DBN.log_prob_lower_bound: implemented for two layers (S&M 2008 "
                             f"Sec. 5.1), this DBN has {len(self.rbms)}")
        first, top = self.rbms
        log_z = top.log_partition("exact") if log_z is None else log_z
        with tl.no_grad():
            q = Bernoulli(logits=tl.linear(v, first.weight, first.h_bias))     # (B, H1)
            total = 0.0
            for _ in range(num_samples):
                h1 = q.sample(generator=generator)
                log_pv = Bernoulli(logits=h1 @ first.weight + first.v_bias).log_prob(v).sum(1)
                total = total + log_pv - top.free_energy(h1) - q.log_prob(h1).sum(1)
        return total / num_samples - log_z

    def sample(self, n: int, generator=None, steps: int = 1000) -> Tensor:
        """Gibbs in the top RBM, then one top-down pass of p(h_{l-1} | h_l) (probabilities at
        the visible layer would be the mean; here binary samples throughout)."""
        h = self.rbms[-1].sample(n, generator, steps)
        with tl.no_grad():
            for rbm in reversed(list(self.rbms)[:-1]):
                h = tl.bernoulli(rbm.visible_probs(h), generator=generator)
        return h

    def encode(self, v: Tensor) -> Tensor:
        """The top layer's hidden probabilities, propagated with probabilities (mean field)."""
        return self.up(v, len(self.rbms), sample=False)


def exact_log_prob_dbn(dbn: DBN, v: Tensor) -> np.ndarray:
    """log p(v) of a two-layer DBN by enumerating h1 (tests): sum_h1 p(v|h1) p_top(h1)."""
    first, top = dbn.rbms
    H1 = first.config.hidden_features
    idx = np.arange(2 ** H1)
    h1 = tl.tensor(((idx[:, None] >> np.arange(H1)[None, :]) & 1).astype(np.float32))   # (S, H1)
    with tl.no_grad():
        log_prior = (-top.free_energy(h1)).numpy().astype(np.float64) - top.log_partition("exact")
        logits = (h1 @ first.weight + first.v_bias).numpy().astype(np.float64)      # (S, V)
    x = v.detach().numpy().astype(np.float64)                                      # (B, V)
    log_pv = x @ logits.T - np.logaddexp(0, logits).sum(1)[None, :]                # (B, S)
    t = log_pv + log_prior[None, :]
    return t.max(1) + np.log(np.exp(t - t.max(1, keepdims=True)).sum(1))
