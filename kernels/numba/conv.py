"""Numba CPU kernels for convolution: im2col / col2im and the NCHW <-> row layout moves.

The contractions themselves go to BLAS (numpy matmul): on 2 cores a serial Numba loop nest
cannot beat OpenBLAS's GEMM, and a `parallel=True` kernel next to OpenBLAS threads fights it
for the same cores. So the kernels here are serial and only move data, once, in the layout
the GEMM wants:

    cols[(b, oh, ow), (c, i, j)] = x[b, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]  (0 outside)

col2im is its adjoint (a scatter-add), which is the gradient of im2col and also the forward
of the transposed convolution.
"""
from __future__ import annotations

import numba as nb

_JIT = dict(nopython=True, cache=True, nogil=True)


@nb.jit(**_JIT)
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols):
    """x (B, C, H, W) -> cols (B*Ho*Wo, C*kh*kw); every entry of cols is written."""
    bsz, c_in, h, w = x.shape
    for b in range(bsz):
        for oh in range(ho):
            for ow in range(wo):
                r = (b * ho + oh) * wo + ow
                k = 0
                for c in range(c_in):
                    for i in range(kh):
                        ih = oh * sh - ph + i * dh
                        for j in range(kw):
                            iw = ow * sw - pw + j * dw
                            if 0 <= ih < h and 0 <= iw < w:
                                cols[r, k] = x[b, c, ih, iw]
                            else:
                                cols[r, k] = 0.0
                            k += 1


@nb.jit(**_JIT)
def col2im(cols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, x):
    """x (B, C, H, W) = 0, then x[b, c, ih, iw] += cols[(b, oh, ow), (c, i, j)]."""
    bsz, c_in, h, w = x.shape
    x[...] = 0.0
    for b in range(bsz):
        for oh in range(ho):
            for ow in range(wo):
                r = (b * ho + oh) * wo + ow
                k = 0
                for c in range(c_in):
                    for i in range(kh):
                        ih = oh * sh - ph + i * dh
                        for j in range(kw):
                            iw = ow * sw - pw + j * dw
                            if 0 <= ih < h and 0 <= iw < w:
                                x[b, c, ih, iw] += cols[r, k]
                            k += 1


@nb.jit(**_JIT)
def rows_to_nchw(rows, bias, has_bias, y):
    """y[b, o, l] = rows[b*L + l, o] (+ bias[o]);  rows (B*L, O), y (B, O, L)."""
    bsz, c_out, n_l = y.shape
    for b in range(bsz):
        for o in range(c_out):
            add = bias[o] if has_bias else 0.0
            for q in range(n_l):
                y[b, o, q] = rows[b * n_l + q, o] + add


@nb.jit(**_JIT)
def nchw_to_rows(y, rows):
    """rows[b*L + l, o] = y[b, o, l];  y (B, O, L) -> rows (B*L, O)."""
    bsz, c_out, n_l = y.shape
    for b in range(bsz):
        for o in range(c_out):
            for q in range(n_l):
                rows[b * n_l + q, o] = y[b, o, q]


@nb.jit(**_JIT)
def channel_sum(y, out):
    """out[o] = sum over b, l of y[b, o, l] (the bias gradient), accumulated in float64."""
    bsz, c_out, n_l = y.shape
    for o in range(c_out):
        s = 0.0
        for b in range(bsz):
            for q in range(n_l):
                s += y[b, o, q]
        out[o] = s


__all__ = ["im2col", "col2im", "rows_to_nchw", "nchw_to_rows", "channel_sum"]
