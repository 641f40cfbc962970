"""Contrastive multiview coding (Tian, Krishnan & Isola 2019, "Contrastive Multiview
Coding"), with the InfoNCE bound of van den Oord, Li & Vinyals 2018 ("Representation
Learning with Contrastive Predictive Coding", eq. 4).

Each image x_i is split into two views v1 = x_i^(1), v2 = x_i^(2), each with its own encoder
f_1, f_2 (no weights shared, sec. 3.1); z_k = normalize(g_k(f_k(v_k))) is view k's embedding.
A memory bank holds one unit vector per training image and view, M_1[i], M_2[i] (sec. 3.3,
following Wu et al. 2018). With K negatives j_1..j_K drawn uniformly from the other
images (never i itself) and temperature tau, the two-view loss (eq. 2-4, the softmax form
the paper's code calls "NCESoftmaxLoss") is

    L(V1, V2)_i = -log exp(z1_i . M_2[i] / tau) / (exp(z1_i . M_2[i] / tau)
                                                    + sum_k exp(z1_i . M_2[j_k] / tau))
    L = mean_i [ L(V1, V2)_i + L(V2, V1)_i ]                                   (eq. 4)

i.e. view 1 must pick its own image's view-2 memory among K + 1 (`info_nce` with per-query
negatives). Gradients reach the encoders only through z (the memory is a constant buffer);
after the loss, in training mode, each used slot moves toward the new embedding and is
renormalised (the paper's code, momentum m = 0.5):

    M_k[i] <- normalize(m M_k[i] + (1 - m) z_k_i)

Views (`views`): "halves" = the top and bottom halves of the image (default: the halves
share no pixel, so the only way to match them is what the two halves have in common - the
digit or garment identity, its slant and stroke width - which is the "shared information
between views" CMC argues is semantic); "gradient" = the image (luminance, the paper's L)
and its Sobel gradient magnitude (an edge map, the paper's "depth / edges"-style second
modality). Evaluation (sec. 4.1) freezes both encoders and probes f_1(v1), f_2(v2) or
their concatenation (`encode`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn, ops
from ..random import randn
from ..data.transforms import as_numpy_generator
from ..ops.contrastive import info_nce
from ..tensor import Tensor
from .config import resolve_config
from .simclr import conv_trunk

__all__ = ["CMC", "CMCConfig", "split_views", "sample_negatives"]

VIEWS = ("halves", "gradient")


def split_views(x, views: str = "halves") -> tuple:
    """The two views of images (B, C, H, W) as NumPy/CuPy arrays (data preparation):
    "halves": top rows [0, H/2) and bottom rows [H/2, H), each (B, C, H/2, W);
    "gradient": the image and its Sobel gradient magnitude sqrt(Gx^2 + Gy^2) / 4 (zero
    padding), both (B, C, H, W)."""
    a = x.array if isinstance(x, Tensor) else x
    if views == "halves":
        h = a.shape[2] // 2
        return a[:, :, :h], a[:, :, h:2 * h]
    if views != "gradient":
        raise ValueError(f"CMC: views must be one of {VIEWS}, got {views!r}")
    p = Tensor._make(a).xp.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))      # (B, C, H+2, W+2)
    H, W = a.shape[2:]
    s = lambda dy, dx: p[:, :, 1 + dy:1 + dy + H, 1 + dx:1 + dx + W]      # noqa: E731
    gx = (s(-1, 1) + 2 * s(0, 1) + s(1, 1)) - (s(-1, -1) + 2 * s(0, -1) + s(1, -1))
    gy = (s(1, -1) + 2 * s(1, 0) + s(1, 1)) - (s(-1, -1) + 2 * s(-1, 0) + s(-1, 1))
    return a, ((gx * gx + gy * gy) ** 0.5 / 4.0).astype(a.dtype)


def sample_negatives(indices, memory_size: int, num_negatives: int, rng) -> np.ndarray:
    """(B, K) int64 indices drawn uniformly from {0..N-1} minus each row's own index:
    j ~ U{0..N-2}, then j + 1 where j >= i, so the positive is never a negative."""
    i = np.asarray(indices, dtype=np.int64)[:, None]                        # (B, 1)
    j = rng.integers(0, memory_size - 1, size=(len(i), num_negatives))     # (B, K)
    return j + (j >= i)


@dataclass(frozen=True)
class CMCConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_channels: tuple = (32, 64)
    hidden_features: int = 128     # h = f_k(v_k), the representation probed
    latent_features: int = 64      # z = normalize(g_k(h)), the memory's width
    memory_size: int = 4000        # N, one memory slot per training image
    num_negatives: int = 1024      # K (the paper: 4096 - 16384 on ImageNet)
    temperature: float = 0.07      # tau (the paper's code)
    momentum: float = 0.5          # m of the memory update (the paper's code)
    views: str = "halves"


class CMC(nn.Module):
    """encoder1/encoder2 (conv trunk + Linear + ReLU), head1/head2 (Linear), and the
    memory buffers memory1, memory2 (N, latent_features) of unit rows."""

    def __init__(self, config: CMCConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = cfg = resolve_config(self, CMCConfig, config, overrides)
        if cfg.views not in VIEWS:
            raise ValueError(f"CMC: views must be one of {VIEWS}, got {cfg.views!r}")
        if not cfg.temperature > 0 or not 0 <= cfg.momentum < 1:
            raise ValueError(f"CMC: need temperature > 0 and 0 <= momentum < 1, got "
                             f"{cfg.temperature}, {cfg.momentum}")
        if cfg.memory_size < 2 or cfg.num_negatives < 1:
            raise ValueError(f"CMC: need memory_size >= 2 and num_negatives >= 1, got "
                             f"{cfg.memory_size}, {cfg.num_negatives}")
        s = cfg.image_size
        shape = (s // 2, s) if cfg.views == "halves" else (s, s)
        for k in (1, 2):
            trunk, width = conv_trunk(cfg.in_channels, shape, cfg.hidden_channels)
            setattr(self, f"encoder{k}", nn.Sequential(
                trunk, nn.Linear(width, cfg.hidden_features), nn.ReLU()))
            setattr(self, f"head{k}", nn.Linear(cfg.hidden_features, cfg.latent_features))
            # random unit vectors to start (Wu et al. 2018 / the CMC code: uniform, scaled)
            m = ops.normalize(randn(cfg.memory_size, cfg.latent_features), dim=-1)
            self.register_buffer(f"memory{k}", m.detach())

    def _check(self, x: Tensor) -> Tensor:
        c, s = self.config.in_channels, self.config.image_size
        if x.ndim == 2 and x.shape[1] == c * s * s:
            x = x.reshape(x.shape[0], c, s, s)                    # (B, C, S, S)
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"CMC: expected images (B, {c}, {s}, {s}), got {tuple(x.shape)}")
        return x

    def views(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(v1, v2) of images (B, C, S, S), without gradient (`split_views`)."""
        v1, v2 = split_views(self._check(x).detach().array, self.config.views)
        return Tensor._make(v1), Tensor._make(v2)

    def encode_view(self, v: Tensor, k: int) -> Tensor:
        """h = f_k(v), (B, hidden_features), of view k (1 or 2) already split."""
        if k not in (1, 2):
            raise ValueError(f"CMC.encode_view: view must be 1 or 2, got {k}")
        return getattr(self, f"encoder{k}")(v)

    def encode(self, x: Tensor) -> Tensor:
        """[f_1(v1), f_2(v2)], (B, 2 hidden_features): both views' features (sec. 4.1)."""
        v1, v2 = self.views(x)
        return ops.cat([self.encode_view(v1, 1), self.encode_view(v2, 2)], axis=1)

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(z1, z2), unit rows (B, latent_features): the space the memory lives in."""
        v1, v2 = self.views(x)
        return tuple(ops.normalize(getattr(self, f"head{k}")(self.encode_view(v, k)), dim=-1)
                     for k, v in ((1, v1), (2, v2)))

    def loss(self, batch, generator=None) -> tuple[Tensor, dict]:
        """batch = (images (B, C, S, S), dataset indices (B,)) [, labels ignored]: the
        two-view InfoNCE against the memory (eq. 4), then, in training mode, the memory
        update of the batch's slots. Negatives are drawn from `generator`."""
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("CMC.loss: expected a batch (images, indices): the memory "
                             "needs each image's dataset index")
        x, index = batch[0], batch[1]
        idx = np.asarray(index.array if isinstance(index, Tensor) else index)
        cfg = self.config
        if idx.ndim != 1 or idx.dtype.kind not in "iu" or len(idx) != x.shape[0] or (
                len(idx) and (idx.min() < 0 or idx.max() >= cfg.memory_size)):
            raise ValueError(f"CMC.loss: indices must be (B,) = ({x.shape[0]},) integers in "
                             f"[0, memory_size={cfg.memory_size}), got {idx.dtype} "
                             f"{idx.shape}")
        neg = sample_negatives(idx, cfg.memory_size, cfg.num_negatives,
                               as_numpy_generator(generator))          # (B, K)
        z1, z2 = self.embed(x)
        m1, m2 = self.memory1, self.memory2
        xp = m1.xp
        gi, gn = xp.asarray(idx), xp.asarray(neg)
        loss12 = info_nce(z1, Tensor._make(m2.array[gi]), Tensor._make(m2.array[gn]),
                          cfg.temperature)                              # view 1 -> memory 2
        loss21 = info_nce(z2, Tensor._make(m1.array[gi]), Tensor._make(m1.array[gn]),
                          cfg.temperature)                              # view 2 -> memory 1
        loss = loss12 + loss21
        with_pos = [(z1.detach().array, m2.array), (z2.detach().array, m1.array)]
        hits = [(z * m[gi]).sum(1) > (z[:, None] * m[gn]).sum(2).max(1) for z, m in with_pos]
        metrics = {"loss": loss.detach(), "loss_12": loss12.detach(),
                   "loss_21": loss21.detach(),
                   "accuracy": Tensor._make(xp.asarray((hits[0].mean() + hits[1].mean()) / 2,
                                                       dtype=z1.dtype))}
        if self.training:
            self.update_memory(idx, z1.detach(), z2.detach())
        return loss, metrics

    def fill_memory(self, x, batch_size: int = 1000) -> None:
        """M_k[i] <- z_k(x_i) for every image of the training set x (N, C, S, S), on the
        current encoders without gradient: a warm start replacing the random memory (with
        m = 0.5 a random slot keeps half its noise after the first epoch's update, which
        on a few thousand images is most of a short run; our addition, not the paper's)."""
        if len(x) != self.config.memory_size:
            raise ValueError(f"CMC.fill_memory: {len(x)} images for memory_size="
                             f"{self.config.memory_size}")
        from ..autograd import no_grad
        was = self.training
        self.eval()
        with no_grad():
            for i in range(0, len(x), batch_size):
                z1, z2 = self.embed(Tensor._make(self.memory1.xp.asarray(x[i:i + batch_size])))
                self.memory1.array[i:i + len(z1)] = z1.array
                self.memory2.array[i:i + len(z2)] = z2.array
        self.train(was)

    def update_memory(self, indices, z1: Tensor, z2: Tensor) -> None:
        """M_k[i] <- normalize(m M_k[i] + (1 - m) z_k) for the batch's slots (in place)."""
        m = self.config.momentum
        for mem, z in ((self.memory1, z1), (self.memory2, z2)):
            gi = mem.xp.asarray(np.asarray(indices))
            new = m * mem.array[gi] + (1.0 - m) * z.array
            mem.array[gi] = new / mem.xp.maximum(
                mem.xp.linalg.norm(new, axis=1, keepdims=True), 1e-12)
