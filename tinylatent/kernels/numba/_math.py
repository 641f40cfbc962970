"""`fexp`: an exp that LLVM can vectorize inside Numba loops.

Numba calls libm's scalar `expf` for `math.exp` unless Intel's SVML is installed, and a
scalar exp per element is what made the softmax-like passes slower than the BLAS products
around them. For float32 this computes exp(x) = 2^n * p(r) with n = round(x / ln 2),
r = x - n ln 2 (Cody-Waite split, |r| <= ln2 / 2) and p the degree-6 Taylor polynomial
(relative error < 2e-7, about 3 ulp); 2^n is built from its IEEE bits. Straight-line code,
so loops calling it vectorize (AVX2 / AVX-512). Results below exp(-87) (the float32
denormal range) are flushed to exactly 0: denormal arithmetic is ~100x slower and changes
nothing in a softmax. float64 uses math.exp.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload


@intrinsic
def _f32_from_bits(typingctx, bits):
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


def fexp(x):  # pragma: no cover - the Python fallback; Numba uses the overload below
    return math.exp(x)


@overload(fexp, inline="always")
def _fexp_overload(x):
    if x == types.float32:
        def impl(x):
            xc = min(max(x, np.float32(-87.0)), np.float32(88.0))
            n = np.floor(xc * np.float32(1.44269504) + np.float32(0.5))
            r = (xc - n * np.float32(0.693359375)) - n * np.float32(-2.12194440e-4)
            p = np.float32(1.0) + r * (np.float32(1.0) + r * (np.float32(0.5) + r * (
                np.float32(1.0 / 6.0) + r * (np.float32(1.0 / 24.0) + r * (
                    np.float32(1.0 / 120.0) + r * np.float32(1.0 / 720.0))))))
            y = p * _f32_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))
            if x > np.float32(88.3762626):
                y = np.float32(np.inf)
            if x < np.float32(-87.0):
                y = np.float32(0.0)
            if x != x:
                y = x
            return y
        return impl
    if isinstance(x, types.Float):
        def impl64(x):
            return math.exp(x)
        return impl64
    return None
