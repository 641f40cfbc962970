"""Greedy layer-wise pre-training of a stacked autoencoder (seed 000), and the linear
autoencoder that learns the PCA subspace (seed 002: "PCA ~ a NN without nonlinear activation
functions").

Greedy layer-wise pre-training (Hinton & Salakhutdinov 2006; Bengio et al. 2007): train a
shallow AE x -> h1 -> x_hat, then a second one h1 -> h2 -> h1_hat on the first one's codes,
and so on; stack the encoders, then the decoders in reverse order, and fine-tune the whole
deep autoencoder end to end.

    sae = StackedAutoencoder(AEConfig(hidden_features=(256,), latent_features=32))
    sae.pretrain(x_train, epochs=3)     # one shallow AE per layer
    fit(sae, x_train, epochs=3)          # fine-tuning
"""
from __future__ import annotations

import numpy as np

from .. import autograd, nn
from ..tensor import Tensor
from ..distributions import Bernoulli
from .autoencoders import _ACTIVATIONS, AEConfig, Autoencoder, _inputs, _metrics, fit
from .config import resolve_config

__all__ = ["StackedAutoencoder", "LinearAutoencoder", "principal_angles"]


class _LayerAE(nn.Module):
    """One greedy stage: h = act(W_e x + b_e), x_hat = out_act(W_d h + b_d). It shares the
    Linear layers with the stacked model, so training it trains the stack's weights."""

    def __init__(self, enc: nn.Linear, enc_act: str, dec: nn.Linear, dec_act: str,
                 recon: str):
        super().__init__()
        self.enc, self.dec = enc, dec
        self.enc_act, self.dec_act = _ACTIVATIONS[enc_act](), _ACTIVATIONS[dec_act]()
        self.recon = recon

    def encode(self, x: Tensor) -> Tensor:
        return self.enc_act(self.enc(x))

    def loss(self, batch) -> tuple:
        x = _inputs(batch)
        out = self.dec_act(self.dec(self.encode(x)))
        if self.recon == "bce":  # the first stage sees pixels: logits + Bernoulli CE
            rec = -Bernoulli(logits=out).log_prob(x).sum(-1).mean()
        else:  # deeper stages reconstruct real-valued codes
            rec = ((out - x) ** 2).sum(-1).mean()
        return rec, _metrics(loss=rec)


class StackedAutoencoder(Autoencoder):
    """A deep MLP autoencoder (same layout as `Autoencoder`) that can be pre-trained one
    layer at a time before fine-tuning."""

    def _linears(self):
        enc = [m for m in self.encoder if isinstance(m, nn.Linear)]
        dec = [m for m in self.decoder if isinstance(m, nn.Linear)]
        return enc, dec

    def layer_autoencoders(self) -> list:
        """The greedy stages, outermost first: stage i pairs encoder layer i with decoder
        layer L-1-i, with the activations those layers have inside the stack."""
        cfg = self.config
        enc, dec = self._linears()
        depth = len(enc)
        stages = []
        for i in range(depth):
            enc_act = cfg.activation if i < depth - 1 else cfg.code_activation
            dec_act = "none" if i == 0 else cfg.activation
            recon = cfg.recon if i == 0 else "mse"
            stages.append(_LayerAE(enc[i], enc_act, dec[depth - 1 - i], dec_act, recon))
        return stages

    def pretrain(self, x_train, epochs: int = 3, batch_size: int = 128, lr: float = 1e-3,
                 seed: int = 0, log=None) -> list:
        """Greedy layer-wise pre-training; returns each stage's training history."""
        h = x_train if isinstance(x_train, Tensor) else Tensor(np.asarray(x_train))
        h = h.reshape(len(h), -1)
        histories = []
        for i, stage in enumerate(self.layer_autoencoders()):
            stage_log = (lambda e, m, i=i: log(i, e, m)) if log is not None else None
            histories.append(fit(stage, h, epochs, batch_size, lr, seed + i, stage_log))
            with autograd.no_grad():  # the next stage learns to code these codes
                h = stage.encode(h).detach()
        return histories


class LinearAutoencoder(Autoencoder):
    """x_hat = W_d (W_e x + b_e) + b_d trained on squared error. Its global minima project
    onto the top-`latent_features` principal subspace (Baldi & Hornik 1989): the decoder's columns
    span the same space as PCA's components, though they need not be orthonormal or equal
    to the components themselves."""

    def __init__(self, config: AEConfig | None = None, **overrides):
        # linear by construction: no hidden layers, no code activation, squared error
        linear = dict(hidden_features=(), code_activation="none", recon="mse")
        cfg = resolve_config(self, AEConfig, config, overrides)
        super().__init__(cfg, **linear)


def principal_angles(A, B) -> np.ndarray:
    """Principal angles (radians, ascending) between span(A) and span(B), columns of (D, k)
    and (D, m) matrices: cos(theta_i) = sigma_i(Q_A^T Q_B) with Q from QR (Bjorck & Golub
    1973). In float64."""
    A = np.asarray(A.detach().numpy() if isinstance(A, Tensor) else A, dtype=np.float64)
    B = np.asarray(B.detach().numpy() if isinstance(B, Tensor) else B, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise ValueError(f"principal_angles: need (D, k) and (D, m) matrices, got {A.shape} "
                         f"and {B.shape}")
    qa, _ = np.linalg.qr(A)
    qb, _ = np.linalg.qr(B)
    s = np.linalg.svd(qa.T @ qb, compute_uv=False)  # (min(k, m),), descending cosines
    return np.sort(np.arccos(np.clip(s, -1.0, 1.0)))
