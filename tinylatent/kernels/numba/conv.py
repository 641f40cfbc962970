"""Numba CPU kernels for convolution: im2col and its adjoint col2im.

The contractions go to BLAS (numpy matmul): on 2 cores a serial Numba loop nest cannot beat
OpenBLAS's GEMM, and a `parallel=True` kernel next to OpenBLAS threads fights it for the
same cores. So these kernels are serial and only move data, once:

    cols[(c, i, j), (b, oh, ow)] = x[b, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]  (0 outside)

This layout serves all three GEMMs without a copy: the forward y[b] = W @ cols[:, b] reads
cols[:, b] as a strided matrix (its output is NCHW), and dW = dy2 @ cols^T and
dcols = W^T @ dy2 (dy2 = dy as (O, B*L)) are single large GEMMs.

The innermost loop runs along a row (ow), contiguous in both arrays, over the range of ow
whose input column is inside the image (computed, not tested per element), so it
vectorizes. col2im is the adjoint (a scatter-add): the gradient of im2col, and the forward
of the transposed convolution.
"""
from __future__ import annotations

import numba as nb

_JIT = dict(nopython=True, cache=True, nogil=True)


@nb.jit(**_JIT)
def _valid_range(n_out, size, stride, offset):
    """[lo, hi): the outputs o with 0 <= o*stride + offset < size, 0 <= lo <= hi <= n_out.

    lo is clamped to n_out too: a tap that lies wholly in the padding (offset <= -n_out*stride,
    e.g. a dilated kernel wider than a tiny image) has an empty range at the end, and the
    callers' "zero the entries before lo" loops must stay inside the row."""
    lo = 0
    if offset < 0:
        lo = min((-offset + stride - 1) // stride, n_out)
    hi = 0
    if size - 1 - offset >= 0:
        hi = (size - 1 - offset) // stride + 1
    return lo, min(max(hi, lo), n_out)


# Stride 1 with the output as wide as the input (e.g. 3x3, padding 1): a kernel tap (i, j)
# shifts the whole flattened H*W plane by one constant offset, so a plane is one long
# vectorizable run instead of Ho runs of Wo (shorter than one AVX-512 vector for 14x14);
# the |column shift| entries per row that wrapped around to the neighbouring row are then
# set to zero (im2col) or were zeroed in cols beforehand (col2im).
@nb.jit(**_JIT)
def _im2col_flat(x, kh, kw, ph, pw, dh, dw, ho, cols):
    bsz, c_in, h, w = x.shape
    n_l = ho * w
    for c in range(c_in):
        for i in range(kh):
            a = i * dh - ph
            oh_lo, oh_hi = _valid_range(ho, h, 1, a)
            for j in range(kw):
                k = (c * kh + i) * kw + j
                bb = j * dw - pw
                shift = a * w + bb
                ow_lo, ow_hi = _valid_range(w, w, 1, bb)
                p_lo = max(oh_lo * w, -shift)
                p_hi = min(oh_hi * w, h * w - shift)
                for b in range(bsz):
                    dst = cols[k, b * n_l:(b + 1) * n_l]
                    src = x[b, c].reshape(h * w)
                    dst[:p_lo] = 0.0
                    if p_hi > p_lo:  # slice copies compile to tight loops (no index checks)
                        dst[p_lo:p_hi] = src[p_lo + shift:p_hi + shift]
                    dst[max(p_hi, p_lo):] = 0.0
                    for oh in range(oh_lo, oh_hi):
                        for ow in range(0, ow_lo):
                            dst[oh * w + ow] = 0.0
                        for ow in range(ow_hi, w):
                            dst[oh * w + ow] = 0.0


@nb.jit(**_JIT)
def _col2im_flat(cols, kh, kw, ph, pw, dh, dw, ho, x):
    bsz, c_in, h, w = x.shape
    n_l = ho * w
    for c in range(c_in):
        for i in range(kh):
            a = i * dh - ph
            oh_lo, oh_hi = _valid_range(ho, h, 1, a)
            for j in range(kw):
                k = (c * kh + i) * kw + j
                bb = j * dw - pw
                shift = a * w + bb
                ow_lo, ow_hi = _valid_range(w, w, 1, bb)
                p_lo = max(oh_lo * w, -shift)
                p_hi = min(oh_hi * w, h * w - shift)
                for b in range(bsz):
                    src = cols[k, b * n_l:(b + 1) * n_l]
                    dst = x[b, c].reshape(h * w)
                    # the wrapped-around entries must add nothing: zero them (cols is a
                    # scratch buffer that col2im consumes)
                    for oh in range(oh_lo, oh_hi):
                        for ow in range(0, ow_lo):
                            src[oh * w + ow] = 0.0
                        for ow in range(ow_hi, w):
                            src[oh * w + ow] = 0.0
                    if p_hi > p_lo:
                        dst[p_lo + shift:p_hi + shift] += src[p_lo:p_hi]


@nb.jit(**_JIT)
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols):
    """x (B, C, H, W) -> cols (C*kh*kw [+ 1], B*Ho*Wo), column index b*L + oh*Wo + ow.

    Every entry is written; an extra last row (when cols has one) is all ones, so that a
    bias folded into the weight matrix as its last column is added by the GEMM itself."""
    bsz, c_in, h, w = x.shape
    n_l = ho * wo
    if cols.shape[0] > c_in * kh * kw:
        cols[c_in * kh * kw, :] = 1.0
    if sh == 1 and sw == 1 and wo == w:
        _im2col_flat(x, kh, kw, ph, pw, dh, dw, ho, cols)
        return
    for c in range(c_in):
        for i in range(kh):
            oh_lo, oh_hi = _valid_range(ho, h, sh, i * dh - ph)
            for j in range(kw):
                k = (c * kh + i) * kw + j
                off_w = j * dw - pw
                ow_lo, ow_hi = _valid_range(wo, w, sw, off_w)
                for b in range(bsz):
                    for oh in range(ho):
                        base = b * n_l + oh * wo
                        if oh < oh_lo or oh >= oh_hi:
                            for ow in range(wo):
                                cols[k, base + ow] = 0.0
                            continue
                        ih = oh * sh + i * dh - ph
                        for ow in range(ow_lo):
                            cols[k, base + ow] = 0.0
                        for ow in range(ow_lo, ow_hi):
                            cols[k, base + ow] = x[b, c, ih, ow * sw + off_w]
                        for ow in range(ow_hi, wo):
                            cols[k, base + ow] = 0.0


@nb.jit(**_JIT)
def col2im(cols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, x):
    """x (B, C, H, W) = 0, then x[b, c, ih, iw] += cols[(c, i, j), b*L + oh*Wo + ow].

    cols is overwritten in places (entries that fall outside the image are zeroed)."""
    bsz, c_in, h, w = x.shape
    n_l = ho * wo
    x[...] = 0.0
    if sh == 1 and sw == 1 and wo == w:
        _col2im_flat(cols, kh, kw, ph, pw, dh, dw, ho, x)
        return
    for c in range(c_in):
        for i in range(kh):
            oh_lo, oh_hi = _valid_range(ho, h, sh, i * dh - ph)
            for j in range(kw):
                k = (c * kh + i) * kw + j
                off_w = j * dw - pw
                ow_lo, ow_hi = _valid_range(wo, w, sw, off_w)
                for b in range(bsz):
                    for oh in range(oh_lo, oh_hi):
                        ih = oh * sh + i * dh - ph
                        base = b * n_l + oh * wo
                        for ow in range(ow_lo, ow_hi):
                            x[b, c, ih, ow * sw + off_w] += cols[k, base + ow]
