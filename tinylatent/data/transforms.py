"""Image augmentations as composable transforms (the SimCLR / rotation / jigsaw toolbox).

    aug = Compose([RandomResizedCrop(28, scale=(0.5, 1.0)), RandomHorizontalFlip(),
                   RandomRotation(15), GaussianNoise(0.05)])
    views = aug(images, generator=np.random.default_rng(0))

Conventions, the same for every transform:
- input: one image (C, H, W) or a batch (B, C, H, W), as a NumPy/CuPy array or a Tensor;
  the output has the same kind (a Tensor comes back as a new Tensor without gradient
  history: augmentation is data preparation). Values are floats, [0, 1] for the colour
  transforms; integer images are converted to float32 first.
- randomness: `transform(x, generator=None)`; generator is a NumPy `Generator`, a tinylatent
  `Generator`, an int seed, or None for tinylatent's default stream (`tl.manual_seed`).
  Every image of a batch gets its own random parameters; one generator and one input give
  one output, on any machine. Parameters are drawn on the host and the pixel work runs on
  the images' device (NumPy or CuPy), so CPU and GPU draw the same augmentations.
- geometry: pixel centres sit at integer coordinates; warps sample bilinearly with
  align_corners=False semantics and fill what falls outside the input with `fill`.
  Angles are in degrees, counter-clockwise, as in torchvision.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..backend import array_module
from ..tensor import Tensor
from .dataset import TensorDataset

__all__ = ["Compose", "RandomResizedCrop", "RandomHorizontalFlip", "RandomRot90", "rot90",
           "RandomRotation", "RandomAffine", "GaussianNoise", "Cutout", "RandomErasing",
           "ColorJitter", "Grayscale", "RandomGrayscale", "affine_grid_sample",
           "rgb_to_hsv", "hsv_to_rgb", "as_numpy_generator", "ImageTensorDataset"]

# ITU-R BT.601 luma weights, as PIL's and torchvision's rgb_to_grayscale
LUMA = (0.299, 0.587, 0.114)


def as_numpy_generator(generator) -> np.random.Generator:
    """A NumPy Generator from None / an int seed / a NumPy Generator / a tinylatent Generator."""
    if isinstance(generator, np.random.Generator):
        return generator
    if hasattr(generator, "_np"):
        return generator._np
    if generator is None:
        from ..random import default_generator
        return default_generator._np
    return np.random.default_rng(generator)


def _unpack(x, name: str):
    """(batch (B, C, H, W) float array, was_single, was_tensor)."""
    is_tensor = isinstance(x, Tensor)
    data = x.array if is_tensor else x
    if not hasattr(data, "ndim") or data.ndim not in (3, 4):
        raise ValueError(f"{name}: expected an image (C, H, W) or a batch (B, C, H, W), got "
                         f"shape {getattr(data, 'shape', type(data).__name__)}")
    if data.dtype.kind not in "f":
        data = data.astype(np.float32)
    single = data.ndim == 3
    return (data[None] if single else data), single, is_tensor


def _pack(batch, single: bool, is_tensor: bool):
    out = batch[0] if single else batch
    return Tensor._make(out) if is_tensor else out


class Transform:
    """Base class: subclasses define `apply(batch (B, C, H, W), rng) -> batch`."""

    def __call__(self, x, generator=None):
        batch, single, is_tensor = _unpack(x, type(self).__name__)
        return _pack(self.apply(batch, as_numpy_generator(generator)), single, is_tensor)

    def apply(self, batch, rng: np.random.Generator):
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply `transforms` in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, x, generator=None):
        rng = as_numpy_generator(generator)
        for t in self.transforms:
            x = t(x, generator=rng)
        return x


def affine_grid_sample(batch, matrices, out_hw: tuple | None = None, fill: float = 0.0):
    """Warp each image by its own affine map, sampling bilinearly.

    matrices: (B, 2, 3), mapping an output pixel's (x, y, 1) to the input point it reads
    (the inverse of the visual motion). Points outside the input read `fill`.
    batch (B, C, H, W) -> (B, C, oh, ow).

    The image gets a one-pixel border of `fill` and every tap index is clipped into the
    bordered image, so a tap outside reads the border: four flat gathers over all channels
    at once and no mask (half the time of fancy-indexing each tap with a mask, B = 128 at
    28 x 28).
    """
    xp = array_module(batch)
    B, C, H, W = batch.shape
    oh, ow = out_hw if out_hw is not None else (H, W)
    dtype = batch.dtype if batch.dtype.kind == "f" else np.dtype(np.float64)
    m = xp.asarray(matrices, dtype=np.float64)
    ys, xs = xp.meshgrid(xp.arange(oh, dtype=np.float64), xp.arange(ow, dtype=np.float64),
                         indexing="ij")                                    # (oh, ow) each
    src_x = m[:, 0, 0, None, None] * xs + m[:, 0, 1, None, None] * ys + m[:, 0, 2, None, None]
    src_y = m[:, 1, 0, None, None] * xs + m[:, 1, 1, None, None] * ys + m[:, 1, 2, None, None]
    x0, y0 = xp.floor(src_x), xp.floor(src_y)                              # (B, oh, ow)
    wx = (src_x - x0).reshape(B, 1, oh * ow).astype(dtype)
    wy = (src_y - y0).reshape(B, 1, oh * ow).astype(dtype)
    # integer taps in the bordered image (index 0 and H+1 / W+1 are the fill border)
    x0 = (x0.astype(np.int64) + 1).reshape(B, 1, oh * ow)
    y0 = (y0.astype(np.int64) + 1).reshape(B, 1, oh * ow)
    bordered = xp.full((B, C, H + 2, W + 2), fill, dtype=dtype)
    bordered[:, :, 1:-1, 1:-1] = batch
    flat = bordered.reshape(B, C, (H + 2) * (W + 2))

    def tap(dy, dx):                                                       # (B, C, oh*ow)
        idx = (y0 + dy).clip(0, H + 1) * (W + 2) + (x0 + dx).clip(0, W + 1)
        return xp.take_along_axis(flat, idx, axis=2)
    out = (1 - wy) * ((1 - wx) * tap(0, 0) + wx * tap(0, 1)) \
        + wy * ((1 - wx) * tap(1, 0) + wx * tap(1, 1))
    return out.reshape(B, C, oh, ow).astype(batch.dtype, copy=False)


def _rotation_about_centre(angle_deg, H: int, W: int, scale=1.0, shear_deg=(0.0, 0.0),
                           translate=(0.0, 0.0)) -> np.ndarray:
    """The (2, 3) output->input map of a visual rotation/scale/shear/shift about the centre.

    Forward (visual) map on (x, y) with y pointing down: p' = c + t + A (p - c), where
    A = R(angle) Sh(shear) s and a counter-clockwise angle on screen is a clockwise one in
    these y-down coordinates. We return its inverse, p = c + A^-1 (p' - c - t).
    """
    a = math.radians(angle_deg)
    rotation = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    shear = np.array([[1.0, math.tan(math.radians(shear_deg[0]))],
                      [math.tan(math.radians(shear_deg[1])), 1.0]])
    A = rotation @ shear * scale
    A_inv = np.linalg.inv(A)
    c = np.array([(W - 1) / 2, (H - 1) / 2])
    offset = c - A_inv @ (c + np.asarray(translate, dtype=np.float64))
    return np.concatenate([A_inv, offset[:, None]], axis=1)


class RandomResizedCrop(Transform):
    """Crop a random area fraction in `scale` with aspect ratio in `ratio`, resize to `size`.

    The sampling is torchvision's (Szegedy et al. 2015, "Inception" crops; the SimCLR default):
    up to 10 tries of area ~ U(scale) * H*W and log-ratio ~ U(log ratio); else the whole
    image clipped to the ratio range, centred. Resizing is bilinear.
    """

    def __init__(self, size: "int | tuple", scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def _box(self, H: int, W: int, rng) -> tuple:
        area = H * W
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= W and 0 < h <= H:
                return int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), h, w
        aspect = W / H
        if aspect < min(self.ratio):
            w, h = W, int(round(W / min(self.ratio)))
        elif aspect > max(self.ratio):
            h, w = H, int(round(H * max(self.ratio)))
        else:
            h, w = H, W
        return (H - h) // 2, (W - w) // 2, h, w

    def apply(self, batch, rng):
        B, _, H, W = batch.shape
        oh, ow = self.size
        matrices = np.zeros((B, 2, 3))
        for i in range(B):
            top, left, h, w = self._box(H, W, rng)
            # output pixel x reads input left + (x + 0.5) * w / ow - 0.5 (align_corners=False)
            matrices[i] = [[w / ow, 0, left + 0.5 * w / ow - 0.5],
                           [0, h / oh, top + 0.5 * h / oh - 0.5]]
        return affine_grid_sample(batch, matrices, (oh, ow))


class RandomHorizontalFlip(Transform):
    """Mirror left-right with probability p."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def apply(self, batch, rng):
        flip = array_module(batch).asarray(rng.random(len(batch)) < self.p)
        out = batch.copy()
        out[flip] = batch[flip][..., ::-1]
        return out


def rot90(x, k: "int | Sequence[int]"):
    """Rotate by k * 90 degrees counter-clockwise (exact): k an int, or one per batch image."""
    batch, single, is_tensor = _unpack(x, "rot90")
    ks = np.broadcast_to(np.asarray(k, dtype=np.int64) % 4, (len(batch),))
    if batch.shape[-1] != batch.shape[-2] and np.any(ks % 2 == 1):
        raise ValueError(f"rot90: odd multiples of 90 degrees need square images, got "
                         f"{batch.shape[-2]}x{batch.shape[-1]}")
    xp = array_module(batch)
    out = xp.stack([xp.rot90(img, int(kk), axes=(-2, -1)) for img, kk in zip(batch, ks)])
    return _pack(out, single, is_tensor)


class RandomRot90(Transform):
    """Rotate each image by k * 90 degrees, k uniform in {0, 1, 2, 3} (Gidaris et al. 2018).

    For the rotation pretext task the labels are needed too: `sample(x, generator)` returns
    (rotated, k) with k (B,) int64.
    """

    def sample(self, x, generator=None) -> tuple:
        batch, single, is_tensor = _unpack(x, "RandomRot90")
        k = as_numpy_generator(generator).integers(0, 4, size=len(batch))
        return _pack(rot90(batch, k), single, is_tensor), (k[0] if single else k)

    def apply(self, batch, rng):
        return rot90(batch, rng.integers(0, 4, size=len(batch)))


class RandomAffine(Transform):
    """Rotation ~ U(-degrees, degrees), shift up to translate * (W, H), scale ~ U(scale),
    shear ~ U(-shear, shear) degrees along x; about the image centre, bilinear."""

    def __init__(self, degrees: float = 0.0, translate=(0.0, 0.0), scale=(1.0, 1.0),
                 shear: float = 0.0, fill: float = 0.0):
        self.degrees, self.translate, self.scale = degrees, tuple(translate), tuple(scale)
        self.shear, self.fill = shear, fill

    def apply(self, batch, rng):
        B, _, H, W = batch.shape
        matrices = np.zeros((B, 2, 3))
        for i in range(B):
            angle = rng.uniform(-self.degrees, self.degrees)
            shift = (rng.uniform(-1, 1) * self.translate[0] * W,
                     rng.uniform(-1, 1) * self.translate[1] * H)
            s = rng.uniform(*self.scale)
            shear = rng.uniform(-self.shear, self.shear)
            matrices[i] = _rotation_about_centre(angle, H, W, s, (shear, 0.0), shift)
        return affine_grid_sample(batch, matrices, fill=self.fill)


class RandomRotation(RandomAffine):
    """Rotate by an angle ~ U(-degrees, degrees) about the centre, bilinear; corners get fill."""

    def __init__(self, degrees: float, fill: float = 0.0):
        super().__init__(degrees=degrees, fill=fill)


class GaussianNoise(Transform):
    """x + std * N(0, 1), clipped to `clip` = (low, high) if given."""

    def __init__(self, std: float = 0.1, clip: tuple | None = (0.0, 1.0)):
        self.std, self.clip = std, clip

    def apply(self, batch, rng):
        noise = rng.standard_normal(batch.shape).astype(batch.dtype)
        xp = array_module(batch)
        out = batch + self.std * xp.asarray(noise)
        return out.clip(*self.clip) if self.clip is not None else out


def _erase(batch, i: int, top: int, left: int, h: int, w: int, value) -> None:
    batch[i, :, top:top + h, left:left + w] = value


class Cutout(Transform):
    """Zero a size x size square at a uniform centre, clipped at the border (DeVries &
    Taylor 2017), on every image."""

    def __init__(self, size: int, value: float = 0.0):
        self.size, self.value = size, value

    def apply(self, batch, rng):
        out = batch.copy()
        _, _, H, W = batch.shape
        for i in range(len(batch)):
            cy, cx = rng.integers(0, H), rng.integers(0, W)
            top, left = max(0, cy - self.size // 2), max(0, cx - self.size // 2)
            bottom, right = min(H, cy + (self.size + 1) // 2), min(W, cx + (self.size + 1) // 2)
            _erase(out, i, top, left, bottom - top, right - left, self.value)
        return out


class RandomErasing(Transform):
    """With probability p, fill a random rectangle of area fraction ~ U(scale) and aspect
    ratio ~ logU(ratio) with `value`, or with N(0, 1) noise if value="random"
    (Zhong et al. 2020, Alg. 1)."""

    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3),
                 value: "float | str" = 0.0):
        self.p, self.scale, self.ratio, self.value = p, tuple(scale), tuple(ratio), value

    def apply(self, batch, rng):
        out = batch.copy()
        B, C, H, W = batch.shape
        for i in range(B):
            if rng.random() >= self.p:
                continue
            for _ in range(10):
                area = H * W * rng.uniform(*self.scale)
                aspect = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
                h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
                if 0 < h < H and 0 < w < W:
                    top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
                    value = (array_module(batch).asarray(rng.standard_normal((C, h, w)))
                             if self.value == "random" else self.value)
                    _erase(out, i, top, left, h, w, value)
                    break
        return out


def rgb_to_hsv(rgb):
    """(..., 3, H, W) RGB in [0, 1] -> HSV in [0, 1] (hue as a fraction of the colour wheel)."""
    xp = array_module(rgb)
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    maxc, minc = rgb.max(axis=-3), rgb.min(axis=-3)
    v, delta = maxc, maxc - minc
    s = xp.where(maxc > 0, delta / xp.where(maxc > 0, maxc, 1), 0)
    d = xp.where(delta > 0, delta, 1)
    h = xp.where(maxc == r, (g - b) / d, xp.where(maxc == g, 2 + (b - r) / d, 4 + (r - g) / d))
    h = xp.where(delta > 0, (h / 6) % 1.0, 0)
    return xp.stack([h, s, v], axis=-3)


def hsv_to_rgb(hsv):
    """Inverse of rgb_to_hsv (the standard sextant formula)."""
    xp = array_module(hsv)
    h, s, v = hsv[..., 0, :, :], hsv[..., 1, :, :], hsv[..., 2, :, :]
    i = xp.floor(h * 6) % 6
    f = h * 6 - xp.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    channels = []
    for c in range(3):
        out = xp.zeros_like(h)
        for k, triple in enumerate(choices):
            out = xp.where(i == k, triple[c], out)
        channels.append(out)
    return xp.stack(channels, axis=-3)


def _grayscale(batch):
    """(B, 3, H, W) -> (B, 1, H, W) luma."""
    return (LUMA[0] * batch[:, 0] + LUMA[1] * batch[:, 1] + LUMA[2] * batch[:, 2])[:, None]


def _check_rgb(batch, name: str) -> None:
    if batch.shape[1] != 3:
        raise ValueError(f"{name}: needs RGB images with 3 channels, got {batch.shape[1]} "
                         f"(shape {tuple(batch.shape)})")


class ColorJitter(Transform):
    """Random brightness, contrast, saturation (factors ~ U(1 - a, 1 + a)) and hue shift
    (~ U(-hue, hue) of the colour wheel, hue <= 0.5), applied in that fixed order to RGB
    images in [0, 1], as torchvision's adjust_* functions; results clipped to [0, 1].
    Grey images (1 channel) take brightness and contrast only (their grey level is the
    channel itself, as torchvision's adjust_contrast on a grey tensor)."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0,
                 saturation: float = 0.0, hue: float = 0.0):
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"ColorJitter: hue must be in [0, 0.5], got {hue}")
        self.brightness, self.contrast = brightness, contrast
        self.saturation, self.hue = saturation, hue

    def apply(self, batch, rng):
        grey = batch.shape[1] == 1
        if not grey or self.saturation or self.hue:
            _check_rgb(batch, "ColorJitter (saturation and hue)" if grey else "ColorJitter")
        B = len(batch)
        xp = array_module(batch)

        def factors(a):
            return xp.asarray(rng.uniform(max(0.0, 1 - a), 1 + a, size=B)[:, None, None, None],
                              dtype=batch.dtype)

        out = batch
        if self.brightness:
            out = (out * factors(self.brightness)).clip(0, 1)
        if self.contrast:
            # blend with the image's mean grey level
            mean = (out if grey else _grayscale(out)).mean(axis=(1, 2, 3), keepdims=True)
            f = factors(self.contrast)
            out = (f * out + (1 - f) * mean).clip(0, 1)
        if self.saturation:
            f = factors(self.saturation)
            out = (f * out + (1 - f) * _grayscale(out)).clip(0, 1)
        if self.hue:
            shift = xp.asarray(rng.uniform(-self.hue, self.hue, size=B)[:, None, None])
            hsv = rgb_to_hsv(out)
            hsv[:, 0] = (hsv[:, 0] + shift) % 1.0
            out = hsv_to_rgb(hsv).astype(batch.dtype)
        return out


class Grayscale(Transform):
    """RGB -> luma (0.299 R + 0.587 G + 0.114 B), with 1 or 3 (repeated) output channels."""

    def __init__(self, num_output_channels: int = 1):
        self.num_output_channels = num_output_channels

    def apply(self, batch, rng):
        _check_rgb(batch, "Grayscale")
        gray = _grayscale(batch)
        return gray.repeat(self.num_output_channels, axis=1)


class RandomGrayscale(Transform):
    """Grayscale with probability p, keeping 3 channels (SimCLR uses p = 0.2)."""

    def __init__(self, p: float = 0.1):
        self.p = p

    def apply(self, batch, rng):
        _check_rgb(batch, "RandomGrayscale")
        pick = array_module(batch).asarray(rng.random(len(batch)) < self.p)
        out = batch.copy()
        out[pick] = _grayscale(batch[pick]).repeat(3, axis=1)
        return out


class ImageTensorDataset(TensorDataset):
    """A TensorDataset whose first tensor is images, passed through `self.transform` (if not
    None) on every draw, a whole batch at a time, so random augmentations differ per epoch."""

    transform = None

    def take(self, indices: np.ndarray):
        x, *rest = super().take(indices)
        if self.transform is not None:
            x = Tensor._make(self.transform(x.array))
        return (x, *rest)

    def __getitem__(self, index):
        x, *rest = super().__getitem__(index)
        if self.transform is not None:
            x = Tensor._make(self.transform(x.array[None])[0])
        return (x, *rest)
