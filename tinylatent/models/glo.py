"""Generative latent optimization (seed 003): Bojanowski, Joulin, Lopez-Paz & Szlam 2018,
"Optimizing the latent space of generative networks".

No encoder and no discriminator: every training image x_i owns a learnable code z_i on the
unit sphere, and the generator g_theta and the codes are fitted jointly (Eq. 2 of the paper)

    min_{theta, z_1..z_N} (1/N) sum_i  ell(g_theta(z_i), x_i),   ||z_i||_2 = 1,

with z_i projected back onto the sphere after every step (Sec. 3.1), the codes initialised by
PCA of the data (Sec. 3.1), and ell the Laplacian-pyramid L1 loss (Sec. 3.2; Ling & Okada 2006)

    Lap1(x, x') = sum_j 2^(2 j) | L^j(x) - L^j(x') |_1,   L^j = G^j - up(G^(j+1)),

G^0 = x, G^(j+1) = down(G^j): here down is 2x2 average pooling and up nearest-neighbour
upsampling (the paper blurs with a Gaussian; the pyramid idea, band-pass levels compared in
L1 and coarse levels up-weighted, is the same). Images are 28 x 28: levels 28, 14, 7.
`|.|_1` sums over the pixels of a level; level j has 4^-j as many pixels as the image, so
2^(2j) |.|_1 / (H W) is that level's mean absolute difference: every level weighs the same.

Sampling (Sec. 4.4): fit a full-covariance Gaussian to the learned codes, draw z, decode.
Encoding a new image (Sec. 4.3): optimise its code with the generator fixed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinylatent as tl
import tinylatent.nn.functional as F
from tinylatent import nn
from tinylatent.tensor import Tensor

from .classical import PCA
from .config import resolve_config

__all__ = ["GLO", "GLOConfig", "laplacian_pyramid", "lap1_loss"]


@dataclass(frozen=True)
class GLOConfig:
    num_codes: int = 4000               # N, one code per training image
    latent_features: int = 32
    hidden_features: tuple = (256, 512)
    in_features: int = 784              # 28 x 28 images, flattened
    image_size: int = 28
    levels: int = 3                     # Laplacian pyramid levels (28, 14, 7)
    loss: str = "lap1"                  # "lap1" or "mse"


def laplacian_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """[L^0, ..., L^(levels-2), G^(levels-1)] of images (B, 1, H, W): band-pass levels then
    the coarse residual."""
    out, g = [], x
    for _ in range(levels - 1):
        down = F.avg_pool2d(g, 2)                                        # (B, 1, H/2, W/2)
        out.append(g - F.interpolate(down, scale_factor=2, mode="nearest"))
        g = down
    return out + [g]


def lap1_loss(x_hat: Tensor, x: Tensor, levels: int = 3) -> Tensor:
    """Per example sum_j 2^(2j) |L^j(x_hat) - L^j(x)|_1 / (H W) = sum_j (the mean |.| over
    level j's pixels): (B, 1, H, W) x 2 -> (B,)."""
    total = 0.0
    for a, b in zip(laplacian_pyramid(x_hat, levels), laplacian_pyramid(x, levels)):
        total = total + tl.abs(a - b).mean(axis=(1, 2, 3))
    return total


class GLO(nn.Module):
    """Generator MLP z (latent) -> hidden (ReLU) -> sigmoid image, plus a table of N codes."""

    def __init__(self, config: GLOConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, GLOConfig, config, overrides)
        if cfg.loss not in ("lap1", "mse"):
            raise ValueError(f"GLO: loss must be 'lap1' or 'mse', got {cfg.loss!r}")
        if cfg.image_size ** 2 != cfg.in_features or cfg.image_size % 2 ** (cfg.levels - 1):
            raise ValueError(f"GLO: need in_features = image_size^2 and image_size divisible "
                             f"by 2^(levels-1), got {cfg.in_features}, {cfg.image_size}, "
                             f"{cfg.levels}")
        sizes = (cfg.latent_features, *cfg.hidden_features)
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.generator = nn.Sequential(*layers, nn.Linear(sizes[-1], cfg.in_features))
        self.codes = nn.Parameter(F.normalize(tl.randn(cfg.num_codes, cfg.latent_features),
                                              dim=1))

    def init_codes_pca(self, x: Tensor) -> None:
        """z_i = the PCA projection of x_i, scaled onto the sphere (the paper's init)."""
        if len(x) != self.config.num_codes:
            raise ValueError(f"GLO.init_codes_pca: {len(x)} images for "
                             f"{self.config.num_codes} codes")
        z = PCA(self.config.latent_features).fit(x).transform(x)
        with tl.no_grad():
            self.codes.copy_(F.normalize(z.detach(), dim=1))

    def project_codes(self) -> None:
        """z_i <- z_i / ||z_i|| (call after each optimizer step)."""
        with tl.no_grad():
            self.codes.copy_(F.normalize(self.codes.detach(), dim=1))

    def decode(self, z: Tensor) -> Tensor:
        """g_theta(z): (B, latent) -> (B, in_features) in (0, 1)."""
        return tl.sigmoid(self.generator(z))

    def _image_loss(self, x_hat: Tensor, x: Tensor) -> Tensor:
        if self.config.loss == "mse":
            return ((x_hat - x) ** 2).mean(axis=1)
        s = self.config.image_size
        return lap1_loss(x_hat.reshape(-1, 1, s, s), x.reshape(-1, 1, s, s),
                         self.config.levels)                       # (B, 784) -> (B, 1, 28, 28)

    def loss(self, batch):
        """batch: (x, index) with the images' rows in the code table, or x alone, taken as
        training images 0..B-1 (full-batch training of a small set)."""
        x, index = batch if isinstance(batch, (tuple, list)) else (batch, None)
        if x.ndim != 2 or x.shape[1] != self.config.in_features:
            raise ValueError(f"GLO.loss: expected x of shape (B, {self.config.in_features}), "
                             f"got {tuple(x.shape)}")
        if index is None:
            if len(x) > self.config.num_codes:
                raise ValueError(f"GLO.loss: {len(x)} images without an index, but only "
                                 f"{self.config.num_codes} codes")
            index = tl.arange(len(x))
        x_hat = self.decode(self.codes[index])
        loss = self._image_loss(x_hat, x).mean()
        return loss, {"loss": loss.detach(), "mse": ((x_hat - x) ** 2).mean().detach()}

    def reconstruct_train(self, index: Tensor) -> Tensor:
        """g(z_i) for the training images `index` (no graph): what the codes learned."""
        with tl.no_grad():
            return self.decode(self.codes[index])

    def reconstruct(self, x: Tensor, steps: int = 100) -> Tensor:
        """g(encode(x)) for any images (no graph)."""
        with tl.no_grad():
            return self.decode(self.encode(x, steps))

    def encode(self, x: Tensor, steps: int = 100, lr: float = 0.05) -> Tensor:
        """Codes of new images by minimising the loss over z on the sphere, generator fixed
        (projected gradient descent with Adam, from the nearest training code)."""
        with tl.no_grad():   # argmin_i ||x - g(z_i)||^2 = argmax_i g_i.x - ||g_i||^2 / 2
            codes = self.codes.detach()
            g = self.decode(codes)                                              # (N, D)
            score = g @ x.T - 0.5 * (g ** 2).sum(axis=1, keepdims=True)        # (N, B)
            start = codes[tl.argmax(score, axis=0)]                            # (B, latent)
        z = nn.Parameter(start.clone())
        opt = tl.optim.Adam([z], lr=lr)
        with tl.enable_grad():
            for _ in range(steps):
                loss = self._image_loss(self.decode(z), x).sum()
                opt.zero_grad()
                (g,) = tl.grad(loss, z)
                z.grad = g
                opt.step()
                with tl.no_grad():
                    z.copy_(F.normalize(z.detach(), dim=1))
        return z.detach()

    def fit_gaussian(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu, Sigma) of the codes (full covariance, Sec. 4.4)."""
        z = self.codes.detach().numpy_host().astype(np.float64)
        return z.mean(0), np.cov(z, rowvar=False) + 1e-6 * np.eye(z.shape[1])

    def sample(self, n: int, generator=None) -> Tensor:
        """x = g(z), z ~ N(mu, Sigma) fitted to the codes."""
        mu, sigma = self.fit_gaussian()
        eps = tl.randn(n, len(mu), generator=generator, dtype="float64").numpy_host()
        z = mu + eps @ np.linalg.cholesky(sigma).T                             # (n, latent)
        with tl.no_grad():
            return self.decode(tl.tensor(z.astype(np.float32)))
