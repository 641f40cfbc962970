"""Fine-tuning a masked autoencoder's encoder for classification (He et al. 2022, Sec. 4 and
App. A.2: the pre-trained ViT encoder, no masking, average-pooled tokens, a linear head, and
ALL weights trained on labels; the decoder is thrown away).

`ViTClassifier` is exactly MAE's encoder (same module names: patch_embed, pos_embed, blocks,
norm) plus a linear head, so `load_encoder(mae)` copies a pre-trained encoder in and the
same class built from a seed is the "same ViT from scratch" baseline:

    logits = head(mean_l norm(blocks(patch_embed(patches(x)) + pos_embed))_l)
    loss   = -mean log softmax(logits)[y]

The paper's recipe adds layer-wise learning-rate decay, mixup/cutmix and label smoothing;
none is used here, for the scratch and the fine-tuned network alike.

    clf = ViTClassifier(MAEConfig(...), num_classes=10).load_encoder(mae)
    loss, metrics = clf.loss((x, y))            # metrics["accuracy"]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import nn
from ..autograd import no_grad
from ..distributions import Categorical
from ..tensor import Tensor
from .config import resolve_config
from .mae import MAE, MAEConfig, _blocks, patchify, sincos_position_embedding

__all__ = ["ViTClassifierConfig", "ViTClassifier"]

_ENCODER = ("patch_embed.", "pos_embed", "blocks.", "norm.")
_SIZES = ("in_channels", "image_size", "patch_size", "hidden_features", "num_layers",
          "num_heads", "mlp_ratio")


@dataclass(frozen=True)
class ViTClassifierConfig(MAEConfig):
    num_classes: int = 10


class ViTClassifier(nn.Module):
    """MAE's ViT encoder on all patches -> mean over tokens -> linear head."""

    def __init__(self, config: ViTClassifierConfig | None = None, **overrides):
        super().__init__()
        if isinstance(config, MAEConfig) and not isinstance(config, ViTClassifierConfig):
            config = ViTClassifierConfig(**asdict(config))     # an MAE's sizes
        cfg = resolve_config(self, ViTClassifierConfig, config, overrides)
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"ViTClassifier: image_size {cfg.image_size} must be a multiple "
                             f"of patch_size {cfg.patch_size}")
        self.config = cfg
        grid = cfg.image_size // cfg.patch_size
        self.patch_embed = nn.Linear(cfg.patch_size ** 2 * cfg.in_channels, cfg.hidden_features)
        self.register_buffer("pos_embed", Tensor._make(
            sincos_position_embedding(cfg.hidden_features, grid)[None]))     # (1, L, D)
        self.blocks = _blocks(cfg.hidden_features, cfg.num_heads, cfg.num_layers, cfg.mlp_ratio)
        self.norm = nn.LayerNorm(cfg.hidden_features)
        self.head = nn.Linear(cfg.hidden_features, cfg.num_classes)

    def load_encoder(self, mae: MAE) -> "ViTClassifier":
        """Copy a (pre-trained) MAE's encoder weights in; the head stays as initialised."""
        if any(getattr(mae.config, k) != getattr(self.config, k) for k in _SIZES):
            raise ValueError(f"ViTClassifier.load_encoder: encoder sizes differ: "
                             f"{mae.config} vs {self.config}")
        state = {k: v for k, v in mae.state_dict().items() if k.startswith(_ENCODER)}
        missing, _ = self.load_state_dict(state, strict=False)
        if set(missing) - {"head.weight", "head.bias"}:
            raise RuntimeError(f"ViTClassifier.load_encoder: missing {sorted(missing)}")
        return self

    def _images(self, x) -> Tensor:
        return MAE._images(self, x)          # the same checks and flat-image handling

    def encode(self, x) -> Tensor:
        """Mean of the encoder's tokens (B, D), frozen (what MAE.encode returns)."""
        with no_grad():
            return self.tokens(x).mean(1)

    def tokens(self, x) -> Tensor:
        h = self.patch_embed(patchify(self._images(x), self.config.patch_size)) + self.pos_embed
        for block in self.blocks:
            h = block(h)
        return self.norm(h)                                              # (B, L, D)

    def forward(self, x) -> Tensor:
        return self.head(self.tokens(x).mean(1))                         # (B, num_classes)

    def loss(self, batch) -> tuple:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("ViTClassifier.loss: expected a batch (images, labels)")
        x, y = batch[0], batch[1]
        logits = self(x)
        nll = -Categorical(logits=logits).log_prob(y).mean()
        accuracy = (logits.detach().argmax(-1) == y).float().mean()
        return nll, {"loss": nll.detach(), "accuracy": accuracy}

    @no_grad()
    def accuracy(self, x, y, batch_size: int = 500) -> float:
        """Fraction of x classified as y (numpy labels or Tensor)."""
        y = y.numpy_host() if isinstance(y, Tensor) else y
        hits = sum(int((self(x[i:i + batch_size]).argmax(-1).numpy_host() ==
                        y[i:i + batch_size]).sum()) for i in range(0, len(x), batch_size))
        return hits / len(x)
