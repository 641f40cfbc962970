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
of the transposed convolution. Two geometries take shortcuts to long contiguous runs:
stride 1 with the output as wide as the input (_im2col_flat), and stride 2 by the input's
four phases (im2col_stride2, col2im_stride2); the general loops are their twins in the tests.
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






# Stride 2 (the downsampling convs of DCGAN, CLIP, SimCLR, the conv VAE, and the transposed
# convs that undo them): the strided loops above gather the column entries two apart, in
# rows of Wo (7 or 14) entries, about 2.5 GB/s here. Split x once into its four phases,
#     xp[c, ra, rb, b*L + r*Wo + q] = x[b, c, 2r + ra, 2q + rb]      (0 past the image),
# channel-major like cols (one contiguous read of x), and a tap (i, j) becomes a constant
# shift of one phase row:
#     x[b, c, 2*oh + i*dh - ph, 2*ow + j*dw - pw] = xp[c, ra, rb, b*L + (oh + da)*Wo + ow + db]
#     with i*dh - ph = 2*da + ra,  j*dw - pw = 2*db + rb,
# so a column row is one run over the whole batch, copied (im2col) or added (col2im) at
# once; the few entries whose tap falls outside the image (shifted into a neighbouring row
# or image) are zeroed in cols, after the copy or before the add. This holds when the phase
# planes are Ho x Wo and hold every pixel: 2*Ho >= H and 2*Wo >= W (3x3 and 4x4 convs with
# padding 1 on even images; phase_applies checks it). 1.4-2x faster than the strided loops
# on the benchmark's layers. (The same split with one phase for stride 1 measured no faster
# than _im2col_flat, and a stride-generic version cost the stride-2 case 20%.)
def phase_applies(h, w, sh, sw, ho, wo) -> bool:
    """Whether im2col_stride2 / col2im_stride2 compute this conv geometry (any dilation)."""
    return sh == 2 and sw == 2 and 2 * ho >= h and 2 * wo >= w


@nb.jit(**_JIT)
def _split_phases(x, ho, wo, xp):
    """xp[c, ih % 2, iw % 2, b*L + (ih // 2)*Wo + iw // 2] = x[b, c, ih, iw]; the rest 0.
    Row by row, the even and odd columns split in one loop (a contiguous read of x)."""
    bsz, c_in, h, w = x.shape
    n_l = ho * wo
    half = w // 2
    for b in range(bsz):
        for c in range(c_in):
            for ih in range(h):
                base = b * n_l + (ih >> 1) * wo
                src = x[b, c, ih]
                d0 = xp[c, ih & 1, 0, base:base + wo]
                d1 = xp[c, ih & 1, 1, base:base + wo]
                for q in range(half):
                    d0[q] = src[2 * q]
                    d1[q] = src[2 * q + 1]
                if w & 1:
                    d0[half] = src[w - 1]
                d0[(w + 1) // 2:] = 0.0               # phase columns past the image
                d1[half:] = 0.0
            for ra in range(2):                       # phase rows past the image
                xp[c, ra, :, b * n_l + ((h - ra + 1) // 2) * wo:(b + 1) * n_l] = 0.0


@nb.jit(**_JIT)
def _merge_phases(xp, ho, wo, x):
    """x[b, c, ih, iw] = xp[c, ih % 2, iw % 2, b*L + (ih // 2)*Wo + iw // 2]: every pixel
    of x written, the phase entries past the image dropped."""
    bsz, c_in, h, w = x.shape
    n_l = ho * wo
    half = w // 2
    for b in range(bsz):
        for c in range(c_in):
            for ih in range(h):
                base = b * n_l + (ih >> 1) * wo
                dst = x[b, c, ih]
                s0 = xp[c, ih & 1, 0, base:base + wo]
                s1 = xp[c, ih & 1, 1, base:base + wo]
                for q in range(half):
                    dst[2 * q] = s0[q]
                    dst[2 * q + 1] = s1[q]
                if w & 1:
                    dst[w - 1] = s0[half]


@nb.jit(**_JIT)
def _zero_outside(row, bsz, ho, wo, da, db):
    """Zero the entries b*L + oh*Wo + ow of a cols row whose tap (da, db) leaves the image:
    oh + da or ow + db outside [0, Ho) x [0, Wo)."""
    oh_lo, oh_hi = _valid_range(ho, ho, 1, da)
    ow_lo, ow_hi = _valid_range(wo, wo, 1, db)
    n_l = ho * wo
    ragged = ow_lo > 0 or ow_hi < wo
    for b in range(bsz):
        base = b * n_l
        for p in range(base, base + oh_lo * wo):
            row[p] = 0.0
        for p in range(base + oh_hi * wo, base + n_l):
            row[p] = 0.0
        if ragged:
            for oh in range(oh_lo, oh_hi):
                p = base + oh * wo
                for ow in range(ow_lo):
                    row[p + ow] = 0.0
                for ow in range(ow_hi, wo):
                    row[p + ow] = 0.0


@nb.jit(**_JIT)
def _phase_tap(a):
    """(phase, shift) of a kernel offset a = 2*shift + phase, phase in {0, 1}."""
    ra = a & 1
    return ra, (a - ra) >> 1


@nb.jit(**_JIT)
def im2col_stride2(x, kh, kw, ph, pw, dh, dw, ho, wo, cols, xp):
    """im2col at stride 2 where phase_applies; xp (C, 2, 2, B*Ho*Wo) scratch. Writes the
    same cols as im2col (its reference twin in the tests)."""
    bsz, c_in = x.shape[:2]
    n = bsz * ho * wo
    if cols.shape[0] > c_in * kh * kw:
        cols[c_in * kh * kw, :] = 1.0
    _split_phases(x, ho, wo, xp)
    for c in range(c_in):
        for i in range(kh):
            ra, da = _phase_tap(i * dh - ph)
            for j in range(kw):
                rb, db = _phase_tap(j * dw - pw)
                shift = da * wo + db
                lo, hi = min(n, max(0, -shift)), max(0, min(n, n - shift))
                dst = cols[(c * kh + i) * kw + j]
                if hi > lo:                                   # the whole batch in one run
                    dst[lo:hi] = xp[c, ra, rb, lo + shift:hi + shift]
                _zero_outside(dst, bsz, ho, wo, da, db)


@nb.jit(**_JIT)
def col2im_stride2(cols, kh, kw, ph, pw, dh, dw, ho, wo, x, xp):
    """col2im at stride 2 where phase_applies (its reference twin: col2im): each tap's row
    is added into its phase row in one run, then the phases are merged into x. cols is
    overwritten in places (the entries outside the image are zeroed)."""
    bsz, c_in = x.shape[:2]
    n = bsz * ho * wo
    xp[...] = 0.0
    for c in range(c_in):
        for i in range(kh):
            ra, da = _phase_tap(i * dh - ph)
            for j in range(kw):
                rb, db = _phase_tap(j * dw - pw)
                shift = da * wo + db
                lo, hi = min(n, max(0, -shift)), max(0, min(n, n - shift))
                src = cols[(c * kh + i) * kw + j]
                _zero_outside(src, bsz, ho, wo, da, db)
                if hi > lo:
                    xp[c, ra, rb, lo + shift:hi + shift] += src[lo:hi]
    _merge_phases(xp, ho, wo, x)
