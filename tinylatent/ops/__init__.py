"""Every op, once. Tensor declares a method for most of them (x.exp() is tl.exp(x)): see
tensor.py."""
from __future__ import annotations

from . import (arithmetic, decompositions, indexing, linalg, normalization, pooling, recurrent,
               reduce, shape, unary)
from .arithmetic import (add, allclose, cast, clamp, clip, clone, compare, contiguous, div, eq,
                         isfinite, isnan, logical_not, masked_fill, maximum, minimum, mul, neg,
                         pow, sub, to_device, where)
from .indexing import (embedding, gather, getitem, index_add, index_select, one_hot,
                       scatter_add, take_along_axis)
from .linalg import (bmm, cdist, dot, einsum, linear, logabsdet, matmul, matrix_inverse, mm,
                     norm, normalize, outer, vector_norm)
from .reduce import (ValuesIndices, all, amax, amin, any, argmax, argmin, argsort, cumsum,
                     log_softmax, logsumexp, max, mean, median, min, prod, softmax, sort, std,
                     sum, topk, unique, unique_consecutive, var)
from .shape import (broadcast_to, cat, chunk, concatenate, diag, diagonal, expand, flatten,
                    flip, narrow, pad, permute, pixel_shuffle, pixel_unshuffle, repeat,
                    repeat_interleave, reshape, roll, split, squeeze, stack, swapaxes,
                    transpose, tril, triu, unbind, unsqueeze, view)
from .unary import (abs, cos, elu, erf, exp, expm1, gelu, leaky_relu, log, log1p,
                    logsigmoid, relu, rsqrt, sigmoid, sign, silu, sin, softplus, sqrt, tanh)
from .unary import digamma, lgamma, polygamma
