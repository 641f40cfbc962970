"""Deep metric learning: a Siamese network with the contrastive loss, triplet networks with
batch-hard / semi-hard mining, and the N-pair loss.

One convolutional embedding f(x) is shared by every branch ("Siamese": the same weights
for both images of a pair). A labelled batch (x, y) gives all its pairs / triplets; the
mining runs on the host on detached distances and returns index arrays, so the loss is a
plain gather of rows of f(x) and its gradient flows through f only.

* Contrastive loss (Hadsell, Chopra & LeCun 2006, "DrLIM", eq. 4), with Y = 0 for a
  similar pair and Y = 1 for a dissimilar one and D = ||f(x1) - f(x2)||_2:
      L = (1 - Y) 1/2 D^2 + Y 1/2 max(0, m - D)^2
  averaged over the similar and over the dissimilar pairs of the batch separately, then
  summed: a batch of 5 classes has ~4x more dissimilar pairs, and the paper balances them by
  sampling (sec. 3); equal weights do the same without discarding pairs.
* Triplet loss (Schroff, Kalenichenko & Philbin 2015, "FaceNet", eq. 1-3) on L2-normalised
  embeddings (sec. 3: ||f(x)||_2 = 1) with squared distances d:
      L = max(0, d(a, p) - d(a, n) + alpha),  alpha = 0.2
  - "batch_hard" (Hermans, Beyer & Leibe 2017, sec. 2): per anchor the farthest positive
    and the closest negative of the batch.
  - "semi_hard" (FaceNet sec. 3.2, eq. 4): every anchor-positive pair, with the closest
    negative that is still farther than the positive, d(a, n) > d(a, p); when no negative
    is, the farthest negative (the fallback of tf-addons' triplet_semihard_loss).
  - rho > 0: rho-regularisation (Roth et al. 2020, "Revisiting training strategies and
    generalization performance in deep metric learning", sec. 5): each mined negative is
    swapped, with probability rho, for a random other image of the anchor's class, so
    some triplets push images of one class apart and the embedding keeps directions that
    the seen classes do not need (less spectral decay) for classes never seen.
* N-pair loss (Sohn 2016, eq. 3, "multi-class N-pair") with masking so that a class that
  appears twice in the batch never serves as its own negative:
      L_i = log(1 + sum_{j: y_j != y_i} exp(f_i^T f_j^+ - f_i^T f_i^+))
  where f_i^+ is the embedding of another image of y_i's class (the next one in the batch)
  and Sohn's penalty l2_reg (||f_i||^2 + ||f_i^+||^2) / 2 keeps the norms bounded.

Without labels (loss(x)) the positive of each image is an augmented copy of it (a random
shift / rotation from tl.data.transforms), the other images are negatives: the
self-supervised form of the same losses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn, ops
from ..losses import triplet_loss
from ..tensor import Tensor
from .config import resolve_config
from .metric_mining import (_labels, batch_hard_triplets, contrastive_loss, n_pair_partners,
                            pair_indices, semi_hard_triplets, switch_negatives)

__all__ = ["ConvEncoder", "SiameseNet", "SiameseConfig", "TripletNet", "TripletConfig",
           "pair_indices", "batch_hard_triplets", "semi_hard_triplets", "switch_negatives",
           "n_pair_partners", "contrastive_loss"]


class ConvEncoder(nn.Module):
    """(B, C, S, S) -> (B, out_features): stride-2 3x3 convolutions with ReLU (BatchNorm
    before each ReLU if batch_norm), then a hidden linear layer + ReLU (none if
    hidden_features = 0: the embedding is a linear map of the conv features)."""

    def __init__(self, in_channels: int, image_size: int, hidden_channels: tuple,
                 hidden_features: int, out_features: int, batch_norm: bool = False) -> None:
        super().__init__()
        layers, c, s = [], in_channels, image_size
        for width in hidden_channels:
            layers += [nn.Conv2d(c, width, 3, stride=2, padding=1)]
            layers += [nn.BatchNorm2d(width), nn.ReLU()] if batch_norm else [nn.ReLU()]
            c, s = width, (s - 1) // 2 + 1          # stride-2 output size with padding 1
        self.in_channels, self.image_size = in_channels, image_size
        self.features = nn.Sequential(*layers, nn.Flatten())          # (B, c * s * s)
        self.fc = nn.Linear(c * s * s, out_features) if hidden_features == 0 else \
            nn.Sequential(nn.Linear(c * s * s, hidden_features), nn.ReLU(),
                          nn.Linear(hidden_features, out_features))
        if hidden_features == 0:
            # a semi-orthogonal W (orthonormal rows, Saxe et al. 2014) and b = 0: at init the
            # embedding is a random projection of the conv features that nearly keeps their
            # angles (Johnson-Lindenstrauss), so training starts from the trunk's geometry;
            # it forgets less of it on unseen classes (README: validated on a held-out seen
            # class, not on the test classes)
            nn.init.orthogonal_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:                                # flattened images (B, C*S*S)
            x = x.reshape(x.shape[0], self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, self.image_size,
                                                 self.image_size):
            raise ValueError(f"ConvEncoder: expected images (B, {self.in_channels}, "
                             f"{self.image_size}, {self.image_size}), got {tuple(x.shape)}")
        return self.fc(self.features(x))


# ---------------------------------------------------------------------- models
class _MetricNet(nn.Module):
    normalize_embedding = False

    def _build(self, cfg) -> None:
        self.encoder = ConvEncoder(cfg.in_channels, cfg.image_size, cfg.hidden_channels,
                                   cfg.hidden_features, cfg.latent_features,
                                   cfg.batch_norm)

    def encode(self, x: Tensor) -> Tensor:
        """The embedding f(x), (B, latent_features) (unit length for the triplet loss)."""
        z = self.encoder(x)
        return ops.normalize(z, dim=-1) if self.normalize_embedding else z

    forward = encode

    def features(self, x: Tensor) -> Tensor:
        """The conv trunk's output (B, C' * S' * S'), before the fully connected layers: on
        classes never seen in training it retrieves better than the embedding (measured in
        tests/test_metric_learning.py), as the pre-head layer of SimCLR does."""
        return self.encoder.features(x if x.ndim == 4 else x.reshape(
            x.shape[0], self.config.in_channels, self.config.image_size,
            self.config.image_size))                                    # (B, C, S, S)

    def evaluate_unseen(self, x, y) -> dict:
        """recall@1 (leave-one-out, cosine) of images x (N, C, S, S) of classes unseen in
        training among each other, on raw pixels, the FROZEN conv trunk and embedding."""
        from ..eval import frozen_features, hit_rate_at_k
        res = {}
        for name, fn in (("raw pixels", None), ("conv trunk", self.features),
                         ("embedding", self.encode)):
            v = x.reshape(len(x), -1) if fn is None else frozen_features(fn, x, module=self)
            res[name] = hit_rate_at_k(v, y, v, y, k=1, metric="cosine", exclude_self=True)
        return res

    def _batch(self, x, y):
        """A labelled batch; without labels, x plus one augmented copy, labelled by index.
        x may be a loader's (images, labels) pair."""
        if isinstance(x, (tuple, list)):
            x, y = x
        from ..data.transforms import RandomAffine
        affine = RandomAffine(degrees=10, translate=(0.1, 0.1))
        if y is not None:
            y = _labels(y, x.shape[0], f"{type(self).__name__}.loss")
            if not (getattr(self.config, "augment", False) and self.training):
                return x, y
        x = x.reshape(x.shape[0], self.config.in_channels, self.config.image_size,
                      self.config.image_size)                           # (B, C, S, S)
        if y is not None:                                               # augmented labelled
            return affine(x.detach()), y
        view = affine(x.detach())
        return ops.cat([x, view], axis=0), np.tile(np.arange(x.shape[0]), 2)


@dataclass(frozen=True)
class SiameseConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_channels: tuple = (32, 64)
    hidden_features: int = 128   # 0: no hidden layer (a linear map of the conv features)
    latent_features: int = 32
    margin: float = 1.0          # m of Hadsell et al. eq. 4
    batch_norm: bool = False     # BatchNorm2d after each convolution


class SiameseNet(_MetricNet):
    """DrLIM: a Siamese conv net trained with the contrastive loss on all pairs of a batch."""

    def __init__(self, config: SiameseConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = resolve_config(self, SiameseConfig, config, overrides)
        self._build(self.config)

    def loss(self, x, y=None) -> tuple[Tensor, dict]:
        """x (B, C, S, S) with labels y (B,) (or the pair (x, y)); y=None: self-supervised."""
        x, y = self._batch(x, y)
        z = self.encode(x)
        i, j, similar = pair_indices(y)
        loss = contrastive_loss(z[i], z[j], similar, self.config.margin)
        return loss, {"loss": loss.detach(),
                      "similar_pairs": Tensor._make(z.xp.asarray(float(similar.sum())))}


@dataclass(frozen=True)
class TripletConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_channels: tuple = (32, 64)
    hidden_features: int = 128   # 0: no hidden layer (a linear map of the conv features)
    latent_features: int = 32
    objective: str = "triplet"   # "triplet" (FaceNet) or "n_pair" (Sohn 2016)
    mining: str = "semi_hard"    # triplet only: "semi_hard" or "batch_hard"
    margin: float = 0.2          # alpha of FaceNet eq. 1 (squared distances, unit embeddings)
    rho: float = 0.0             # triplet only: P(negative -> positive), Roth et al. 2020
    l2_reg: float = 0.002        # N-pair only: Sohn's embedding-norm penalty
    batch_norm: bool = False     # BatchNorm2d after each convolution
    augment: bool = False        # labelled batches: a random shift / rotation per image


class TripletNet(_MetricNet):
    """A conv embedding trained with the triplet (mined) or the N-pair loss."""

    def __init__(self, config: TripletConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = cfg = resolve_config(self, TripletConfig, config, overrides)
        if cfg.objective not in ("triplet", "n_pair"):
            raise ValueError(f"TripletNet: objective must be 'triplet' or 'n_pair', got "
                             f"{cfg.objective!r}")
        if cfg.mining not in ("semi_hard", "batch_hard"):
            raise ValueError(f"TripletNet: mining must be 'semi_hard' or 'batch_hard', got "
                             f"{cfg.mining!r}")
        if not 0.0 <= cfg.rho <= 1.0:
            raise ValueError(f"TripletNet: rho must lie in [0, 1], got {cfg.rho}")
        if cfg.rho and cfg.objective != "triplet":
            raise ValueError("TripletNet: rho swaps mined negatives, objective='triplet' only")
        # FaceNet constrains f(x) to the unit sphere; Sohn's N-pair leaves it free (+ L2)
        self.normalize_embedding = cfg.objective == "triplet"
        self._build(cfg)

    def loss(self, x, y=None) -> tuple[Tensor, dict]:
        """x (B, C, S, S) with labels y (B,) (or the pair (x, y)); y=None: self-supervised."""
        x, y = self._batch(x, y)
        z = self.encode(x)                                       # (B, D)
        cfg = self.config
        if cfg.objective == "n_pair":
            a, p, mask = n_pair_partners(y)
            if len(a) == 0:
                raise ValueError("TripletNet.loss: no class appears twice in the batch")
            za, zp = z[a], z[p]                                  # (T, D) anchors, positives
            s = za @ zp.T                                        # (T, T): f_s^T f_t^+
            logits = s - (za * zp).sum(axis=1, keepdims=True)    # diagonal 0: the "1 +"
            masked = ops.where(Tensor._make(z.xp.asarray(mask)), logits, -np.inf)
            loss = ops.logsumexp(masked, axis=1).mean()
            loss = loss + 0.5 * cfg.l2_reg * ((za ** 2).sum(axis=1)
                                              + (zp ** 2).sum(axis=1)).mean()
            count = len(a)
        else:
            zh = z.detach().numpy_host().astype(np.float64)
            d = ((zh[:, None] - zh[None]) ** 2).sum(-1)          # (B, B) squared distances
            mine = batch_hard_triplets if cfg.mining == "batch_hard" else semi_hard_triplets
            a, p, n = mine(d, y)
            if cfg.rho > 0:
                from ..data.transforms import as_numpy_generator     # tl.manual_seed's stream
                n = switch_negatives(a, p, n, y, cfg.rho, as_numpy_generator(None))
            if len(a) == 0:
                raise ValueError("TripletNet.loss: no triplet in the batch (needs two "
                                 "images of one class and one of another)")
            loss = triplet_loss(z[a], z[p], z[n], margin=cfg.margin, squared=True)
            count = len(a)
        return loss, {"loss": loss.detach(),
                      "tuples": Tensor._make(z.xp.asarray(float(count)))}
