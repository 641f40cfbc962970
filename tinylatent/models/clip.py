"""CLIP-style two-tower pre-training (Radford et al. 2021, "Learning Transferable Visual
Models From Natural Language Supervision", Fig. 3 pseudo-code).

    I_e = normalize(W_i f_img(images))       (N, E)    image tower: a small conv net
    T_e = normalize(W_t f_txt(tokens))       (N, E)    text tower: mean of word embeddings + MLP
    logits = exp(t) * I_e T_e^T              (N, N)    t learned, init log(1 / 0.07)
    loss = (CE(logits, arange N) + CE(logits^T, arange N)) / 2      symmetric InfoNCE

"The learnable temperature parameter tau was initialized to the equivalent of 0.07 ... and
clipped to prevent scaling the logits by more than 100" (sec. 2.5): exp(t) is clamped at 100
here in the forward pass (no gradient beyond it). The text tower is a bag of words, not
CLIP's Transformer: the captions are short template sentences.

Captions are generated from class labels (sec. 3.1.4, "prompt engineering"): a template
("a photo of a {}.", "a drawing of the digit {}.") filled with one of the class's names
(synonyms). Zero-shot classification embeds every template x name of each class, averages the
unit text embeddings per class ("prompt ensembling", sec. 3.1.4) and predicts the class whose
mean is most similar to the image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn, ops
from ..losses import cross_entropy
from ..tensor import Tensor
from .config import resolve_config
from .simclr import conv_trunk

__all__ = ["CLIP", "CLIPConfig", "Captions", "CaptionLoader", "TEMPLATES", "MNIST_NAMES",
           "FASHION_NAMES", "clip_loss"]

TEMPLATES = ("a photo of a {}.", "a drawing of a {}.", "a picture of the {}.",
             "an image of a {}.", "a small {}.", "a blurry photo of a {}.",
             "a black and white {}.", "this is a {}.")
MNIST_NAMES = (("zero", "digit zero", "number 0", "nought"), ("one", "digit one", "number 1"),
               ("two", "digit two", "number 2"), ("three", "digit three", "number 3"),
               ("four", "digit four", "number 4"), ("five", "digit five", "number 5"),
               ("six", "digit six", "number 6"), ("seven", "digit seven", "number 7"),
               ("eight", "digit eight", "number 8"), ("nine", "digit nine", "number 9"))
FASHION_NAMES = (("t-shirt", "top", "tee"), ("trouser", "pants", "jeans"),
                 ("pullover", "sweater", "jumper"), ("dress", "gown", "frock"),
                 ("coat", "jacket", "overcoat"), ("sandal", "flip-flop", "open shoe"),
                 ("shirt", "blouse", "button-up shirt"), ("sneaker", "trainer", "running shoe"),
                 ("bag", "handbag", "purse"), ("ankle boot", "boot", "bootie"))


class Captions:
    """Word-level captions of class labels: vocabulary, random captions, all prompts."""

    def __init__(self, names=MNIST_NAMES, templates=TEMPLATES) -> None:
        self.names, self.templates = names, templates
        words = sorted({w for t in templates for n in sum(names, ()) for w in
                        t.format(n).replace(".", " .").split()})
        self.vocab = {w: i + 1 for i, w in enumerate(words)}     # 0 is padding
        self.length = max(len(self.encode(t.format(n))) for t in templates
                          for n in sum(names, ()))

    def encode(self, text: str) -> list:
        return [self.vocab[w] for w in text.replace(".", " .").split()]

    def tokens(self, texts) -> np.ndarray:
        out = np.zeros((len(texts), self.length), dtype=np.int64)   # (N, L) padded with 0
        for i, t in enumerate(texts):
            ids = self.encode(t)
            out[i, :len(ids)] = ids
        return out

    def sample(self, labels, rng: np.random.Generator) -> list:
        """One random template and synonym per label."""
        return [self.templates[rng.integers(len(self.templates))].format(
            self.names[c][rng.integers(len(self.names[c]))]) for c in np.asarray(labels)]

    def prompts(self, c: int) -> list:
        """Every template x name of class c (the zero-shot ensemble)."""
        return [t.format(n) for t in self.templates for n in self.names[c]]


def clip_loss(logits: Tensor) -> Tensor:
    """Symmetric InfoNCE: the mean of the image->text and text->image cross-entropies."""
    target = Tensor._make(logits.xp.arange(logits.shape[0]))
    return 0.5 * (cross_entropy(logits, target) + cross_entropy(logits.T, target))


@dataclass(frozen=True)
class CLIPConfig:
    in_channels: int = 1
    image_size: int = 28
    hidden_channels: tuple = (32, 64)
    hidden_features: int = 128     # width of both towers' features
    latent_features: int = 64      # E, the joint embedding
    in_features: int = 64          # text vocabulary size (0 = padding); >= Captions' vocab
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0


class CLIP(nn.Module):
    """Image tower, text tower, learned temperature; symmetric InfoNCE on (image, caption)."""

    def __init__(self, config: CLIPConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = cfg = resolve_config(self, CLIPConfig, config, overrides)
        trunk, width = conv_trunk(cfg.in_channels, cfg.image_size, cfg.hidden_channels)
        self.image_encoder = nn.Sequential(trunk, nn.Linear(width, cfg.hidden_features),
                                           nn.ReLU())
        self.image_projection = nn.Linear(cfg.hidden_features, cfg.latent_features)
        self.token_embedding = nn.Embedding(cfg.in_features, cfg.hidden_features)
        self.text_encoder = nn.Sequential(nn.Linear(cfg.hidden_features, cfg.hidden_features),
                                          nn.ReLU())
        self.text_projection = nn.Linear(cfg.hidden_features, cfg.latent_features)
        self.logit_scale = nn.Parameter(Tensor._make(np.asarray(
            np.log(1.0 / cfg.init_temperature), dtype=np.float32)))

    def image_features(self, x: Tensor) -> Tensor:
        """f_img(x), (B, hidden_features): the image tower before the projection."""
        c, s = self.config.in_channels, self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"CLIP: expected images (B, {c}, {s}, {s}), got {tuple(x.shape)}")
        return self.image_encoder(x)

    def encode(self, x: Tensor) -> Tensor:
        """I_e, unit-length image embeddings (B, latent_features)."""
        return ops.normalize(self.image_projection(self.image_features(x)), dim=-1)

    def encode_text(self, tokens: Tensor) -> Tensor:
        """T_e, unit-length text embeddings (B, latent_features) of padded token ids (B, L)."""
        if tokens.ndim != 2 or tokens.dtype.kind not in "iu":
            raise ValueError(f"CLIP.encode_text: expected integer tokens (B, L), got "
                             f"{tokens.dtype} {tuple(tokens.shape)}")
        mask = Tensor._make((tokens.array > 0).astype(np.float32))        # (B, L)
        e = self.token_embedding(tokens) * mask.unsqueeze(2)             # (B, L, H)
        mean = e.sum(axis=1) / mask.sum(axis=1, keepdims=True).clamp(min=1.0)   # (B, H)
        return ops.normalize(self.text_projection(self.text_encoder(mean)), dim=-1)

    def scale(self) -> Tensor:
        """exp(t), clamped at max_logit_scale (CLIP sec. 2.5)."""
        return ops.exp(ops.clamp(self.logit_scale, max=float(np.log(
            self.config.max_logit_scale))))

    def logits(self, images: Tensor, tokens: Tensor) -> Tensor:
        """exp(t) I_e T_e^T, (N, N): row i = image i against every caption."""
        return self.scale() * (self.encode(images) @ self.encode_text(tokens).T)

    def loss(self, batch) -> tuple[Tensor, dict]:
        """batch = (images (N, C, S, S), caption tokens (N, L)); the pairs are the rows."""
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError("CLIP.loss: expected a batch (images, caption tokens)")
        images, tokens = batch
        logits = self.logits(images, tokens)
        loss = clip_loss(logits)
        return loss, {"loss": loss.detach(), "logit_scale": self.scale().detach()}

    def zero_shot_weights(self, captions: Captions) -> Tensor:
        """(K, E): per class, the renormalised mean of its prompts' text embeddings."""
        rows = []
        for c in range(len(captions.names)):
            t = self.encode_text(Tensor._make(captions.tokens(captions.prompts(c))))
            rows.append(ops.normalize(t.mean(axis=0, keepdims=True), dim=-1))
        return ops.cat(rows, axis=0)

    def evaluate(self, captions: Captions, x, y, xt, yt, seed: int = 1) -> dict:
        """On the FROZEN towers (eval mode, no_grad): prompt-ensembled zero-shot test
        accuracy, a linear probe on the same image embeddings, and image<->text recall@1/5
        (class-level hits, cosine) with one random caption per test image. Also returns
        "similarity": one test image per class against the class prompt ensembles."""
        from ..autograd import no_grad
        from ..eval import frozen_features, hit_rate_at_k, linear_probe
        was = self.training
        self.eval()
        with no_grad():
            w = self.zero_shot_weights(captions).numpy()                  # (K, E)
            t = self.encode_text(Tensor._make(captions.tokens(captions.sample(
                yt, np.random.default_rng(seed))))).numpy()               # (N, E)
        e, et = frozen_features(self.encode, x), frozen_features(self.encode, xt)
        self.train(was)
        res = {"zero-shot": float(((et @ w.T).argmax(1) == yt).mean()),
               "linear probe": linear_probe(e, y, et, yt)}
        for k in (1, 5):
            res[f"image->text R@{k}"] = hit_rate_at_k(et, yt, t, yt, k=k, metric="cosine")
            res[f"text->image R@{k}"] = hit_rate_at_k(t, yt, et, yt, k=k, metric="cosine")
        one = [int(np.flatnonzero(yt == c)[0]) for c in range(len(w)) if (yt == c).any()]
        return res, et[one] @ w.T


class CaptionLoader:
    """(images, labels) batches -> (images, tokens of one random caption per label)."""

    def __init__(self, loader, captions: Captions) -> None:
        self.loader, self.captions, self.generator = loader, captions, loader.generator
        self.dataset = loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        from ..data.transforms import as_numpy_generator
        rng = as_numpy_generator(self.generator)
        for x, y in self.loader:
            yield x, Tensor._make(self.captions.tokens(self.captions.sample(y.numpy(), rng)))
