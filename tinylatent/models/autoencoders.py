"""The autoencoder family (seeds 000, 002): undercomplete and deep MLP autoencoders, a conv
autoencoder with up-convolutions, and the regularised ones: denoising, sparse, contractive.

An autoencoder copies its input through a bottleneck: h = f(x) (encoder), x_hat = g(h)
(decoder), trained to minimise L_rec(x, g(f(x))) + lambda * Reg(h) (seed 002). Pixels are
in [0, 1], so the decoder outputs logits and L_rec is the Bernoulli cross-entropy summed
over pixels (mean squared error with `recon="mse"`); losses are averaged over the batch.

    model = Autoencoder(AEConfig(hidden_features=(256,), latent_features=32))
    loss, metrics = model.loss(x)               # x: (B, 784) in [0, 1]; metrics: Tensors
    fit(model, x_train, epochs=5)               # Adam, shuffled minibatches
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import autograd, nn
from .. import random as tlrandom
from ..distributions import Bernoulli
from ..tensor import Tensor, eye, float64
from .config import resolve_config

__all__ = ["AEConfig", "Autoencoder", "DenoisingAE", "SparseAE", "ContractiveAE",
           "ConvAEConfig", "ConvAutoencoder", "corrupt", "jacobian_frobenius_sq",
           "sigmoid_jacobian_frobenius_sq", "fit", "reconstruction_error"]

_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "none": nn.Identity}


@dataclass(frozen=True)
class AEConfig:
    in_features: int = 784
    hidden_features: tuple = (256,)  # encoder widths before the code; the decoder mirrors them
    latent_features: int = 32     # the code h = f(x)
    activation: str = "relu"      # hidden layers
    code_activation: str = "none"  # "sigmoid" for the contractive AE's closed form
    recon: str = "bce"            # "bce" (decoder emits logits) or "mse"
    # regularisers (used by the subclasses)
    noise: str = "masking"        # denoising: "gaussian", "masking" or "salt_pepper"
    noise_level: float = 0.3      # sigma, drop fraction, or flipped fraction
    sparsity_weight: float = 1e-2  # lambda of the L1 code penalty
    contractive_weight: float = 1e-2  # lambda of ||J_f(x)||_F^2
    jacobian: str = "auto"        # "closed_form", "double_backward" or "auto"


def _mlp(sizes: list, activation: str, last: str) -> nn.Sequential:
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        layers.append(_ACTIVATIONS[activation if i < len(sizes) - 2 else last]())
    return nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])


class Autoencoder(nn.Module):
    """Undercomplete MLP autoencoder; depth = len(config.hidden_features) + 1 layers each
    way (a "deep AE" is just a longer `hidden_features`, e.g. (1000, 500, 250) as in Hinton &
    Salakhutdinov 2006). x_hat = g(f(x)); loss = L_rec(x, x_hat)."""

    def __init__(self, config: AEConfig | None = None, **overrides):
        super().__init__()
        cfg = resolve_config(self, AEConfig, config, overrides)
        if cfg.code_activation not in _ACTIVATIONS or cfg.activation not in _ACTIVATIONS:
            raise ValueError(f"{type(self).__name__}: activations must be in "
                             f"{sorted(_ACTIVATIONS)}, got {cfg.activation!r}, "
                             f"{cfg.code_activation!r}")
        if cfg.recon not in ("bce", "mse"):
            raise ValueError(f"{type(self).__name__}: recon must be 'bce' or 'mse', got "
                             f"{cfg.recon!r}")
        self.config = cfg
        sizes = [cfg.in_features, *cfg.hidden_features, cfg.latent_features]
        self.encoder = _mlp(sizes, cfg.activation, cfg.code_activation)
        self.decoder = _mlp(sizes[::-1], cfg.activation, "none")  # logits / raw values

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x.reshape(len(x), -1))  # (B, D) -> (B, k)

    def decode_logits(self, h: Tensor) -> Tensor:
        return self.decoder(h)

    def decode(self, h: Tensor) -> Tensor:
        """x_hat in pixel space (sigmoid of the logits for the BCE model)."""
        out = self.decoder(h)
        return out.sigmoid() if self.config.recon == "bce" else out

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x)).reshape(x.shape)

    def reconstruct(self, x: Tensor) -> Tensor:
        """x_hat = g(f(x)) in x's shape, without a graph."""
        with autograd.no_grad():
            return self(x)

    def reconstruction_loss(self, out: Tensor, x: Tensor) -> Tensor:
        """Per-image sum over pixels, mean over the batch."""
        x = x.reshape(len(x), -1)
        if self.config.recon == "bce":
            per = -Bernoulli(logits=out).log_prob(x)  # (B, D): -log p(x | logits)
        else:
            per = (out - x) ** 2
        return per.sum(-1).mean()

    def loss(self, batch) -> tuple:
        x = _inputs(batch)
        h = self.encode(x)
        rec = self.reconstruction_loss(self.decode_logits(h), x)
        return rec, _metrics(loss=rec, rec=rec)


def _metrics(**values: Tensor) -> dict:
    """Detached Tensors for logging: no host sync inside `loss`; the caller converts."""
    return {key: v.detach() for key, v in values.items()}


def _inputs(batch) -> Tensor:
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    return x.reshape(len(x), -1)


# ------------------------------------------------------------------------- denoising AE
def corrupt(x: Tensor, kind: str, level: float, generator=None) -> Tensor:
    """Draw x_tilde ~ q(x_tilde | x) (Vincent et al. 2008; seeds 000, 002):
    gaussian: x + level * eps;  masking: each pixel zeroed with probability level;
    salt_pepper: each pixel, with probability level, set to 0 or 1 (fair coin)."""
    if not 0 <= level <= (math.inf if kind == "gaussian" else 1):
        raise ValueError(f"corrupt: noise level {level} out of range for {kind!r}")
    x = x.detach()
    if kind == "gaussian":
        return x + level * tlrandom.randn_like(x, generator=generator)
    u = tlrandom.rand(*x.shape, dtype=x.dtype, device=x.device, generator=generator)
    if kind == "masking":
        return x * (u >= level).to(x.dtype)
    if kind == "salt_pepper":
        coin = tlrandom.rand(*x.shape, dtype=x.dtype, device=x.device, generator=generator)
        flip = (u < level).to(x.dtype)
        return x * (1 - flip) + flip * (coin < 0.5).to(x.dtype)
    raise ValueError(f"corrupt: kind must be 'gaussian', 'masking' or 'salt_pepper', got "
                     f"{kind!r}")


class DenoisingAE(Autoencoder):
    """Denoising AE: loss = L_rec(x, g(f(x_tilde))), x_tilde ~ q(. | x): reconstruct the clean
    input from a corrupted copy, so the model must learn the data's structure (seed 002:
    "robustness to noise")."""

    def loss(self, batch) -> tuple:
        x = _inputs(batch)
        x_tilde = corrupt(x, self.config.noise, self.config.noise_level)
        rec = self.reconstruction_loss(self.decode_logits(self.encode(x_tilde)), x)
        return rec, _metrics(loss=rec, rec=rec)


# ---------------------------------------------------------------------------- sparse AE
class SparseAE(Autoencoder):
    """Sparse AE (seed 002): loss = L_rec + lambda * ||h||_1, the L1 penalty of a Laplace
    prior on the code. ReLU codes by default, so the penalty produces exact zeros."""

    def __init__(self, config: AEConfig | None = None, **overrides):
        overrides.setdefault("code_activation", "relu")
        super().__init__(config, **overrides)

    def loss(self, batch) -> tuple:
        x = _inputs(batch)
        h = self.encode(x)
        rec = self.reconstruction_loss(self.decode_logits(h), x)
        l1 = h.abs().sum(-1).mean()
        loss = rec + self.config.sparsity_weight * l1
        return loss, _metrics(loss=loss, rec=rec, l1=l1)


# ------------------------------------------------------------------------ contractive AE
def sigmoid_jacobian_frobenius_sq(layer: nn.Linear, h: Tensor) -> Tensor:
    """Closed form for h = sigmoid(W x + b) (Rifai et al. 2011, eq. 5):
    dh_j/dx_i = h_j (1 - h_j) W_ji, so ||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2.
    Returns the per-example values, (B,)."""
    w_sq = (layer.weight * layer.weight).sum(-1)  # (k,) row norms of W (k, D)
    s = h * (1 - h)  # (B, k)
    return (s * s * w_sq).sum(-1)


def jacobian_frobenius_sq(encoder, x: Tensor, create_graph: bool = True) -> Tensor:
    """||J_f(x)||_F^2 = sum_j ||grad_x h_j||^2 for any encoder, per example (B,), by double
    backward. One reverse pass gives all k rows of every J at once: copy each x k times,
    (B*k, D), and backpropagate the sum of h[copy j][j]; row (b, j) of the gradient is
    grad_x h_j(x_b). With create_graph the result is differentiable in the parameters."""
    x = x.reshape(len(x), -1).detach()
    n, dim = x.shape
    k = encoder(x[:1]).shape[-1]
    x_rep = x.unsqueeze(1).expand(n, k, dim).reshape(n * k, dim).detach()  # (B*k, D)
    x_rep.requires_grad_(True)
    with autograd.enable_grad():  # the inner derivative needs a graph even under no_grad
        h = encoder(x_rep).reshape(n, k, k)  # (B, copy j, unit)
        diag = (h * eye(k, dtype=h.dtype, device=h.device)).sum()  # sum_b,j h_j(x_b copy j)
        (g,) = autograd.grad(diag, [x_rep], create_graph=create_graph)  # (B*k, D): rows of J
    return (g * g).reshape(n, k * dim).sum(-1)


class ContractiveAE(Autoencoder):
    """Contractive AE (seed 002): loss = L_rec + lambda * ||J_f(x)||_F^2, J_f = dh/dx, which
    makes the code insensitive to small input changes off the data manifold. With one
    sigmoid encoder layer the penalty has a closed form; otherwise (or with
    jacobian="double_backward") it is computed by double backward."""

    def __init__(self, config: AEConfig | None = None, **overrides):
        overrides.setdefault("code_activation", "sigmoid")
        overrides.setdefault("hidden_features", ())
        super().__init__(config, **overrides)

    def _closed_form_ok(self) -> bool:
        return len(self.config.hidden_features) == 0 and self.config.code_activation == "sigmoid"

    def jacobian_penalty(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """Per-example ||J_f(x)||_F^2, (B,)."""
        mode = self.config.jacobian
        if mode == "auto":
            mode = "closed_form" if self._closed_form_ok() else "double_backward"
        if mode == "closed_form":
            if not self._closed_form_ok():
                raise ValueError("ContractiveAE: the closed form needs one sigmoid encoder "
                                 "layer (hidden_features=(), code_activation='sigmoid'); use "
                                 "jacobian='double_backward'")
            h = self.encode(x) if h is None else h
            return sigmoid_jacobian_frobenius_sq(self.encoder[0], h)
        return jacobian_frobenius_sq(self.encoder, x, create_graph=autograd.is_grad_enabled())

    def loss(self, batch) -> tuple:
        x = _inputs(batch)
        h = self.encode(x)
        rec = self.reconstruction_loss(self.decode_logits(h), x)
        jac = self.jacobian_penalty(x, h).mean()
        loss = rec + self.config.contractive_weight * jac
        return loss, _metrics(loss=loss, rec=rec, jacobian=jac)


# --------------------------------------------------------------------------- conv AE
@dataclass(frozen=True)
class ConvAEConfig:
    in_channels: int = 1
    hidden_channels: tuple = (16, 32)  # each conv halves H and W (stride 2)
    latent_features: int = 32
    image_size: int = 28
    recon: str = "bce"


class ConvAutoencoder(Autoencoder):
    """Conv encoder (3x3 convolutions, stride 2) -> linear code -> linear -> up-convolutions
    (3x3 ConvTranspose2d, stride 2, output_padding 1) back to the image (seeds 000, 002:
    "upconv <- conv-layers"). Spatial sizes 28 -> 14 -> 7 -> code -> 7 -> 14 -> 28."""

    def __init__(self, config: ConvAEConfig | None = None, **overrides):
        nn.Module.__init__(self)
        cfg = resolve_config(self, ConvAEConfig, config, overrides)
        self.config = cfg
        chans = [cfg.in_channels, *cfg.hidden_channels]
        s = cfg.image_size
        enc = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            enc += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
            s = (s + 1) // 2
        self.feat_shape = (chans[-1], s, s)
        flat = chans[-1] * s * s
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(flat, cfg.latent_features))
        dec = [nn.Linear(cfg.latent_features, flat), nn.ReLU(), nn.Unflatten(1, self.feat_shape)]
        rev = chans[::-1]
        for i, (c_in, c_out) in enumerate(zip(rev[:-1], rev[1:])):
            dec.append(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1,
                                          output_padding=1))
            if i < len(rev) - 2:
                dec.append(nn.ReLU())
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: Tensor) -> Tensor:
        c, s = self.config.in_channels, self.config.image_size
        return self.encoder(x.reshape(len(x), c, s, s))  # (B, C, H, W) -> (B, k)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x)).reshape(x.shape)

    def reconstruction_loss(self, out: Tensor, x: Tensor) -> Tensor:
        return Autoencoder.reconstruction_loss(self, out.reshape(len(out), -1), x)


# --------------------------------------------------------------------------- training
def fit(model: nn.Module, x_train, epochs: int = 5, batch_size: int = 128, lr: float = 1e-3,
        seed: int = 0, log=None) -> list:
    """Adam on shuffled minibatches of `x_train` ((N, ...) floats in [0, 1]); returns the
    per-epoch mean of every metric as floats (summed as Tensors, converted once an epoch).
    `log(epoch, metrics)` is called after each epoch."""
    from ..optim import Adam
    x_train = x_train if isinstance(x_train, Tensor) else Tensor(np.asarray(x_train))
    opt = Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    history = []
    model.train()
    for epoch in range(epochs):
        perm = rng.permutation(len(x_train))
        sums: dict = {}
        n_batches = 0
        for s in range(0, len(perm), batch_size):
            batch = x_train[perm[s:s + batch_size]]
            loss, metrics = model.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for key, v in metrics.items():   # float64 on the device: no sync, no rounding
                v = v.to(float64)
                sums[key] = v if key not in sums else sums[key] + v
            n_batches += 1
        history.append({key: float(v.item()) / n_batches for key, v in sums.items()})
        if log is not None:
            log(epoch, history[-1])
    model.eval()
    return history


def reconstruction_error(model: nn.Module, x_in: Tensor, x_target: Tensor | None = None,
                         batch_size: int = 500) -> float:
    """Mean squared error per pixel between model(x_in) and x_target (default x_in)."""
    x_target = x_in if x_target is None else x_target
    total = 0.0
    with autograd.no_grad():
        for s in range(0, len(x_in), batch_size):
            x_hat = model(x_in[s:s + batch_size])
            total += float(((x_hat - x_target[s:s + batch_size]) ** 2).sum().item())
    return total / x_target.numel()

