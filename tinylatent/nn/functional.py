"""Stateless layer functions (`import tinylatent.nn.functional as F`), PyTorch's names.

Ops are re-exported from tinylatent.ops and losses from tinylatent.losses, so there is one
implementation of each; the functions written here are the ones that only layers need.
"""
from __future__ import annotations

from .. import ops, random
from ..losses import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,
                      info_nce, kl_div, l1_loss, mse_loss, n_pair_loss, nll_loss,
                      nt_xent, smooth_l1_loss, triplet_loss, triplet_margin_loss)
from ..ops import (elu, gelu, leaky_relu, linear, log_softmax, logsigmoid, one_hot, pad,
                   pixel_shuffle, pixel_unshuffle, relu, sigmoid, silu, softmax, tanh)
from ..ops.attention import scaled_dot_product_attention
from ..ops.conv import conv2d, conv_transpose2d
from ..ops.linalg import normalize
from ..tensor import Tensor

__all__ = ["conv1d", "conv2d", "conv_transpose2d", "scaled_dot_product_attention",
           "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool2d",
           "interpolate", "batch_norm", "layer_norm", "group_norm", "embedding",
           "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus", "silu",
           "logsigmoid", "softmax", "log_softmax", "linear", "pad", "one_hot", "dropout",
           "normalize", "cosine_similarity", "gumbel_softmax", "dropout2d",
           "instance_norm", "pixel_shuffle", "pixel_unshuffle",
           "mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss", "kl_div",
           "triplet_loss", "triplet_margin_loss", "n_pair_loss", "info_nce", "nt_xent"]


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """Inverted dropout (Srivastava et al. 2014): zero each entry with probability p and
    scale the rest by 1/(1 - p), so E[output] = x and evaluation needs no rescaling."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    mask = random.dropout_mask(x.shape, p, dtype=x.dtype, device=x.device,
                               generator=generator)
    return x * mask


def dropout2d(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              generator=None) -> Tensor:
    """Channel dropout (Tompson et al. 2015): zero whole channels of an (N, C, H, W) or
    (C, H, W) input with probability p and scale the rest by 1/(1 - p). Neighbouring pixels
    are strongly correlated, so dropping single ones barely regularizes a conv net.
    `inplace` is accepted for PyTorch's signature; the result is a new tensor."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout2d: p must be in [0, 1], got {p}")
    if x.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                         f"got shape {tuple(x.shape)}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    mask_shape = tuple(x.shape[:-2]) + (1, 1)                       # one draw per channel
    return x * random.dropout_mask(mask_shape, p, dtype=x.dtype, device=x.device,
                                   generator=generator)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, and x where beta x > threshold (PyTorch's defaults)."""
    return ops.softplus(x, beta=beta, threshold=threshold)


def gumbel_softmax(logits: Tensor, tau: float = 1.0, hard: bool = False, eps: float = 1e-10,
                   dim: int = -1, generator=None) -> Tensor:
    """A relaxed one-hot sample of Categorical(softmax(logits)) (Jang et al. 2017;
    Maddison et al. 2017): y = softmax((logits + g) / tau) with g_i = -log(-log u_i),
    u ~ U(0, 1) i.i.d. (Gumbel(0, 1) noise). As tau -> 0, y tends to a one-hot sample.

    hard=True returns the one-hot argmax of y in the forward pass but y's gradient in the
    backward one (straight-through: y_hard - stop_grad(y) + y, Jang et al. 2017, Sec. 2.2).
    `eps` is accepted for PyTorch's signature (deprecated there, unused here too)."""
    if tau <= 0:
        raise ValueError(f"gumbel_softmax: tau must be positive, got {tau}")
    # -log(E) with E ~ Exp(1) is Gumbel(0, 1); E = -log(u), and 1 - rand is in (0, 1]
    u = 1.0 - random.rand(*logits.shape, dtype=logits.dtype, device=logits.device,
                          generator=generator)
    gumbels = -(-u.log()).log()
    y_soft = ops.softmax((logits + gumbels) / tau, axis=dim)
    if not hard:
        return y_soft
    xp, soft = y_soft.xp, y_soft.array
    axis = dim % soft.ndim
    index = xp.expand_dims(xp.argmax(soft, axis=axis), axis)       # size 1 along dim
    classes = xp.arange(soft.shape[axis]).reshape(
        (-1,) + (1,) * (soft.ndim - axis - 1))                     # broadcasts along dim
    y_hard = Tensor._make((classes == index).astype(soft.dtype))
    return y_hard - y_soft.detach() + y_soft


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """<x1, x2> / max(||x1|| ||x2||, eps) along `dim` (PyTorch's formula)."""
    dot = (x1 * x2).sum(axis=dim)
    n1 = (x1 * x1).sum(axis=dim)
    n2 = (x2 * x2).sum(axis=dim)
    return dot / ops.clamp(n1 * n2, min=eps * eps).sqrt()


# Layer functions that live beside their modules (imported last: those files import F).
from .conv import conv1d  # noqa: E402
from .embedding import embedding  # noqa: E402
from .normalization import batch_norm, group_norm, instance_norm, layer_norm  # noqa: E402
from .pooling import (adaptive_avg_pool2d, avg_pool1d, avg_pool2d, interpolate,  # noqa: E402
                      max_pool1d, max_pool2d)
