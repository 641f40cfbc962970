"""2-D convolution and its transpose (PyTorch's conv2d / conv_transpose2d).

Two layers here:

* `conv2d_reference` / `conv_transpose2d_reference`: the test oracle, written only in
  existing Tensor ops (pad, strided slices, stack, reshape, matmul), so gradients of every
  order come for free and the code reads as the math:

      im2col:  cols[b, (c, i, j), (oh, ow)] = x_pad[b, c, oh*s + i*d, ow*s + j*d]
      conv:    y[b, o, oh, ow] = sum_{c,i,j} w[o, c, i, j] * cols[b, (c, i, j), (oh, ow)] + b[o]

  The transposed convolution is the adjoint of conv2d with respect to its input: insert
  (stride - 1) zeros between input pixels, pad by dilation * (k - 1) - padding, and
  convolve with the spatially flipped kernel whose in/out channels are swapped.

* `Conv2dFn` / `ConvTranspose2dFn`: the fast ops, autograd Functions whose forward and
  backward run a kernel backend's im2col / col2im (Numba on CPU, a CUDA RawKernel on CuPy,
  see tinylatent/kernels/backend.py) around single large GEMMs. Their double backward
  differentiates the reference on the same inputs (see ops/fast.py).

* `conv2d` / `conv_transpose2d`: the public entry points. They check and normalise the
  arguments once, then run the fast Function when it applies (groups == 1, float32/64, a
  backend for the device, the reference not forced: `TINYLATENT_KERNELS=reference` or
  `kernels.use_reference()`), else the reference.
"""
from __future__ import annotations

import math

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor
from .fast import fast_backend, reference_vjp
from .shape import pad as _pad
from .shape import stack

__all__ = ["conv2d", "conv_transpose2d", "conv2d_reference", "conv_transpose2d_reference",
           "conv2d_output_shape", "conv_transpose2d_output_shape", "Conv2dFn",
           "ConvTranspose2dFn", "conv_geometry"]


# ---------------------------------------------------------------------- argument checking
def _pair(v, name: str, op: str) -> tuple:
    if isinstance(v, Tensor):
        v = v.tolist()
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(a, int) for a in v):
        return (int(v[0]), int(v[1]))
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")


def _padding(padding, kernel: tuple, stride: tuple, dilation: tuple, op: str) -> tuple:
    """((top, bottom), (left, right)); accepts an int, a pair, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
            out = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                out.append((total // 2, total - total // 2))
            return tuple(out)
        raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got "
                         f"{padding!r}")
    ph, pw = _pair(padding, "padding", op)
    if ph < 0 or pw < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {(ph, pw)}")
    return ((ph, ph), (pw, pw))


def _check_common(op: str, x: Tensor, weight: Tensor, bias, stride, dilation, groups: int):
    if not isinstance(x, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{op}: input and weight must be Tensors, got "
                        f"{type(x).__name__} and {type(weight).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (B, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D, got shape {weight.shape}")
    if x.dtype != weight.dtype:
        raise TypeError(f"{op}: input dtype {x.dtype} and weight dtype {weight.dtype} differ")
    if x.device != weight.device:
        raise RuntimeError(f"{op}: input is on {x.device} but weight is on {weight.device}")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    stride = _pair(stride, "stride", op)
    dilation = _pair(dilation, "dilation", op)
    if min(stride) < 1:
        raise ValueError(f"{op}: stride must be >= 1, got {stride}")
    if min(dilation) < 1:
        raise ValueError(f"{op}: dilation must be >= 1, got {dilation}")
    return stride, dilation


def _check_bias(op: str, bias, n_out: int, x: Tensor) -> None:
    if bias is None:
        return
    if not isinstance(bias, Tensor):
        raise TypeError(f"{op}: bias must be a Tensor or None, got {type(bias).__name__}")
    if bias.shape != (n_out,):
        raise ValueError(f"{op}: bias must have shape ({n_out},), got {bias.shape}")
    if bias.dtype != x.dtype:
        raise TypeError(f"{op}: bias dtype {bias.dtype} differs from input dtype {x.dtype}")


def conv2d_output_shape(h: int, w: int, kernel: tuple, stride: tuple, padding: tuple,
                        dilation: tuple) -> tuple:
    """Ho = floor((H + pad_lo + pad_hi - d (k - 1) - 1) / s) + 1, likewise Wo."""
    out = []
    for n, k, s, (lo, hi), d in zip((h, w), kernel, stride, padding, dilation):
        out.append((n + lo + hi - d * (k - 1) - 1) // s + 1)
    return tuple(out)


def conv_transpose2d_output_shape(h: int, w: int, kernel: tuple, stride: tuple,
                                  padding: tuple, output_padding: tuple,
                                  dilation: tuple) -> tuple:
    """Ho = (H - 1) s - 2 p + d (k - 1) + output_padding + 1, likewise Wo."""
    return tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, op, d in
                 zip((h, w), kernel, stride, padding, output_padding, dilation))


def _conv2d_args(x, weight, bias, stride, padding, dilation, groups):
    op = "conv2d"
    stride, dilation = _check_common(op, x, weight, bias, stride, dilation, groups)
    c_out, c_in_g, kh, kw = weight.shape
    if x.shape[1] != c_in_g * groups:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels (shape {x.shape}) but "
                         f"weight {weight.shape} with groups={groups} expects "
                         f"{c_in_g * groups}")
    if c_out % groups:
        raise ValueError(f"conv2d: out channels {c_out} (weight {weight.shape}) not divisible "
                         f"by groups={groups}")
    _check_bias(op, bias, c_out, x)
    pads = _padding(padding, (kh, kw), stride, dilation, op)
    ho, wo = conv2d_output_shape(x.shape[2], x.shape[3], (kh, kw), stride, pads, dilation)
    if ho < 1 or wo < 1:
        raise ValueError(f"conv2d: input {x.shape} padded by {pads} is smaller than the "
                         f"dilated kernel {(kh, kw)} (dilation {dilation}); output would be "
                         f"{(ho, wo)}")
    return stride, pads, dilation


def _conv_transpose2d_args(x, weight, bias, stride, padding, output_padding, dilation,
                           groups):
    op = "conv_transpose2d"
    stride, dilation = _check_common(op, x, weight, bias, stride, dilation, groups)
    c_in, c_out_g, kh, kw = weight.shape
    if x.shape[1] != c_in:
        raise ValueError(f"conv_transpose2d: input has {x.shape[1]} channels (shape "
                         f"{x.shape}) but weight {weight.shape} expects {c_in}")
    if c_in % groups:
        raise ValueError(f"conv_transpose2d: in channels {c_in} not divisible by "
                         f"groups={groups}")
    _check_bias(op, bias, c_out_g * groups, x)
    if isinstance(padding, str):
        raise ValueError(f"conv_transpose2d: padding must be an int or a pair, got {padding!r}")
    padding = _pair(padding, "padding", op)
    if min(padding) < 0:
        raise ValueError(f"conv_transpose2d: padding must be >= 0, got {padding}")
    output_padding = _pair(output_padding, "output_padding", op)
    for o, s, d in zip(output_padding, stride, dilation):
        if not 0 <= o < max(s, d):
            raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be "
                             f"smaller than stride {stride} or dilation {dilation}")
    ho, wo = conv_transpose2d_output_shape(x.shape[2], x.shape[3], (kh, kw), stride,
                                           padding, output_padding, dilation)
    if ho < 1 or wo < 1:
        raise ValueError(f"conv_transpose2d: output size {(ho, wo)} is not positive for "
                         f"input {x.shape}, kernel {(kh, kw)}, padding {padding}")
    return stride, padding, output_padding, dilation


# ---------------------------------------------------------------------- reference
def _pad_or_crop(x: Tensor, widths: tuple) -> Tensor:
    """Pad (positive) or crop (negative) the last two axes by ((top, bottom), (left, right))."""
    crop = tuple(slice(max(-lo, 0), x.shape[2 + i] - max(-hi, 0))
                 for i, (lo, hi) in enumerate(widths))
    if any(lo < 0 or hi < 0 for lo, hi in widths):
        x = x[:, :, crop[0], crop[1]]
    pos = tuple((max(lo, 0), max(hi, 0)) for lo, hi in widths)
    if any(lo or hi for lo, hi in pos):
        x = _pad(x, ((0, 0), (0, 0)) + pos)
    return x


def _im2col(x: Tensor, kernel: tuple, stride: tuple, pads: tuple, dilation: tuple,
            out_hw: tuple) -> Tensor:
    """(B, C, H, W) -> (B, C, kh*kw, Ho, Wo): one strided slice of the padded input per
    kernel tap (i, j), so the backward is the matching col2im scatter for free."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    x = _pad_or_crop(x, pads)
    taps = []
    for i in range(kh):
        for j in range(kw):
            h0, w0 = i * dh, j * dw
            taps.append(x[:, :, h0:h0 + sh * (ho - 1) + 1:sh, w0:w0 + sw * (wo - 1) + 1:sw])
    return stack(taps, axis=2)  # (B, C, kh*kw, Ho, Wo)


def conv2d_reference(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, dilation=1, groups: int = 1) -> Tensor:
    """y[b, o] = b[o] + sum_c w[o, c] (*) x_pad[b, c], by im2col + one batched matmul."""
    stride, pads, dilation = _conv2d_args(x, weight, bias, stride, padding, dilation, groups)
    return _conv2d(x, weight, bias, stride, pads, dilation, groups)


def _conv2d(x, weight, bias, stride: tuple, pads: tuple, dilation: tuple, groups: int):
    """conv2d_reference on checked, normalised arguments (pads ((top, bottom), (l, r)))."""
    bsz, c_in, h, w = x.shape
    c_out, c_in_g, kh, kw = weight.shape
    ho, wo = conv2d_output_shape(h, w, (kh, kw), stride, pads, dilation)
    cols = _im2col(x, (kh, kw), stride, pads, dilation, (ho, wo))
    cols = cols.reshape(bsz, groups, c_in_g * kh * kw, ho * wo)       # (B, G, Cg*K, L)
    wmat = weight.reshape(groups, c_out // groups, c_in_g * kh * kw)  # (G, Og, Cg*K)
    y = (wmat @ cols).reshape(bsz, c_out, ho, wo)                     # (B, G, Og, L) -> NCHW
    if bias is not None:
        y = y + bias.reshape(1, c_out, 1, 1)
    return y


def conv_transpose2d_reference(x: Tensor, weight: Tensor, bias: Tensor | None = None,
                               stride=1, padding=0, output_padding=0, dilation=1,
                               groups: int = 1) -> Tensor:
    """The adjoint of conv2d in its input: zero-insertion, then conv2d with the flipped,
    channel-swapped kernel (Dumoulin & Visin 2016, "A guide to convolution arithmetic")."""
    args = _conv_transpose2d_args(x, weight, bias, stride, padding, output_padding, dilation,
                                  groups)
    return _conv_transpose2d(x, weight, bias, *args, groups)


def _conv_transpose2d(x, weight, bias, stride: tuple, padding: tuple, output_padding: tuple,
                      dilation: tuple, groups: int):
    """conv_transpose2d_reference on checked, normalised arguments."""
    bsz, c_in, h, w = x.shape
    _, c_out_g, kh, kw = weight.shape
    (sh, sw) = stride
    if sh > 1 or sw > 1:
        # (B, C, H, 1, W, 1) padded to (B, C, H, sh, W, sw): x lands every s-th pixel
        x = x.reshape(bsz, c_in, h, 1, w, 1)
        x = _pad(x, ((0, 0), (0, 0), (0, 0), (0, sh - 1), (0, 0), (0, sw - 1)))
        x = x.reshape(bsz, c_in, h * sh, w * sw)
    widths = []
    for k, d, p, op, s in zip((kh, kw), dilation, padding, output_padding, stride):
        lo = d * (k - 1) - p
        widths.append((lo, lo + op - (s - 1)))  # s - 1 zeros already trail the input
    x = _pad_or_crop(x, tuple(widths))
    wt = weight.reshape(groups, c_in // groups, c_out_g, kh, kw)
    wt = wt.permute(0, 2, 1, 3, 4).reshape(groups * c_out_g, c_in // groups, kh, kw)
    wt = wt.flip((2, 3))  # (C_out, C_in/G, kh, kw), spatially flipped
    return _conv2d(x, wt, bias, (1, 1), ((0, 0), (0, 0)), dilation, groups)


# ---------------------------------------------------------------------- fast Functions
def conv_geometry(kernel, stride, pads, dilation, out_hw) -> tuple:
    """(kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo) as the im2col kernels take it."""
    return (kernel[0], kernel[1], stride[0], stride[1], pads[0][0], pads[1][0], dilation[0],
            dilation[1], out_hw[0], out_hw[1])


# im2col's columns are kh*kw times a layer's input: a PixelCNN 7x7 + 3x3 layer pair at
# B = 32 kept 190 MB of them from forward to backward, where PyTorch grows 6 MB. When a
# batch's columns pass CHUNK_BYTES, the fast Functions run im2col and its GEMMs over chunks of
# images through one reused buffer instead, and the backward recomputes each chunk's
# columns (one more im2col pass over x); below it, one im2col is kept for the backward, as
# the recomputation would cost more time than the memory is worth.
CHUNK_BYTES = 32 * 2 ** 20


def _chunks(be, bsz: int, per_image: int, dtype) -> list:
    """[(start, stop), ...]: the images of each chunk, whose columns (per_image elements an
    image) fit in CHUNK_BYTES; at least one image a chunk."""
    per_chunk = max(1, CHUNK_BYTES // be.xp.dtype(dtype).itemsize // max(per_image, 1))
    return [(i, min(i + per_chunk, bsz)) for i in range(0, bsz, per_chunk)]


def _buffer(be, key: str, per_image: int, dtype, like):
    """The flat scratch buffer the chunks go through: CHUNK_BYTES (or one image's columns,
    if more), so the layers of a network share it."""
    size = max(CHUNK_BYTES // be.xp.dtype(dtype).itemsize, per_image)
    return be.scratch(key, (size,), dtype, like=like)


def _view(buf, rows: int, cols: int):
    return buf[:rows * cols].reshape(rows, cols)                     # (rows, cols), C order


class Conv2dFn(Function):
    """y[b] = W' cols[:, b] with cols = im2col(x) (C*kh*kw + 1, B*L) whose last row is ones
    and W' = [W | bias] (O, C*kh*kw + 1): the GEMM adds the bias, and its output is NCHW.
    [dW | db] = dy2 @ cols^T,  dcols = W^T dy2,  dx = col2im(dcols),  dy2 = dy as (O, B*L).
    Each runs per chunk of images (CHUNK_BYTES above); [dW | db] sums over the chunks."""

    @staticmethod
    def forward(ctx, x, w, b, *, geom, be, reference, graph_vjp=None):
        ctx.graph_vjp = graph_vjp
        bsz, c_out = x.shape[0], w.shape[0]
        n_l = geom[8] * geom[9]
        k1 = w.size // c_out + int(b is not None)                     # rows of cols
        wm = w.reshape(c_out, -1)                                    # (O, K)
        if b is not None:
            wm = be.xp.concatenate([wm, b.reshape(c_out, 1)], axis=1)   # (O, K + 1)
        y = be.xp.empty((bsz, c_out, n_l), x.dtype)
        chunks = _chunks(be, bsz, k1 * n_l, x.dtype)
        buf = _buffer(be, "conv_cols", k1 * n_l, x.dtype, x) if len(chunks) > 1 else None
        ctx.cols = None
        for i, j in chunks:
            out = None if buf is None else _view(buf, k1, (j - i) * n_l)
            cols = be.im2col(x[i:j], geom, bias_row=b is not None, out=out)  # (K', b*L)
            be.matmul(wm, cols.reshape(k1, j - i, n_l).transpose(1, 0, 2),
                      out=y[i:j])                                    # (b, O, L)
            if len(chunks) == 1:
                ctx.cols = cols              # the whole batch's, kept for the backward
        ctx.geom, ctx.be, ctx.reference = geom, be, reference
        ctx.save_for_backward(x, w, b)
        return y.reshape(bsz, c_out, geom[8], geom[9])

    @staticmethod
    def backward(ctx, grad):
        x, w, b = ctx.saved_tensors
        if is_grad_enabled():
            if ctx.graph_vjp is not None:
                got = ctx.graph_vjp(x, w, b, grad, ctx.needs_input_grad)
                if got is not None:
                    return got
            return reference_vjp(ctx.reference, (x, w, b), grad)
        be, need, geom = ctx.be, ctx.needs_input_grad, ctx.geom
        bsz, c_out = grad.shape[:2]
        n_l = geom[8] * geom[9]
        k = w.numel() // c_out
        k1 = k + int(b is not None)
        xa, g = x.array, be.c(grad.array)
        gwb = be.xp.zeros((c_out, k1), g.dtype) if need[1] or need[2] else None
        gx = be.xp.empty(x.shape, g.dtype) if need[0] else None
        chunks = _chunks(be, bsz, k1 * n_l, g.dtype)
        recompute = gwb is not None and ctx.cols is None and len(chunks) > 0
        buf = _buffer(be, "conv_cols", k1 * n_l, g.dtype, g) if recompute else None
        gbuf = _buffer(be, "conv_gcols", k1 * n_l, g.dtype, g) if need[0] else None
        wm = w.array.reshape(c_out, k)                                # (O, K)
        for i, j in chunks:
            if gwb is None:                   # dx only: the columns are not needed
                cols = None
            elif ctx.cols is not None:        # one chunk, kept by the forward
                cols = ctx.cols
            else:
                cols = be.im2col(xa[i:j], geom, bias_row=b is not None,
                                 out=_view(buf, k1, (j - i) * n_l))  # (K', b*L)
            if need[0]:
                # dy as (O, b*L) once (a copy), then single large GEMMs
                g2 = be.batch_to_channel_major(g[i:j], key="conv_g2")  # (O, b*L)
                if cols is not None:
                    gwb += be.matmul(g2, cols.T)                     # (O, K')
                gcols = be.matmul(wm.T, g2, out=_view(gbuf, k, (j - i) * n_l))  # (K, b*L)
                be.col2im(gcols, (j - i,) + tuple(x.shape[1:]), geom, out=gx[i:j])
            else:
                # First layer (no dx): batched GEMMs on dy as it is, no copy of dy
                g3 = g[i:j].reshape(j - i, c_out, n_l)                 # (b, O, L)
                colsb = cols.reshape(k1, j - i, n_l).transpose(1, 2, 0)   # (b, L, K')
                gwb += be.matmul(g3, colsb, out=be.scratch(
                    "gwb", (j - i, c_out, k1), g3.dtype, like=g3)).sum(axis=0)  # (O, K')
        gx = Tensor._make(gx) if need[0] else None
        gw = gb = None
        if need[1]:     # written through a view into an array of w's shape: a leaf's .grad
            gw = be.xp.empty(w.shape, g.dtype)        # copies a returned view once more
            gw.reshape(c_out, k)[...] = gwb[:, :k]
            gw = Tensor._make(gw)
        if need[2]:
            gb = Tensor._make(be.c(gwb[:, k]))
        return gx, gw, gb


class ConvTranspose2dFn(Function):
    """y = conv_transpose2d(x, w) + b, the adjoint of conv2d in its input:
    y = col2im(W^T x2) + b with W (C_in, C_out*kh*kw), x2 = x as (C_in, B*H*W);
    dx[b] = W gcols[:, b] with gcols = im2col(dy),  dW = x2 gcols^T,  db = sum of dy.
    Each runs per chunk of images (CHUNK_BYTES above); dW sums over the chunks."""

    @staticmethod
    def forward(ctx, x, w, b, *, geom, out_shape, be, reference):
        # geom describes the conv2d whose input is y (out_shape) and whose output is x.
        bsz, c_in = x.shape[:2]
        n_l = math.prod(x.shape[2:])         # H*W of x: the conv2d's Ho*Wo
        wm = w.reshape(c_in, -1)                                     # (C_in, C_out*kh*kw)
        kc = wm.shape[1]
        y = be.xp.empty(out_shape, x.dtype)
        chunks = _chunks(be, bsz, kc * n_l, x.dtype)
        buf = _buffer(be, "conv_cols", kc * n_l, x.dtype, x)
        for i, j in chunks:
            x2 = be.batch_to_channel_major(x[i:j], key="tconv_x2")    # (C_in, b*H*W)
            cols = be.matmul(wm.T, x2, out=_view(buf, kc, (j - i) * n_l))   # (K, b*H*W)
            be.col2im(cols, (j - i,) + tuple(out_shape[1:]), geom, out=y[i:j])
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        ctx.geom, ctx.be, ctx.reference = geom, be, reference
        ctx.save_for_backward(x, w, b)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, w, b = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (x, w, b), grad)
        be, need = ctx.be, ctx.needs_input_grad
        g = be.c(grad.array)
        bsz, c_in = x.shape[:2]
        n_l = math.prod(x.shape[2:])         # H*W (not x.size // (B*C): B may be 0)
        wm = w.array.reshape(c_in, -1)                                # (C_in, C_out*kh*kw)
        kc = wm.shape[1]
        gx = be.xp.empty(x.shape, g.dtype) if need[0] else None      # written through views
        gw_w = be.xp.zeros(w.shape, g.dtype) if need[1] else None    # w's shape, not a view
        gw = gw_w.reshape(wm.shape) if need[1] else None              # (C_in, C_out*kh*kw)
        chunks = _chunks(be, bsz, kc * n_l, g.dtype)
        buf = _buffer(be, "conv_cols", kc * n_l, g.dtype, g)
        if need[0] or need[1]:
            for i, j in chunks:
                gcols = be.im2col(g[i:j], ctx.geom, out=_view(buf, kc, (j - i) * n_l))
                if need[0]:                                           # (b, C_in, H*W)
                    be.matmul(wm, gcols.reshape(kc, j - i, n_l).transpose(1, 0, 2),
                              out=gx[i:j].reshape(j - i, c_in, n_l))
                if need[1]:
                    x2 = be.batch_to_channel_major(x.array[i:j], key="tconv_x2")
                    gw += be.matmul(x2, gcols.T)                      # (C_in, C_out*kh*kw)
        gx = Tensor._make(gx) if need[0] else None
        gw = Tensor._make(gw_w) if need[1] else None
        gb = Tensor._make(g.sum(axis=(0, 2, 3))) if need[2] else None
        return gx, gw, gb


# ---------------------------------------------------------------------- public entry points
def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D cross-correlation, PyTorch's conv2d. x (B, C_in, H, W), weight
    (C_out, C_in/groups, kh, kw), bias (C_out,) -> (B, C_out, Ho, Wo).

    Runs Conv2dFn when a kernel backend applies (groups == 1), else the reference.
    """
    stride, pads, dilation = _conv2d_args(x, weight, bias, stride, padding, dilation, groups)
    be = fast_backend(x, weight, bias, op="conv") if groups == 1 else None
    if be is None:
        return _conv2d(x, weight, bias, stride, pads, dilation, groups)
    kernel = weight.shape[2:]
    out_hw = conv2d_output_shape(x.shape[2], x.shape[3], kernel, stride, pads, dilation)

    def reference(x_, w_, b_):
        return _conv2d(x_, w_, b_, stride, pads, dilation, 1)

    def graph_vjp(x_, w_, b_, grad, need):
        return _conv2d_vjp_graph(x_, w_, grad, need, stride, pads, dilation)
    return Conv2dFn.apply(x, weight, bias, be=be, reference=reference, graph_vjp=graph_vjp,
                          geom=conv_geometry(kernel, stride, pads, dilation, out_hw))


def _conv2d_vjp_graph(x, w, grad, need, stride, pads, dilation):
    """conv2d's (dx, dW, db) under create_graph, built from the fast convolutions themselves
    (each differentiable again) instead of a replay of the reference's im2col graph:

        dx = conv_transpose2d(dy, W)   (same stride, padding, dilation; output_padding
                                        restores x's size)
        dW[o, c] = sum_b x_pad[b, c] (*) dy[b, o]: conv2d of x with channels and batch
                   swapped, (C, B, H, W), by dy as (O, B, Ho, Wo), stride <-> dilation,
                   cropped to the kernel size
        db = sum over b, y, x of dy
    None (use the reference) for asymmetric padding or an output_padding that PyTorch's
    conv_transpose2d would refuse."""
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, pads, dilation
    if pt != pb or pl != pr:
        return None
    kh, kw = w.shape[2:]
    ho, wo = grad.shape[2:]
    out_pad = tuple(size - ((n - 1) * s - 2 * p + d * (k - 1) + 1) for size, n, s, p, d, k in
                    ((x.shape[2], ho, sh, pt, dh, kh), (x.shape[3], wo, sw, pl, dw, kw)))
    if any(op < 0 or op >= max(s, d) for op, s, d in zip(out_pad, (sh, sw), (dh, dw))):
        return None
    gx = gw = gb = None
    if need[0]:
        gx = conv_transpose2d(grad, w, None, (sh, sw), (pt, pl), out_pad, (dh, dw))
    if need[1]:
        xt = x.transpose(0, 1).contiguous()                    # (C, B, H, W)
        gt = grad.transpose(0, 1).contiguous()                 # (O, B, Ho, Wo)
        r = conv2d(xt, gt, None, stride=(dh, dw), padding=(pt, pl), dilation=(sh, sw))
        gw = r[:, :, :kh, :kw].transpose(0, 1).contiguous()    # (C, O, kh, kw) -> (O, C, ..)
    if need[2]:
        gb = grad.sum(axis=(0, 2, 3))
    return gx, gw, gb


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, dilation=1, groups: int = 1) -> Tensor:
    """Transposed 2-D convolution, PyTorch's conv_transpose2d. x (B, C_in, H, W), weight
    (C_in, C_out/groups, kh, kw), bias (C_out,) -> (B, C_out, Ho, Wo) with
    Ho = (H - 1) stride - 2 padding + dilation (kh - 1) + output_padding + 1.

    Runs ConvTranspose2dFn when a kernel backend applies (groups == 1), else the reference.
    """
    args = _conv_transpose2d_args(x, weight, bias, stride, padding, output_padding, dilation,
                                  groups)
    be = fast_backend(x, weight, bias, op="conv") if groups == 1 else None
    if be is None:
        return _conv_transpose2d(x, weight, bias, *args, groups)
    stride, pad, outpad, dilation = args
    kernel = weight.shape[2:]
    ho, wo = conv_transpose2d_output_shape(x.shape[2], x.shape[3], kernel, stride, pad,
                                           outpad, dilation)
    # The conv2d whose input is y (B, C_out, Ho, Wo) and whose output is x (B, C_in, H, W).
    geom = conv_geometry(kernel, stride, ((pad[0], pad[0]), (pad[1], pad[1])), dilation,
                         x.shape[2:])

    def reference(x_, w_, b_):
        return _conv_transpose2d(x_, w_, b_, *args, 1)
    return ConvTranspose2dFn.apply(x, weight, bias, be=be, reference=reference, geom=geom,
                                   out_shape=(x.shape[0], weight.shape[1], ho, wo))
