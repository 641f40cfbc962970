"""PixelCNN and Gated PixelCNN: autoregressive models of binary images (seeds 001, 003).

Both factorise p(x) = prod_i p(x_i | x_<i) over pixels in raster order (row by row, left to
right) and compute all H W conditionals in one convolutional pass, so log_prob is exact and
normalised by construction; sampling takes H W passes.

PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", Sec. 3.4, Fig. 4):
convolutions whose kernels are masked so that output i sees only inputs before i. The first
layer uses mask A (the centre tap excluded: pixel i never sees x_i), later layers mask B
(centre included: feature i may use feature i, which itself saw only x_<i). Stacking masked
3x3 kernels leaves a "blind spot" above-right of each pixel (Gated PixelCNN paper, Fig. 1).

Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders", Sec. 2.1-2.3, Fig. 2): a vertical stack (rows above, full width) and a
horizontal stack (the current row, pixels to the left) that together cover the whole past
with no blind spot; gated units y = tanh(W_f * x + V_f^T h) . sigmoid(W_g * x + V_g^T h)
(eq. 2, 4) with optional class conditioning h = one-hot(y).

Images here are binary with `in_channels` planes (MNIST: 1); the masks are spatial, so the
channels of one pixel are conditionally independent given the pixels before it (for RGB the
paper also orders R < G < B inside a pixel; with binary MNIST there is one channel).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.nn import functional as F
from tinylatent.nn.conv import conv2d
from tinylatent.distributions import Bernoulli
from tinylatent.tensor import Tensor

from .config import resolve_config

__all__ = ["MaskedConv2d", "masked_conv2d", "PixelCNN", "PixelCNNConfig", "GatedPixelCNN",
           "GatedPixelCNNConfig"]


def _check_image(name: str, x: Tensor, channels: int, size: int) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != (channels, size, size):
        raise ValueError(f"{name}: expected images (B, {channels}, {size}, {size}), got shape "
                         f"{tuple(x.shape)}")


class MaskedConv2d(nn.Conv2d):
    """Conv2d with W * M, M a fixed spatial mask (van den Oord et al. 2016a, Sec. 3.4):
    M[:, :, a, b] = 1 for taps above the centre row, and left of the centre in its row;
    the centre itself is 1 for mask "B" and 0 for mask "A". 'same' padding, odd kernel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 mask_type: str = "B", bias: bool = True):
        if mask_type not in ("A", "B"):
            raise ValueError(f"MaskedConv2d: mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"MaskedConv2d: kernel_size must be odd, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                         bias=bias)
        c = kernel_size // 2
        mask = np.zeros((1, 1, kernel_size, kernel_size), dtype=np.float32)
        mask[:, :, :c, :] = 1.0                                 # rows above the centre
        mask[:, :, c, :c + (mask_type == "B")] = 1.0           # left of it (and it, for B)
        self.mask_type = mask_type
        self.register_buffer("mask", tl.tensor(mask), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return masked_conv2d(x, self.weight, self.bias, self.mask_type)


def masked_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, mask_type: str) -> Tensor:
    """conv2d(x, W * M, bias, padding=k // 2) for MaskedConv2d's mask M, without the taps M
    zeroes (a 7x7 "A" keeps 24 of 49, a 3x3 "B" 5 of 9: about half the multiply-adds).
    With c = k // 2 the kept taps are two rectangles, each an ordinary convolution of x
    shifted so that its output needs no cropping:
        rows above the centre   sum_{a < c, b < k} W[a, b] x[i + a - c, j + b - c]
                                = conv(pad(x[:, :, :H-1], top c, left / right c), W[:c, :])
        the centre row's left   sum_{b < c (<= c for "B")} W[c, b] x[i, j + b - c]
                                = conv(pad(x, left c), W[c:c+1, :c(+1)])  (x[..., :W-1] for "A")
    The masked taps get zero gradient, as through W * M."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"masked_conv2d: mask_type must be 'A' or 'B', got {mask_type!r}")
    k = weight.shape[-1]
    if weight.ndim != 4 or weight.shape[-2] != k or k % 2 != 1 or x.ndim != 4:
        raise ValueError(f"masked_conv2d: needs x (B, C, H, W) and a square odd kernel "
                         f"(O, C, k, k), got x {tuple(x.shape)}, weight {tuple(weight.shape)}")
    c = k // 2
    if c == 0:                          # 1x1: only the centre, kept by "B", dropped by "A"
        w = weight if mask_type == "B" else weight * 0.0
        return conv2d(x, w, bias)
    h, wd = x.shape[-2:]
    top = conv2d(F.pad(x[:, :, :h - 1, :], (c, c, c, 0)), weight[:, :, :c, :])  # (B, O, H, W)
    width = c + (mask_type == "B")
    row = x if mask_type == "B" else x[:, :, :, :wd - 1]
    left = conv2d(F.pad(row, (c, 0, 0, 0)), weight[:, :, c:c + 1, :width], bias)  # (B, O, H, W)
    return top + left


class _AutoregressiveImage(nn.Module):
    """log_prob / loss / sample / complete shared by both models: Bernoulli pixels whose
    logits come from forward(x[, y]) (B, C, H, W)."""

    def _labels(self, y, n: int):
        if self.num_classes == 0:
            if y is not None:
                raise ValueError(f"{type(self).__name__}: labels y given to an unconditional "
                                 "model (set num_classes > 0)")
            return None
        if y is None:
            raise ValueError(f"{type(self).__name__}: a class-conditional model "
                             f"(num_classes={self.num_classes}) needs labels y")
        y = np.asarray(y.numpy() if isinstance(y, Tensor) else y, dtype=np.int64).reshape(-1)
        if len(y) != n or y.min() < 0 or y.max() >= self.num_classes:
            raise ValueError(f"{type(self).__name__}: y must hold {n} labels in "
                             f"[0, {self.num_classes}), got {y}")
        return y

    def log_prob(self, x: Tensor, y=None) -> Tensor:
        """log p(x | y) = sum_i log Bern(x_i; sigmoid(logit_i(x_<i, y))), (B,)."""
        lp = Bernoulli(logits=self(x, y)).log_prob(x)                 # (B, C, H, W)
        return lp.reshape(len(x), -1).sum(axis=1)

    def loss(self, x: Tensor, y=None) -> tuple[Tensor, dict]:
        """Mean NLL in nats per image."""
        nll = -self.log_prob(x, y).mean()
        return nll, {"loss": nll.detach(), "nll": nll.detach()}

    @tl.no_grad()
    def _fill(self, x: Tensor, start: int, y, generator) -> Tensor:
        """Draw pixels start..H W - 1 in raster order, one network pass each."""
        w = self.image_size
        for k in range(start, w * w):
            i, j = divmod(k, w)
            p = tl.sigmoid(self(x, y)[:, :, i, j])                    # (n, C)
            x[:, :, i, j] = tl.bernoulli(p, generator=generator)
        return x

    def sample(self, n: int, generator=None, y=None) -> Tensor:
        """n images (n, C, H, W) by ancestral sampling (H W passes); y: n class labels."""
        x = tl.zeros(n, self.in_channels, self.image_size, self.image_size,
                     dtype=self._dtype(), device=self._device())
        return self._fill(x, 0, self._labels(y, n), generator)

    def complete(self, x: Tensor, num_rows: int, generator=None, y=None) -> Tensor:
        """Keep the first num_rows rows of x and sample the rest from p(rest | those rows)."""
        _check_image(f"{type(self).__name__}.complete", x, self.in_channels, self.image_size)
        if not 0 <= num_rows <= self.image_size:
            raise ValueError(f"{type(self).__name__}.complete: num_rows must be in "
                             f"[0, {self.image_size}], got {num_rows}")
        x = x.detach().to(self._dtype()).clone()
        return self._fill(x, num_rows * self.image_size, self._labels(y, len(x)), generator)

    def _dtype(self):
        return next(self.parameters()).dtype

    def _device(self):
        return next(self.parameters()).device


@dataclass(frozen=True)
class PixelCNNConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_channels: int = 32
    num_layers: int = 5          # residual 3x3 mask-B layers after the 7x7 mask-A one
    kernel_size: int = 7         # the first (mask A) layer
    num_classes: int = 0         # > 0: class-conditional, a learned bias per class and layer


class PixelCNN(_AutoregressiveImage):
    """PixelCNN (van den Oord et al. 2016a, Sec. 3.4): 7x7 mask-A conv, residual blocks
    h <- h + MaskB3x3(relu(h)) (their Fig. 5, at one width), then relu-1x1-relu-1x1 to one
    Bernoulli logit per pixel and channel. forward(x) -> logits of x's shape."""

    def __init__(self, config: PixelCNNConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, PixelCNNConfig, config, overrides)
        c, h = cfg.in_channels, cfg.hidden_channels
        self.in_channels, self.image_size, self.num_classes = c, cfg.image_size, cfg.num_classes
        self.input = MaskedConv2d(c, h, cfg.kernel_size, "A")
        self.layers = nn.ModuleList([MaskedConv2d(h, h, 3, "B") for _ in range(cfg.num_layers)])
        self.out_hidden = nn.Conv2d(h, h, 1)
        self.out = nn.Conv2d(h, c, 1)
        self.embed = (nn.Embedding(cfg.num_classes, h * (cfg.num_layers + 1))
                      if cfg.num_classes else None)

    def forward(self, x: Tensor, y=None) -> Tensor:
        _check_image("PixelCNN", x, self.in_channels, self.image_size)
        y = self._labels(y, len(x))
        h = self.input(x)                                             # (B, h, H, W)
        cond = None
        if y is not None:   # a per-class bias, constant over the image: keeps causality
            cond = self.embed(tl.tensor(y)).reshape(len(x), -1, h.shape[1], 1, 1)
            h = h + cond[:, 0]
        for k, layer in enumerate(self.layers):
            r = layer(tl.relu(h))
            h = h + (r if cond is None else r + cond[:, k + 1])
        return self.out(tl.relu(self.out_hidden(tl.relu(h))))        # (B, C, H, W)


class _GatedLayer(nn.Module):
    """One Gated PixelCNN layer (van den Oord et al. 2016b, Fig. 2), p channels.

    Vertical: a (k//2 + 1) x k conv over rows <= r (full width), gated.
    Horizontal: a 1 x (k//2 + 1) conv over columns <= c of row r (< c in the first layer),
    plus a 1x1 conv of the vertical features shifted down one row (so row r gets rows < r
    only), gated, 1x1, and a residual connection (not in the first layer)."""

    def __init__(self, in_channels: int, p: int, k: int, first: bool, num_classes: int):
        super().__init__()
        self.k, self.first = k, first
        self.v_conv = nn.Conv2d(in_channels, 2 * p, (k // 2 + 1, k))
        self.h_conv = nn.Conv2d(in_channels, 2 * p, (1, k // 2 + 1))
        mask = np.ones((1, 1, 1, k // 2 + 1), dtype=np.float32)
        if first:
            mask[..., -1] = 0.0                       # mask A: the pixel itself is not seen
        self.register_buffer("h_mask", tl.tensor(mask), persistent=False)
        self.v_to_h = nn.Conv2d(2 * p, 2 * p, 1)
        self.h_out = nn.Conv2d(p, p, 1)
        self.embed = nn.Embedding(num_classes, 2 * p) if num_classes else None

    @staticmethod
    def _gate(a: Tensor) -> Tensor:
        """tanh(a_f) * sigmoid(a_g), eq. 2; a (B, 2p, H, W) -> (B, p, H, W)."""
        p = a.shape[1] // 2
        return tl.tanh(a[:, :p]) * tl.sigmoid(a[:, p:])

    def forward(self, v: Tensor, h: Tensor, y=None) -> tuple[Tensor, Tensor]:
        k2 = self.k // 2
        v_feat = self.v_conv(tl.pad(v, (k2, k2, k2, 0)))              # (B, 2p, H, W)
        w = self.h_conv.weight * self.h_mask.to(self.h_conv.weight.dtype)
        h_feat = conv2d(tl.pad(h, (k2, 0, 0, 0)), w, self.h_conv.bias)   # (B, 2p, H, W)
        v_down = tl.pad(v_feat, (0, 0, 1, 0))[:, :, :-1]             # row r <- row r - 1
        h_feat = h_feat + self.v_to_h(v_down)
        if y is not None:                                            # eq. 4: V^T one-hot(y)
            bias = self.embed(tl.tensor(y)).reshape(len(y), -1, 1, 1)
            v_feat, h_feat = v_feat + bias, h_feat + bias
        h_new = self.h_out(self._gate(h_feat))
        return self._gate(v_feat), (h_new if self.first else h + h_new)


@dataclass(frozen=True)
class GatedPixelCNNConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_channels: int = 32
    num_layers: int = 5          # gated layers, the first with kernel_size 7 (mask A)
    kernel_size: int = 3         # the later layers
    first_kernel_size: int = 7
    num_classes: int = 0         # > 0: class-conditional (eq. 4)


class GatedPixelCNN(_AutoregressiveImage):
    """Gated PixelCNN (van den Oord et al. 2016b): gated vertical + horizontal stacks with no
    blind spot, then relu-1x1-relu-1x1 on the horizontal stack to per-pixel logits.
    forward(x, y=None) -> logits of x's shape; sample(n, y=...) when conditional."""

    def __init__(self, config: GatedPixelCNNConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, GatedPixelCNNConfig, config, overrides)
        for name in ("kernel_size", "first_kernel_size"):
            if getattr(cfg, name) % 2 != 1:
                raise ValueError(f"GatedPixelCNN: {name} must be odd, got {getattr(cfg, name)}")
        if cfg.num_layers < 1:
            raise ValueError(f"GatedPixelCNN: num_layers must be >= 1, got {cfg.num_layers}")
        c, p = cfg.in_channels, cfg.hidden_channels
        self.in_channels, self.image_size, self.num_classes = c, cfg.image_size, cfg.num_classes
        self.layers = nn.ModuleList(
            [_GatedLayer(c, p, cfg.first_kernel_size, True, cfg.num_classes)]
            + [_GatedLayer(p, p, cfg.kernel_size, False, cfg.num_classes)
               for _ in range(cfg.num_layers - 1)])
        self.out_hidden = nn.Conv2d(p, p, 1)
        self.out = nn.Conv2d(p, c, 1)

    def forward(self, x: Tensor, y=None) -> Tensor:
        _check_image("GatedPixelCNN", x, self.in_channels, self.image_size)
        y = self._labels(y, len(x))
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, y)                                     # (B, p, H, W) each
        return self.out(tl.relu(self.out_hidden(tl.relu(h))))        # (B, C, H, W)
