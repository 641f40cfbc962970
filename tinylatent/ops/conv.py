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

* `conv2d` / `conv_transpose2d`: the public entry points. They check the arguments, then
  ask `kernels.dispatch` for a fast kernel (Numba on CPU, a CUDA RawKernel on CuPy); with
  the reference forced (`TINYLATENT_KERNELS=reference` or `kernels.use_reference()`) or no
  kernel available they run the reference.
"""
from __future__ import annotations

from ..tensor import Tensor
from .fast import try_fast
from .shape import pad as _pad
from .shape import stack

__all__ = ["conv2d", "conv_transpose2d", "conv2d_reference", "conv_transpose2d_reference",
           "conv2d_output_shape", "conv_transpose2d_output_shape"]


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
    stride, padding, output_padding, dilation = _conv_transpose2d_args(
        x, weight, bias, stride, padding, output_padding, dilation, groups)
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
    return conv2d_reference(x, wt, bias, 1, 0, dilation, groups)


# ---------------------------------------------------------------------- public entry points
def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D cross-correlation, PyTorch's conv2d. x (B, C_in, H, W), weight
    (C_out, C_in/groups, kh, kw), bias (C_out,) -> (B, C_out, Ho, Wo).

    Runs a fast kernel when one applies (see kernels.dispatch), else `conv2d_reference`.
    """
    _conv2d_args(x, weight, bias, stride, padding, dilation, groups)
    out = try_fast("conv2d", x, weight, bias, stride, padding, dilation, groups)
    if out is not None:
        return out
    return conv2d_reference(x, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, dilation=1, groups: int = 1) -> Tensor:
    """Transposed 2-D convolution, PyTorch's conv_transpose2d. x (B, C_in, H, W), weight
    (C_in, C_out/groups, kh, kw), bias (C_out,) -> (B, C_out, Ho, Wo) with
    Ho = (H - 1) stride - 2 padding + dilation (kh - 1) + output_padding + 1."""
    _conv_transpose2d_args(x, weight, bias, stride, padding, output_padding, dilation, groups)
    out = try_fast("conv_transpose2d", x, weight, bias, stride, padding, output_padding,
                   dilation, groups)
    if out is not None:
        return out
    return conv_transpose2d_reference(x, weight, bias, stride, padding, output_padding,
                                      dilation, groups)
