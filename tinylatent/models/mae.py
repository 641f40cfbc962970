"""Masked autoencoder (He, Chen, Xie, Li, Dollar & Girshick 2022, "Masked autoencoders are
scalable vision learners"; family 8 of MISSION.md).

An image is cut into L non-overlapping p x p patches (a ViT's tokens). A random subset of
L (1 - mask_ratio) patches is kept (Sec. 3, "Masking": random sampling without replacement,
uniform; 75% masked by default); the rest are removed, not replaced:

    encoder  the visible patches only -> linear embedding + fixed 2-D sin-cos position
             embedding -> Transformer blocks -> LayerNorm                        (Sec. 3)
    decoder  encoded visible tokens (projected to a narrower width) + one shared, learned
             mask token per masked position, put back in the original order ("unshuffle"),
             + position embedding -> a few light Transformer blocks -> linear -> p*p*C
             pixel values per patch
    loss     mean squared error between prediction and target on the MASKED patches only,
             the target being each patch's pixels normalised by that patch's mean and std
             (Sec. 3 "Reconstruction target", the normalised-pixel variant):
                 t = (x_patch - mean(x_patch)) / sqrt(var(x_patch) + 1e-6)
                 loss = sum_i m_i ||y_i - t_i||^2 / (P sum_i m_i),   m_i = 1 if masked

On MNIST 7x7 patches are used: with 4x4 ones most patches are blank or hold one faint edge
pixel, which the per-patch normalisation blows up into unpredictable targets (measured: a
4x4-patch model stayed at the mean-patch baseline). Since the encoder sees 25% of the
tokens its cost falls ~4x; the representation for a probe
is the encoder's mean over all patch tokens with NO masking (average pooling, which the
paper, App. A.1, finds as good as a class token).

    model = MAE(patch_size=7, hidden_features=64)       # 28x28 MNIST: 16 patches, 4 kept
    loss, metrics = model.loss(x)                        # x: (B, 1, 28, 28)
    z = model.encode(x)                                  # (B, 64), frozen
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn, ops
from ..autograd import no_grad
from ..random import rand
from ..tensor import Tensor
from .config import resolve_config

__all__ = ["MAEConfig", "MAE", "patchify", "unpatchify", "random_masking",
           "masked_patch_mse", "sincos_position_embedding"]


def patchify(x: Tensor, p: int) -> Tensor:
    """(B, C, H, W) -> (B, L, p*p*C) with L = (H/p)(W/p), patches row-major, each patch's
    values in (row, col, channel) order (the MAE code's nchpwq -> nhwpqc)."""
    b, c, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"patchify: image {h}x{w} is not divisible into {p}x{p} patches")
    x = x.reshape(b, c, h // p, p, w // p, p)              # (B, C, h, p, w, q)
    x = x.permute(0, 2, 4, 3, 5, 1)                         # (B, h, w, p, q, C)
    return x.reshape(b, (h // p) * (w // p), p * p * c)     # (B, L, p*p*C)


def unpatchify(patches: Tensor, p: int, channels: int, height: int, width: int) -> Tensor:
    """The inverse of `patchify`: (B, L, p*p*C) -> (B, C, H, W)."""
    b = patches.shape[0]
    x = patches.reshape(b, height // p, width // p, p, p, channels)  # (B, h, w, p, q, C)
    x = x.permute(0, 5, 1, 3, 2, 4)                                  # (B, C, h, p, w, q)
    return x.reshape(b, channels, height, width)


def random_masking(batch: int, length: int, mask_ratio: float, generator=None,
                   device=None) -> tuple:
    """Per-sample random masking by argsort of uniform noise (the MAE code's recipe).

    Returns (ids_keep (B, K), mask (B, L) float, 1 = masked, ids_restore (B, L)), all without
    gradient: K = round(L (1 - mask_ratio)) patches kept in EVERY sample, the first K of a
    uniformly random permutation ids_shuffle; ids_restore = argsort(ids_shuffle) puts a
    shuffled sequence back in the original order (unshuffle)."""
    if not 0 <= mask_ratio < 1:
        raise ValueError(f"random_masking: mask_ratio must lie in [0, 1), got {mask_ratio}")
    keep = int(round(length * (1 - mask_ratio)))
    if keep < 1:
        raise ValueError(f"random_masking: mask_ratio {mask_ratio} keeps no patch of {length}")
    noise = rand(batch, length, generator=generator, device=device)
    ids_shuffle = noise.argsort(-1)                          # ascending: small noise is kept
    ids_restore = ids_shuffle.argsort(-1)
    xp = noise.xp
    mask = xp.ones((batch, length), dtype=np.float32)
    mask[:, :keep] = 0                                       # in shuffled order ...
    mask = xp.take_along_axis(mask, ids_restore.array, 1)    # ... then back to patch order
    return Tensor._make(ids_shuffle.array[:, :keep]), Tensor._make(mask), ids_restore


def sincos_position_embedding(dim: int, grid: int) -> np.ndarray:
    """Fixed 2-D sin-cos embedding (grid*grid, dim): half the channels encode the row, half
    the column, each as [sin(pos w_k), cos(pos w_k)], w_k = 10000^(-k / (dim/4)) (the
    Transformer's, per axis; MAE Sec. 3 "Encoder", code util/pos_embed.py)."""
    if dim % 4:
        raise ValueError(f"sincos_position_embedding: dim must be a multiple of 4, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 4) / (dim / 4))            # (dim/4,)
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")

    def axis(pos):
        angle = pos.reshape(-1, 1) * omega                              # (G*G, dim/4)
        return np.concatenate([np.sin(angle), np.cos(angle)], 1)
    return np.concatenate([axis(rows), axis(cols)], 1).astype(np.float32)  # (G*G, dim)


def _gather_tokens(x: Tensor, ids: Tensor) -> Tensor:
    """x (B, L, D), ids (B, K) -> x[b, ids[b, k], :] (B, K, D), differentiable in x."""
    idx = ids.array[:, :, None]
    idx = x.xp.ascontiguousarray(x.xp.broadcast_to(idx, (*ids.shape, x.shape[-1])))
    return ops.take_along_axis(x, idx, 1)


@dataclass(frozen=True)
class MAEConfig:
    in_channels: int = 1
    image_size: int = 28
    patch_size: int = 7              # 28 / 7 = 4 x 4 = 16 patches, 4 of them visible
    hidden_features: int = 64        # encoder width (ViT embedding dimension)
    num_layers: int = 3              # encoder blocks
    num_heads: int = 4
    decoder_features: int = 32       # the light decoder (paper: 512-d, 8 blocks vs ViT-L)
    decoder_layers: int = 2
    decoder_heads: int = 2
    mlp_ratio: float = 2.0           # feed-forward width / model width
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True       # per-patch normalised pixel targets


def _blocks(width: int, heads: int, n: int, mlp_ratio: float) -> nn.ModuleList:
    # pre-norm ViT blocks, GELU, no dropout (MAE uses none in pre-training)
    return nn.ModuleList([nn.TransformerEncoderLayer(width, heads, int(width * mlp_ratio),
                                                     dropout=0.0, activation="gelu",
                                                     batch_first=True, norm_first=True)
                          for _ in range(n)])


class MAE(nn.Module):
    """ViT encoder on the visible patches only, light decoder with mask tokens."""

    def __init__(self, config: MAEConfig | None = None, **overrides):
        super().__init__()
        cfg = resolve_config(self, MAEConfig, config, overrides)
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"MAE: image_size {cfg.image_size} must be a multiple of "
                             f"patch_size {cfg.patch_size}")
        self.config = cfg
        self.grid = cfg.image_size // cfg.patch_size
        self.num_patches = self.grid ** 2
        patch_dim = cfg.patch_size ** 2 * cfg.in_channels
        self.patch_embed = nn.Linear(patch_dim, cfg.hidden_features)
        self.register_buffer("pos_embed", Tensor._make(
            sincos_position_embedding(cfg.hidden_features, self.grid)[None]))  # (1, L, D)
        self.blocks = _blocks(cfg.hidden_features, cfg.num_heads, cfg.num_layers, cfg.mlp_ratio)
        self.norm = nn.LayerNorm(cfg.hidden_features)
        self.decoder_embed = nn.Linear(cfg.hidden_features, cfg.decoder_features)
        self.mask_token = nn.Parameter(Tensor._make(
            np.zeros((1, 1, cfg.decoder_features), np.float32)))
        nn.init.normal_(self.mask_token, std=0.02)    # the paper's code: N(0, 0.02^2)
        self.register_buffer("decoder_pos_embed", Tensor._make(
            sincos_position_embedding(cfg.decoder_features, self.grid)[None]))
        self.decoder_blocks = _blocks(cfg.decoder_features, cfg.decoder_heads,
                                      cfg.decoder_layers, cfg.mlp_ratio)
        self.decoder_norm = nn.LayerNorm(cfg.decoder_features)
        self.decoder_pred = nn.Linear(cfg.decoder_features, patch_dim)

    def _images(self, x) -> Tensor:
        x = x[0] if isinstance(x, (tuple, list)) else x
        c, s = self.config.in_channels, self.config.image_size
        if x.ndim == 2 and x.shape[1] == c * s * s:
            x = x.reshape(len(x), c, s, s)     # flattened images (B, C*H*W) -> (B, C, H, W)
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"MAE: expected images (B, {c}, {s}, {s}), got {tuple(x.shape)}")
        return x

    def forward_encoder(self, x: Tensor, ids_keep: Tensor | None = None) -> Tensor:
        """Encode the patches ids_keep (B, K) of x only (all L patches if None): (B, K, D).
        Masked patches are dropped BEFORE the embedding, so they cannot influence the output."""
        patches = patchify(self._images(x), self.config.patch_size)      # (B, L, P)
        pos = self.pos_embed.expand(len(patches), *self.pos_embed.shape[1:])
        if ids_keep is not None:
            patches = _gather_tokens(patches, ids_keep)                   # (B, K, P)
            pos = _gather_tokens(pos, ids_keep)                           # (B, K, D)
        h = self.patch_embed(patches) + pos
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def forward_decoder(self, latent: Tensor, ids_restore: Tensor) -> Tensor:
        """latent (B, K, D) of the kept patches, in shuffled order -> predictions (B, L, P)."""
        b, k = latent.shape[:2]
        h = self.decoder_embed(latent)                                    # (B, K, Dd)
        masks = self.mask_token.expand(b, self.num_patches - k, h.shape[-1])
        h = ops.cat([h, masks], 1)                                        # (B, L, Dd) shuffled
        h = _gather_tokens(h, ids_restore) + self.decoder_pos_embed       # unshuffle
        for block in self.decoder_blocks:
            h = block(h)
        return self.decoder_pred(self.decoder_norm(h))

    def target(self, x: Tensor) -> Tensor:
        """Per-patch targets (B, L, P): normalised pixels, or raw with norm_pix_loss=False."""
        t = patchify(self._images(x), self.config.patch_size)
        if not self.config.norm_pix_loss:
            return t
        mean = t.mean(-1, keepdims=True)
        var = t.var(-1, keepdims=True, correction=0)
        return (t - mean) / (var + 1e-6).sqrt()

    def forward(self, x: Tensor, mask_ratio: float | None = None, generator=None) -> tuple:
        """(pred (B, L, P), mask (B, L), 1 = masked) for one random masking of x."""
        x = self._images(x)
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        ids_keep, mask, ids_restore = random_masking(len(x), self.num_patches, ratio,
                                                     generator, x.device)
        return self.forward_decoder(self.forward_encoder(x, ids_keep), ids_restore), mask

    def masked_mse(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Mean over masked patches of the per-pixel squared error."""
        per_patch = ((pred - target) ** 2).mean(-1)                       # (B, L)
        return (per_patch * mask).sum() / mask.sum()

    def loss(self, batch, generator=None) -> tuple:
        x = self._images(batch)
        pred, mask = self(x, generator=generator)
        loss = self.masked_mse(pred, self.target(x), mask)
        return loss, {"loss": loss.detach()}

    def encode(self, x: Tensor) -> Tensor:
        """Mean of the encoder's tokens over all patches, no masking: (B, D), frozen."""
        with no_grad():
            return self.forward_encoder(x).mean(1)

    @no_grad()
    def reconstruct(self, x: Tensor, mask_ratio: float | None = None, generator=None,
                    return_mask: bool = False):
        """x_hat (B, C, H, W), without a graph: the visible patches as given, the masked ones
        predicted; with return_mask also the mask image (B, 1, H, W), 1 = masked. With
        norm_pix_loss the prediction is put back in pixel units
        with each masked patch's TRUE mean and std (as the paper's visualisations do)."""
        x = self._images(x)
        pred, mask = self(x, mask_ratio, generator)
        patches = patchify(x, self.config.patch_size)
        if self.config.norm_pix_loss:
            mean = patches.mean(-1, keepdims=True)
            std = (patches.var(-1, keepdims=True, correction=0) + 1e-6).sqrt()
            pred = pred * std + mean
        m = mask.unsqueeze(-1)                                            # (B, L, 1)
        out = patches * (1 - m) + pred * m
        cfg = self.config
        size = (cfg.in_channels, cfg.image_size, cfg.image_size)
        mask_img = unpatchify(m.expand(*patches.shape), cfg.patch_size, *size)[:, :1]
        x_hat = unpatchify(out, cfg.patch_size, *size)
        return (x_hat, mask_img) if return_mask else x_hat


@no_grad()
def masked_patch_mse(model: MAE, x: Tensor, mask_ratio: float | None = None, generator=None,
                     batch_size: int = 500) -> tuple:
    """(model, baseline): the mean squared error per target value over the masked patches of
    x, in the loss's units, for the model and for the mean-patch baseline that predicts each
    masked patch as its own TRUE mean (0 in normalised units; with raw-pixel targets, the
    patch's mean pixel). The same masks are used for both."""
    model_sum = base_sum = count = 0.0
    for i in range(0, len(x), batch_size):
        xb = model._images(x[i:i + batch_size])
        pred, mask = model(xb, mask_ratio, generator)
        t = model.target(xb)
        base = t.mean(-1, keepdims=True).expand(*t.shape)   # 0 when normalised
        model_sum += float(model.masked_mse(pred, t, mask).item()) * float(mask.sum().item())
        base_sum += float(model.masked_mse(base, t, mask).item()) * float(mask.sum().item())
        count += float(mask.sum().item())
    return model_sum / count, base_sum / count
