"""Every op, once. Functions here are also installed as Tensor methods (x.exp(), x.sum())."""
from __future__ import annotations

from ..tensor import Tensor
from . import arithmetic, indexing, linalg, reduce, shape, unary
from .arithmetic import (add, allclose, cast, clamp, clip, clone, compare, contiguous, div, eq,
                         isfinite, isnan, logical_not, maximum, minimum, mul, neg, pow, sub,
                         to_device, where)
from .indexing import (gather, getitem, index_add, index_select, one_hot, scatter_add,
                       take_along_axis)
from .linalg import linear, matmul, outer
from .reduce import (all, any, argmax, argmin, argsort, cumsum, log_softmax, logsumexp, max,
                     mean, min, softmax, sort, std, sum, topk, var)
from .shape import (broadcast_to, cat, chunk, concatenate, expand, flatten, flip, pad,
                    permute, reshape, roll, split, squeeze, stack, swapaxes, transpose, tril,
                    triu, unsqueeze, view)
from .unary import (abs, cos, elu, erf, exp, expm1, gelu, leaky_relu, log, log1p,
                    logsigmoid, relu, rsqrt, sigmoid, sign, silu, sin, softplus, sqrt, tanh)
from .unary import digamma, lgamma, polygamma

# Names that become Tensor methods. Each method is the function above, so x.sum(1) is
# exactly tl.sum(x, 1): one implementation, two spellings.
_METHODS = [
    "abs", "all", "any", "argmax", "argmin", "argsort", "chunk", "clamp", "clip", "cos",
    "cumsum", "elu", "erf", "exp", "expand", "expm1", "flatten", "flip", "gather",
    "index_add", "index_select", "isfinite", "isnan", "leaky_relu", "log", "log1p",
    "log_softmax", "logsigmoid", "logsumexp", "matmul", "max", "maximum", "mean", "min",
    "minimum", "permute", "pow", "relu", "reshape", "roll", "rsqrt", "scatter_add", "sigmoid",
    "sign", "silu", "sin", "softmax", "softplus", "sort", "split", "sqrt", "squeeze", "std",
    "sum", "swapaxes", "take_along_axis", "tanh", "topk", "transpose", "tril", "triu",
    "unsqueeze", "var", "view", "gelu",
]
for _name in _METHODS:
    setattr(Tensor, _name, globals()[_name])


def _expand_as(self: Tensor, other: Tensor) -> Tensor:
    return expand(self, other.shape)


def _view_as(self: Tensor, other: Tensor) -> Tensor:
    return reshape(self, other.shape)


def _square(self: Tensor) -> Tensor:
    return mul(self, self)


Tensor.expand_as = _expand_as
Tensor.view_as = _view_as
Tensor.reshape_as = _view_as
Tensor.square = _square
Tensor.broadcast_to = broadcast_to
