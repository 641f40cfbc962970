"""Colorization as a pretext task (Zhang, Isola & Efros 2016, "Colorful image colorization";
family 8 of MISSION.md).

An image is converted to CIE Lab (sRGB, D65 white); a network sees the lightness L only and
predicts, for every pixel, a distribution Z_hat over Q quantised ab colours: the ab plane cut
into a grid of step 10 (Sec. 2.1), keeping the Q cells that some sRGB colour reaches (the
paper's 313 "in gamut"; 261 here, see ab_bins). The target Z is the "soft encoding" of the
true ab: its 5 nearest bin centres weighted by a Gaussian of sigma = 5 around it. The loss is
the cross-entropy weighted by class rebalancing (eq. 2-4):

    L_cl(Z_hat, Z) = - sum_{h,w} v(Z_hw) sum_q Z_hwq log Z_hat_hwq               (eq. 2)
    v(Z_hw) = w_{q*},  q* = argmax_q Z_hwq                                       (eq. 3)
    w ~ ((1 - lambda) p_tilde + lambda / Q)^(-1),  sum_q p_tilde_q w_q = 1        (eq. 4)

with p_tilde the empirical distribution of ab bins in the training set smoothed by a Gaussian
(sigma = 5) in ab space and lambda = 1/2 (a mix with the uniform distribution): rare,
saturated colours weigh more, against the desaturated average a plain loss gives. Here the
loss is averaged (not summed) over pixels. `fit_rebalancing(images)` sets w from training
images; until then w = 1. Decoding is the annealed mean (eq. 5):

    H(Z) = E[f_T(Z)],  f_T(z) = exp(log z / T) / sum_q exp(log z_q / T),  T = 0.38

The encoder (conv blocks on L) is the representation a linear probe judges (`encode`).

    model = Colorization(hidden_channels=(32, 64))
    model.fit_rebalancing(x_train)        # x: (B, 3, H, W) sRGB in [0, 1]
    loss, metrics = model.loss(x)         # metrics["accuracy"]: argmax bin == argmax Z
    rgb = model.colorize(x)               # (B, 3, H, W) from the L of x
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .. import nn, ops
from ..autograd import no_grad
from ..backend import array_module
from ..tensor import Tensor
from .config import resolve_config
from .pretext import conv_block

__all__ = ["rgb_to_lab", "lab_to_rgb", "ab_bins", "soft_encode", "quantize",
           "rebalancing_weights",
           "annealed_mean", "ab_error_baselines", "ColorizationConfig", "Colorization"]

# sRGB primaries -> CIE XYZ, and the D65 reference white (IEC 61966-2-1)
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6 / 29


def rgb_to_lab(rgb):
    """sRGB in [0, 1], channels on axis -3 (..., 3, H, W) -> CIE Lab (..., 3, H, W):
    linearise (gamma), XYZ = M rgb_lin, then L = 116 f(Y/Yn) - 16, a = 500 (f(X/Xn) - f(Y/Yn)),
    b = 200 (f(Y/Yn) - f(Z/Zn)), f(t) = t^(1/3) above delta^3, linear below (delta = 6/29).
    Arrays (NumPy / CuPy) in and out; L in [0, 100]."""
    xp = array_module(rgb)
    if rgb.ndim < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"rgb_to_lab: expected (..., 3, H, W), got {rgb.shape}")
    lin = xp.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = xp.asarray(_RGB_TO_XYZ / _WHITE[:, None], dtype=rgb.dtype)
    xyz = xp.einsum("ij,...jhw->...ihw", m, lin)                 # (..., 3, H, W) / white
    f = xp.where(xyz > _DELTA ** 3, xp.cbrt(xp.maximum(xyz, _DELTA ** 3)),
                 xyz / (3 * _DELTA ** 2) + 4 / 29)
    fx, fy, fz = f[..., 0, :, :], f[..., 1, :, :], f[..., 2, :, :]
    return xp.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-3)


def lab_to_rgb(lab, clip: bool = True):
    """The inverse of `rgb_to_lab`: (..., 3, H, W) Lab -> sRGB, clipped to [0, 1] unless
    clip=False (colours outside the sRGB gamut have no exact sRGB value)."""
    xp = array_module(lab)
    fy = (lab[..., 0, :, :] + 16) / 116
    f = xp.stack([fy + lab[..., 1, :, :] / 500, fy, fy - lab[..., 2, :, :] / 200], axis=-3)
    xyz = xp.where(f > _DELTA, f ** 3, 3 * _DELTA ** 2 * (f - 4 / 29))
    m = xp.asarray(np.linalg.inv(_RGB_TO_XYZ) * _WHITE[None], dtype=lab.dtype)
    lin = xp.einsum("ij,...jhw->...ihw", m, xyz)
    rgb = xp.where(lin <= 0.0031308, 12.92 * lin,
                   1.055 * xp.maximum(lin, 0.0031308) ** (1 / 2.4) - 0.055)
    return xp.clip(rgb, 0, 1) if clip else rgb


@functools.lru_cache(maxsize=4)
def ab_bins(step: float = 10.0) -> np.ndarray:
    """(Q, 2) centres (a, b) of the ab grid cells of size `step` that in-gamut sRGB colours
    fall into (nearest centre), found from a 64^3 grid over the RGB cube, sorted. At step 10
    this gives Q = 261 (the paper reports 313 for its gamut; it does not say how the cells
    were assigned, e.g. cells touched vs centres rounded to)."""
    g = np.linspace(0, 1, 64)
    rgb = np.stack(np.meshgrid(g, g, g, indexing="ij")).reshape(3, 1, -1)   # (3, 1, 64^3)
    ab = rgb_to_lab(rgb)[1:, 0].T                                          # (64^3, 2)
    cells = np.unique(np.round(ab / step).astype(np.int64), axis=0)
    return (cells * step).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _bin_table(step: float) -> tuple:
    """(table (G, G) int64: bin index of grid cell (i, j) or -1 out of gamut, offset)."""
    cells = np.round(ab_bins(step) / step).astype(np.int64)
    offset = int(np.abs(cells).max()) + 3                  # room for the 5 x 5 window
    table = np.full((2 * offset + 1,) * 2, -1, np.int64)
    table[cells[:, 0] + offset, cells[:, 1] + offset] = np.arange(len(cells))
    return table, offset


def soft_encode(ab, step: float = 10.0, neighbours: int = 5, sigma: float = 5.0) -> tuple:
    """Soft encoding (Sec. 2.1) of ab (N, 2) on the `ab_bins(step)` grid, kept sparse:
    (index (N, k) of the k = `neighbours` nearest bin centres, weight (N, k) proportional to
    exp(-d^2 / (2 sigma^2)) and summing to 1), nearest first. The neighbours are searched in
    the 5 x 5 grid cells around the cell of ab (on a grid the 5 nearest lie within 1.6 steps;
    beside the gamut's edge a farther bin would weigh < exp(-8) at sigma = step / 2)."""
    xp = array_module(ab)
    table, offset = _bin_table(step)
    table = xp.asarray(table)
    centre = xp.rint(ab / step).astype(np.int64)                           # (N, 2)
    d = xp.arange(-2, 3)
    window = xp.stack(xp.meshgrid(d, d, indexing="ij"), -1).reshape(-1, 2)   # (25, 2)
    cells = xp.clip(centre[:, None] + window[None] + offset, 0, len(table) - 1)  # (N, 25, 2)
    ids = table[cells[..., 0], cells[..., 1]]                              # (N, 25), -1 = none
    d2 = (((cells - offset) * step - ab[:, None]) ** 2).sum(-1)
    d2 = xp.where(ids < 0, 1e30, d2)                   # no bin there: never among the nearest
    k = min(neighbours, 25)
    near = xp.argsort(d2, axis=1)[:, :k]                                   # (N, k) nearest first
    d2 = xp.take_along_axis(d2, near, 1)
    w = xp.exp(-(d2 - d2[:, :1]) / (2 * sigma ** 2))    # shifted by the nearest: no underflow
    return xp.take_along_axis(ids, near, 1), (w / w.sum(1, keepdims=True)).astype(ab.dtype)


def quantize(ab, step: float = 10.0):
    """Hard quantisation: index (N,) of the nearest `ab_bins(step)` centre to each ab (N, 2)."""
    return soft_encode(ab, step, neighbours=1)[0][:, 0]


def rebalancing_weights(counts, centres, lam: float = 0.5, sigma: float = 5.0):
    """Class-rebalancing weights of eq. 4 from bin counts (Q,): p = counts / sum, smoothed
    p_tilde_q = sum_r G(c_q - c_r) p_r (a Gaussian of sigma in ab space, each column
    normalised so no mass is lost), w = ((1 - lam) p_tilde + lam / Q)^(-1) scaled so that
    E_p_tilde[w] = sum_q p_tilde_q w_q = 1. Returns (w (Q,), p_tilde (Q,)) float64."""
    counts, centres = np.asarray(counts, np.float64), np.asarray(centres, np.float64)
    if counts.shape != (len(centres),) or counts.sum() <= 0 or (counts < 0).any():
        raise ValueError(f"rebalancing_weights: counts must be ({len(centres)},) non-negative "
                         f"with a positive sum, got shape {counts.shape}")
    if not 0 < lam <= 1:
        raise ValueError(f"rebalancing_weights: lam must lie in (0, 1], got {lam}")
    g = np.exp(-((centres[:, None] - centres[None]) ** 2).sum(-1) / (2 * sigma ** 2))
    p_tilde = (g / g.sum(0, keepdims=True)) @ (counts / counts.sum())
    w = 1.0 / ((1 - lam) * p_tilde + lam / len(centres))
    return w / (p_tilde @ w), p_tilde


def ab_error_baselines(x_train, x_test) -> dict:
    """Mean per-pixel ab distance on sRGB test images (N, 3, H, W) (NumPy) of two colour-blind
    predictions: gray (a = b = 0) and the training images' mean ab everywhere."""
    true = rgb_to_lab(np.asarray(x_test, np.float64))[:, 1:]
    mean_ab = rgb_to_lab(np.asarray(x_train, np.float64))[:, 1:].mean((0, 2, 3))
    return {"gray": float(np.sqrt((true ** 2).sum(1)).mean()),
            "mean colour": float(np.sqrt(((true - mean_ab[:, None, None]) ** 2).sum(1)).mean())}


def annealed_mean(logits: Tensor, centres, temperature: float = 0.38) -> Tensor:
    """Eq. 5: logits (B, Q, H, W) -> ab (B, 2, H, W), the mean of the re-tempered
    distribution softmax(log z / T) = softmax(logits / T) over the bin centres."""
    p = ops.softmax(logits / temperature, 1)
    c = Tensor._make(logits.xp.asarray(centres, dtype=logits.array.dtype))  # (Q, 2)
    return ops.einsum("bqhw,qc->bchw", p, c)


@dataclass(frozen=True)
class ColorizationConfig:
    image_size: int = 28
    hidden_channels: tuple = (32, 64)  # conv blocks on L (each halves H, W): the encoder
    grid_step: float = 10.0            # ab grid cell (the paper's 10: Q = 261 bins here)
    rebalance_lambda: float = 0.5      # eq. 4: mix with the uniform distribution
    rebalance_sigma: float = 5.0       # Gaussian smoothing of p in ab space
    temperature: float = 0.38          # annealed mean (Sec. 2.3)
    feature_size: int = 3              # encoder maps are average-pooled to this, for probes


class Colorization(nn.Module):
    """L -> conv blocks (encoder) -> transposed convs back to H x W -> a 1x1 conv over the
    decoded maps and L -> logits over the Q ab bins per pixel."""

    def __init__(self, config: ColorizationConfig | None = None, **overrides):
        super().__init__()
        cfg = resolve_config(self, ColorizationConfig, config, overrides)
        k = len(cfg.hidden_channels)
        if k < 1 or cfg.image_size % 2 ** k:
            raise ValueError(f"Colorization: image_size {cfg.image_size} must be divisible "
                             f"by 2^{k} for {k} pooling blocks")
        self.config = cfg
        self.register_buffer("centres", Tensor._make(ab_bins(cfg.grid_step)))   # (Q, 2)
        q = len(self.centres)
        self.register_buffer("class_weights", Tensor._make(np.ones(q, np.float32)))
        widths = [1, *cfg.hidden_channels]
        self.blocks = nn.ModuleList([conv_block(a, b) for a, b in zip(widths, widths[1:])])
        up = []
        for a, b in zip(widths[:0:-1], widths[-2:0:-1] + [widths[1]]):
            up += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*up)
        self.head = nn.Conv2d(widths[1] + 1, q, 1)
        self.pool = nn.AdaptiveAvgPool2d(cfg.feature_size)

    def lightness(self, x) -> Tensor:
        """(B, 1, H, W) network input L / 50 - 1 of sRGB (B, 3, H, W) or gray (B, 1, H, W)
        images (a gray value g is the sRGB colour (g, g, g))."""
        x = x[0] if isinstance(x, (tuple, list)) else x
        s = self.config.image_size
        if x.ndim != 4 or x.shape[1] not in (1, 3) or tuple(x.shape[2:]) != (s, s):
            raise ValueError(f"Colorization: expected images (B, 3 or 1, {s}, {s}), got "
                             f"{tuple(x.shape)}")
        a = x.detach().array
        a = a if a.shape[1] == 3 else a.repeat(3, 1)
        return Tensor._make(rgb_to_lab(a)[:, :1] / 50.0 - 1.0)

    def forward(self, light: Tensor) -> Tensor:
        """Logits (B, Q, H, W) from the network input `lightness(x)` (B, 1, H, W)."""
        h = light
        for block in self.blocks:
            h = block(h)
        return self.head(ops.cat([self.decoder(h), light], 1))

    def targets(self, x: Tensor) -> tuple:
        """Soft-encoded true ab of sRGB images, sparse: (bins (BHW, 5), Z at those bins
        (BHW, 5), v (BHW,) the eq. 3 weight of the most likely bin bins[:, 0])."""
        ab = rgb_to_lab(x.detach().array)[:, 1:]                            # (B, 2, H, W)
        ab = ab.transpose(0, 2, 3, 1).reshape(-1, 2)                        # (BHW, 2)
        bins, z = soft_encode(ab, self.config.grid_step)
        v = self.class_weights.array[bins[:, 0]]
        return Tensor._make(bins), Tensor._make(z), Tensor._make(v)

    def loss(self, batch) -> tuple:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"Colorization.loss: expected sRGB images (B, 3, H, W), got "
                             f"{tuple(x.shape)}")
        return self.rebalanced_nll(self(self.lightness(x)), self.targets(x))

    def rebalanced_nll(self, logits: Tensor, targets: tuple) -> tuple:
        """Eq. 2 averaged over pixels, from logits (B, Q, H, W) and `targets(x)`."""
        bins, z, v = targets
        q = logits.shape[1]
        logits = logits.permute(0, 2, 3, 1).reshape(-1, q)                 # (BHW, Q)
        # sum_q Z_q log Z_hat_q over the 5 bins where Z is non-zero
        log_z_hat = ops.take_along_axis(ops.log_softmax(logits, -1), bins.array, -1)
        nll = -(v * (z * log_z_hat).sum(-1)).mean()
        accuracy = (logits.detach().argmax(-1) == bins[:, 0]).float().mean()
        return nll, {"loss": nll.detach(), "accuracy": accuracy}

    @no_grad()
    def fit_rebalancing(self, x, batch_size: int = 500) -> np.ndarray:
        """Set the eq. 4 weights from sRGB training images (N, 3, H, W) (hard nearest-bin
        counts); returns the smoothed empirical distribution p_tilde (Q,)."""
        c = self.centres.array
        counts = np.zeros(len(c))
        for i in range(0, len(x), batch_size):
            a = x[i:i + batch_size]
            a = a.detach().array if isinstance(a, Tensor) else np.asarray(a)
            ab = rgb_to_lab(a)[:, 1:].transpose(0, 2, 3, 1).reshape(-1, 2)
            near = Tensor._make(quantize(ab, self.config.grid_step)).numpy_host()
            counts += np.bincount(near, minlength=len(c))
        cfg = self.config
        w, p_tilde = rebalancing_weights(counts, self.centres.numpy_host(),
                                         cfg.rebalance_lambda, cfg.rebalance_sigma)
        self.class_weights.array[...] = self.class_weights.xp.asarray(w, dtype=np.float32)
        return p_tilde

    @no_grad()
    def predict_ab(self, x, temperature: float | None = None) -> Tensor:
        """Annealed-mean ab (B, 2, H, W) of images (their L only is used)."""
        t = self.config.temperature if temperature is None else temperature
        return annealed_mean(self(self.lightness(x)), self.centres.array, t)

    @no_grad()
    def colorize(self, x, temperature: float | None = None) -> Tensor:
        """sRGB (B, 3, H, W): the L of x with the predicted annealed-mean ab."""
        light = (self.lightness(x).array + 1.0) * 50.0                      # L in [0, 100]
        lab = self.centres.xp.concatenate([light, self.predict_ab(x, temperature).array], 1)
        return Tensor._make(lab_to_rgb(lab).astype(np.float32))

    @no_grad()
    def ab_error(self, x, batch_size: int = 500) -> float:
        """Mean Euclidean distance in the ab plane (CIE units) per pixel between the
        annealed-mean prediction and the truth of sRGB images x (N, 3, H, W)."""
        total = 0.0
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            true = rgb_to_lab(xb.detach().array)[:, 1:]
            d = ((self.predict_ab(xb).array - true) ** 2).sum(1) ** 0.5
            total += float(d.sum())
        return total / (len(x) * x.shape[-1] * x.shape[-2])

    def encode(self, x) -> Tensor:
        """The last encoder block's maps, average-pooled to feature_size^2 cells and
        flattened: (B, C_K feature_size^2), frozen; colour or gray images."""
        with no_grad():
            h = self.lightness(x)
            for block in self.blocks:
                h = block(h)
            return self.pool(h).reshape(len(h), -1)          # (B, C, s, s) -> (B, C s^2)
