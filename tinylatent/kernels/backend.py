"""The interface a kernel backend implements: the raw-array kernels the hot ops' fast
Functions (in tinylatent/ops/) call. Two backends implement it, as modules:
`tinylatent.kernels.numba` (NumPy arrays, Numba loops + OpenBLAS) and
`tinylatent.kernels.cuda` (CuPy arrays, CUDA RawKernels + cuBLAS).

Every kernel takes and returns arrays of the backend's array module (`xp`), never Tensors;
nothing here knows about autograd or imports tinylatent.ops. `geom` is the convolution
geometry (kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo) of tinylatent.ops.conv.conv_geometry.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["KernelBackend", "KERNELS", "check_backend", "checked_out"]


@runtime_checkable
class KernelBackend(Protocol):
    name: str          # "numba" or "cuda"
    xp: Any            # numpy or cupy
    half_ops: frozenset      # ops (fast_backend's `op`) whose kernels also take float16/bf16

    # ------------------------------------------------------------ memory and BLAS
    def c(self, a):
        """a as a C-contiguous array (no copy when it already is)."""

    def scratch(self, key: str, shape: tuple, dtype, like=None):
        """A reusable temporary, valid until the next call with the same key, on the device
        of the array `like` (default: the current one); one pool per host thread."""

    def matmul(self, a, b, out=None):
        """a @ b (BLAS / cuBLAS), optionally into out."""

    def batch_to_channel_major(self, y, key=None):
        """(B, C, ...) -> (C, B * prod(...)) contiguous."""

    # ------------------------------------------------------------ convolution
    def im2col(self, x, geom, bias_row: bool = False, out=None):
        """x (B, C, H, W) -> cols (C*kh*kw [+ a row of ones], B*Ho*Wo), into `out` (a
        C-contiguous array of that shape and x's dtype) when given."""

    def col2im(self, cols, shape, geom, out=None):
        """The adjoint of im2col: cols -> x of `shape`, overlapping taps summed; into `out`
        (C-contiguous, of `shape`) when given."""

    # ------------------------------------------------------------ attention
    def masked_softmax(self, s, scale, keep, causal):
        """In place on scores s (N, Tq, Tk): softmax(scale * s) with keep (uint8) / causal masks;
        rows with no key kept become 0."""

    def softmax_backward(self, p, dp, scale):
        """In place on dp: scale * P * (dP - rowsum(dP * P))."""

    def flash_attention(self, q, k, v, scale, causal):
        """(out (N, Tq, Dv), lse (N, Tq)) of softmax(scale q k^T) v over keys j <= i when
        causal, without storing the (Tq, Tk) scores (Dao et al. 2022); lse = -inf and out = 0
        for a row with no key."""

    def flash_attention_backward(self, q, k, v, out, lse, dout, scale, causal):
        """(dq, dk, dv) from the forward's out and lse, recomputing the scores."""

    # ------------------------------------------------------------ affine coupling
    def coupling_forward(self, x, log_s, t, inverse):
        """(y, logabsdet per sample) of y = x e^{log_s} + t (inverse: (x - t) e^{-log_s})."""

    def coupling_backward(self, g, out, log_s, t, inverse):
        """(g_x, g_log_s, g_t) of the coupling's output, from the output (no input kept)."""

    # ------------------------------------------------------------ logsumexp / contrastive
    def row_logsumexp(self, x2):
        """(lse per row of x2 (R, K), saved state for the backward)."""

    def row_logsumexp_backward(self, x2, saved, g):
        """g_i softmax(x2)_ij."""

    def row_cross_entropy(self, s, inv_tau, shift, mask_diag):
        """In place s -> softmax(s * inv_tau); per-row cross-entropy with target (i + shift)."""

    def cross_entropy_grad(self, p, g, inv_tau, shift, symmetric):
        """d(sum_i g_i loss_i)/ds, symmetrised (G + G^T) for NT-Xent."""

    def normalize_rows(self, z, eps=1e-12):
        """(z / max(||z_i||, eps), the norms)."""

    def normalize_rows_backward(self, gzn, zn, norm, eps=1e-12):
        """The gradient of z from that of normalize_rows(z)."""

    # ------------------------------------------------------------ activations
    def gelu(self, x):
        """(y, dy/dx) of the exact GELU y = x Phi(x), both shaped like x."""

    # ------------------------------------------------------------ layer normalization
    def layer_norm(self, x2, w, b, eps):
        """(y, mu, rstd) for the rows of x2 (R, D): y = (x - mu) rstd w + b, mu and rstd
        (R,) float64 (the statistics the backward reuses)."""

    def layer_norm_backward(self, gy2, x2, w, mu, rstd):
        """(gx (R, D), gw (D,), gb (D,)) from the output gradient gy2 (R, D)."""

    # ------------------------------------------------------------ recurrent cells
    def lstm_cell(self, gates, c):
        """(h', c', act, tanh c') of one LSTM step from the gate pre-activations (B, 4H),
        order i, f, g, o, and the cell c (B, H); act (B, 4H) holds the activated gates."""

    def lstm_cell_backward(self, act, c, tanh_c, gh, gc):
        """(dgates (B, 4H), dc (B, H)) from dL/dh' and dL/dc' (either may be None: zero)."""

    def lstm_step(self, gi, hh, bias, c, act, c_new, tanh_c, h_new):
        """One step of a sequence, in place: the cell of gates = gi + hh + bias (gi, hh
        (B, 4H), bias (4H,) or None) on c (B, H), written into act (B, 4H), c_new, tanh_c,
        h_new (B, H); every array C-contiguous (slices of the sequence's buffers)."""

    def lstm_step_backward(self, act, c, tanh_c, gout, dh, dc, dgates):
        """One step back through time, in place: dgates (B, 4H) from dL/dh' = gout + dh
        (gout may be None) and dL/dc' = dc, which is overwritten with dL/dc."""

    # ------------------------------------------------------------ embedding
    def embedding_backward(self, idx, gy, num_embeddings, padding_idx=None):
        """gW (num_embeddings, D): the rows of gy (idx.shape + (D,)) scatter-added at the
        integer indices idx, the row padding_idx left at zero."""


# The names a backend must define, read off the Protocol (so the two cannot drift).
KERNELS = tuple(n for n in vars(KernelBackend)
                if not n.startswith("_") and callable(getattr(KernelBackend, n)))


def check_backend(module) -> None:
    """Raise naming what is missing if `module` does not implement KernelBackend."""
    missing = [n for n in ("name", "xp", "half_ops") + KERNELS if not hasattr(module, n)]
    if missing:
        raise TypeError(f"kernel backend {getattr(module, '__name__', module)!r} does not "
                        f"implement KernelBackend: missing {', '.join(missing)}")


def checked_out(xp, out, shape, dtype, op: str):
    """`out` checked as a kernel's output (a C-contiguous array of `shape` and `dtype` of
    array module `xp`), or a new one if None; both backends' `out=` arguments go through it."""
    if out is None:
        return xp.empty(shape, dtype)
    if tuple(out.shape) != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"{op}: out must be C-contiguous {tuple(shape)} {xp.dtype(dtype)}, "
                         f"got {tuple(out.shape)} {out.dtype}")
    return out
