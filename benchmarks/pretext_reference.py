"""PyTorch twins of RotationNet, MAE and Colorization (tinylatent/models/pretext.py, mae.py,
colorization.py), for
benchmarks/test_bench_pretext.py. Same module names, so tinylatent's state dict loads into
them as is; the MAE twin takes tinylatent's masking (ids_keep, mask, ids_restore) so both
sides mask the same patches, the Colorization twin tinylatent's input L and soft-encoded
targets (bins, Z, v: data preparation in NumPy, the same for both)."""
from __future__ import annotations

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the benchmark skips without PyTorch
    torch = None


def copy_weights(tl_model, pt_model) -> None:
    state = tl_model.state_dict()
    with torch.no_grad():
        for name, p in pt_model.state_dict(keep_vars=True).items():
            p.copy_(torch.from_numpy(np.array(state[name].numpy_host(), copy=True)))


if torch is not None:
    class TorchRotationNet(nn.Module):
        def __init__(self, in_channels=1, hidden_channels=(32, 64, 128)):
            super().__init__()
            widths = [in_channels, *hidden_channels]
            self.blocks = nn.ModuleList([nn.Sequential(
                nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2))
                for a, b in zip(widths, widths[1:])])
            self.head = nn.Linear(widths[-1], 4)

        def loss(self, x):
            rots = torch.stack([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)], 1)
            h = rots.reshape(-1, *x.shape[1:])                     # (4B, C, H, W)
            y = torch.arange(4).repeat(len(x))
            for block in self.blocks:
                h = block(h)
            return F.cross_entropy(self.head(h.mean((-2, -1))), y)

    def _blocks(width, heads, n, mlp_ratio):
        return nn.ModuleList([nn.TransformerEncoderLayer(width, heads, int(width * mlp_ratio),
                                                         dropout=0.0, activation="gelu",
                                                         batch_first=True, norm_first=True)
                              for _ in range(n)])

    def _gather(x, ids):
        return torch.gather(x, 1, ids[:, :, None].expand(-1, -1, x.shape[-1]))

    class TorchMAE(nn.Module):
        """The MAE code's forward (models_mae.py) without the class token, as ours."""

        def __init__(self, cfg):
            super().__init__()
            self.cfg = cfg
            self.grid = cfg.image_size // cfg.patch_size
            patch_dim = cfg.patch_size ** 2 * cfg.in_channels
            d, dd = cfg.hidden_features, cfg.decoder_features
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
            self.register_buffer("pos_embed", torch.zeros(1, self.grid ** 2, d))
            self.register_buffer("decoder_pos_embed", torch.zeros(1, self.grid ** 2, dd))
            self.patch_embed = nn.Linear(patch_dim, d)
            self.blocks = _blocks(d, cfg.num_heads, cfg.num_layers, cfg.mlp_ratio)
            self.norm = nn.LayerNorm(d)
            self.decoder_embed = nn.Linear(d, dd)
            self.decoder_blocks = _blocks(dd, cfg.decoder_heads, cfg.decoder_layers,
                                          cfg.mlp_ratio)
            self.decoder_norm = nn.LayerNorm(dd)
            self.decoder_pred = nn.Linear(dd, patch_dim)

        def patchify(self, x):
            b, c, h, w = x.shape
            p = self.cfg.patch_size
            x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
            return x.reshape(b, (h // p) * (w // p), p * p * c)

        def loss(self, x, ids_keep, mask, ids_restore):
            patches = self.patchify(x)
            h = self.patch_embed(_gather(patches, ids_keep)) + _gather(
                self.pos_embed.expand(len(x), -1, -1), ids_keep)
            for block in self.blocks:
                h = block(h)
            h = self.decoder_embed(self.norm(h))
            masks = self.mask_token.expand(len(x), patches.shape[1] - h.shape[1], -1)
            h = _gather(torch.cat([h, masks], 1), ids_restore) + self.decoder_pos_embed
            for block in self.decoder_blocks:
                h = block(h)
            pred = self.decoder_pred(self.decoder_norm(h))
            mean = patches.mean(-1, keepdim=True)
            var = patches.var(-1, keepdim=True, unbiased=False)
            target = (patches - mean) / (var + 1e-6) ** 0.5
            per_patch = ((pred - target) ** 2).mean(-1)
            return (per_patch * mask).sum() / mask.sum()

    class TorchColorization(nn.Module):
        """Colorization's network and class-rebalanced soft cross-entropy (eq. 2)."""

        def __init__(self, hidden_channels, num_bins):
            super().__init__()
            widths = [1, *hidden_channels]
            self.register_buffer("centres", torch.zeros(num_bins, 2))
            self.register_buffer("class_weights", torch.ones(num_bins))
            self.blocks = nn.ModuleList([nn.Sequential(
                nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2))
                for a, b in zip(widths, widths[1:])])
            up = []
            for a, b in zip(widths[:0:-1], widths[-2:0:-1] + [widths[1]]):
                up += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
            self.decoder = nn.Sequential(*up)
            self.head = nn.Conv2d(widths[1] + 1, num_bins, 1)

        def loss(self, light, bins, z, v):
            h = light
            for block in self.blocks:
                h = block(h)
            logits = self.head(torch.cat([self.decoder(h), light], 1))
            logits = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
            log_z_hat = F.log_softmax(logits, -1).gather(1, bins)
            return -(v * (z * log_z_hat).sum(-1)).mean()
