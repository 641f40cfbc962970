"""The fast hot ops as autograd Functions, written once for both backends.

Each Function's forward and backward call the raw-array kernels of a backend `be`
(`kernels.numba` on NumPy arrays, `kernels.cuda` on CuPy arrays): the passes that move or
reduce data are Numba / CUDA kernels, the contractions are BLAS / cuBLAS matmuls.

Double backward. A fused backward kernel computes numbers, not a graph. When the backward
runs with `create_graph=True` (grad mode is on inside it) these Functions instead rebuild the
op from its reference twin in `tinylatent/ops/` on the same input tensors and return the
reference's vector-Jacobian product with `create_graph=True`, so second and higher
derivatives are exact (and cost what the reference costs). `TINYLATENT_KERNELS=reference`
or `kernels.use_reference()` selects the reference from the start.
"""
from __future__ import annotations

import tinylatent as tl
from tinylatent.autograd import Function, is_grad_enabled
from tinylatent.tensor import Tensor

__all__ = ["Conv2dFn", "ConvTranspose2dFn", "AttentionFn", "AffineCouplingFn",
           "LogsumexpFn", "NTXentFn", "InfoNCEFn", "reference_vjp"]


def reference_vjp(reference, tensors: tuple, *grad_outputs) -> tuple:
    """Gradients of `reference(*tensors)` w.r.t. each of `tensors` (None for those that do
    not require grad), as a differentiable graph (used when the fast backward is asked for
    create_graph=True). One grad_output per output of the reference; None ones are skipped."""
    wanted = [i for i, t in enumerate(tensors) if isinstance(t, Tensor) and t.requires_grad]
    res = [None] * len(tensors)
    with tl.enable_grad():
        out = reference(*tensors)
        outs = out if isinstance(out, tuple) else (out,)
        pairs = [(o, g) for o, g in zip(outs, grad_outputs) if g is not None]
        if not wanted or not pairs:
            return tuple(res)
        gs = tl.grad([o for o, _ in pairs], [tensors[i] for i in wanted],
                     [g for _, g in pairs], create_graph=True, allow_unused=True)
    for i, g in zip(wanted, gs):
        res[i] = g
    return tuple(res)


def _t(a) -> Tensor:
    return Tensor._make(a)


# ---------------------------------------------------------------------- conv
def conv_geometry(kernel, stride, pads, dilation, out_hw) -> tuple:
    """(kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo) as the im2col kernels take it."""
    return (kernel[0], kernel[1], stride[0], stride[1], pads[0][0], pads[1][0], dilation[0],
            dilation[1], out_hw[0], out_hw[1])


class Conv2dFn(Function):
    """y[b] = W' cols[:, b] with cols = im2col(x) (C*kh*kw + 1, B*L) whose last row is ones
    and W' = [W | bias] (O, C*kh*kw + 1): the GEMM adds the bias, and its output is NCHW.
    [dW | db] = dy2 @ cols^T,  dcols = W^T dy2,  dx = col2im(dcols),  dy2 = dy as (O, B*L)"""

    @staticmethod
    def forward(ctx, x, w, b, *, geom, be, reference):
        bsz, c_out = x.shape[0], w.shape[0]
        n_l = geom[8] * geom[9]
        cols = be.im2col(x, geom, bias_row=b is not None)            # (K [+1], B*L)
        wm = w.reshape(c_out, -1)                                    # (O, K)
        if b is not None:
            wm = be.xp.concatenate([wm, b.reshape(c_out, 1)], axis=1)   # (O, K + 1)
        colsb = cols.reshape(cols.shape[0], bsz, n_l).transpose(1, 0, 2)  # (B, K', L) view
        y = be.matmul(wm, colsb)                                     # (B, O, L)
        ctx.geom, ctx.be, ctx.reference = geom, be, reference
        ctx.x_shape, ctx.cols = x.shape, cols
        ctx.save_for_backward(x, w, b)
        return y.reshape(bsz, c_out, geom[8], geom[9])

    @staticmethod
    def backward(ctx, grad):
        x, w, b = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (x, w, b), grad)
        be, need, cols = ctx.be, ctx.needs_input_grad, ctx.cols
        bsz, c_out = grad.shape[:2]
        k = w.size // c_out
        gx = gw = gb = None
        if need[0]:
            # dy as (O, B*L) once (a copy), then two single large GEMMs
            g2 = be.batch_to_channel_major(grad.data, key="conv_g2")  # (O, B*L)
            if need[1] or need[2]:
                gwb = be.matmul(g2, cols.T)                          # (O, K [+1])
            wm = w.data.reshape(c_out, k)                            # (O, K)
            gcols = be.matmul(wm.T, g2, out=be.scratch("gcols", (k, g2.shape[1]), g2.dtype))
            gx = _t(be.col2im(gcols, ctx.x_shape, ctx.geom))         # (B, C, H, W)
        elif need[1] or need[2]:
            # First layer (no dx): batched GEMMs on dy as it is, no copy of dy
            g3 = be.c(grad.data).reshape(bsz, c_out, -1)             # (B, O, L)
            colsb = cols.reshape(cols.shape[0], bsz, -1).transpose(1, 2, 0)  # (B, L, K')
            gwb = be.matmul(g3, colsb, out=be.scratch(
                "gwb", (bsz, c_out, cols.shape[0]), g3.dtype)).sum(axis=0)   # (O, K [+1])
        if need[1]:
            gw = _t(be.c(gwb[:, :k]).reshape(w.shape))
        if need[2]:
            gb = _t(be.c(gwb[:, k]))
        return gx, gw, gb


class ConvTranspose2dFn(Function):
    """y = conv_transpose2d(x, w) + b, the adjoint of conv2d in its input:
    y = col2im(W^T x2) + b with W (C_in, C_out*kh*kw), x2 = x as (C_in, B*H*W);
    dx[b] = W gcols[:, b] with gcols = im2col(dy),  dW = x2 gcols^T,  db = sum of dy"""

    @staticmethod
    def forward(ctx, x, w, b, *, geom, out_shape, be, reference):
        # geom describes the conv2d whose input is y (out_shape) and whose output is x.
        c_in = x.shape[1]
        x2 = be.batch_to_channel_major(x)                            # (C_in, B*H*W)
        wm = w.reshape(c_in, -1)                                     # (C_in, C_out*kh*kw)
        cols = be.matmul(wm.T, x2, out=be.scratch(
            "tcols", (wm.shape[1], x2.shape[1]), x.dtype))           # (C_out*kh*kw, B*H*W)
        y = be.col2im(cols, out_shape, geom)                         # (B, C_out, Ho, Wo)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        ctx.geom, ctx.be, ctx.reference, ctx.x2 = geom, be, reference, x2
        ctx.save_for_backward(x, w, b)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, w, b = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (x, w, b), grad)
        be, need = ctx.be, ctx.needs_input_grad
        g = grad.data
        bsz, c_in = x.shape[:2]
        n_l = x.size // (bsz * c_in)
        gcols = be.im2col(g, ctx.geom)                               # (C_out*kh*kw, B*H*W)
        gx = gw = gb = None
        if need[0]:
            wm = w.data.reshape(c_in, -1)                            # (C_in, C_out*kh*kw)
            gx = be.xp.empty(x.shape, g.dtype)                       # written through a view
            be.matmul(wm, gcols.reshape(-1, bsz, n_l).transpose(1, 0, 2),
                      out=gx.reshape(bsz, c_in, n_l))                # (B, C_in, H*W)
            gx = _t(gx)
        if need[1]:
            gw = _t(be.matmul(ctx.x2, gcols.T).reshape(w.shape))     # (C_in, C_out*kh*kw)
        if need[2]:
            gb = _t(g.sum(axis=(0, 2, 3)))
        return gx, gw, gb


# ---------------------------------------------------------------------- attention
class AttentionFn(Function):
    """out = (P * M) v with P = masked softmax(scale q k^T + mask), M the dropout mask;
    dv = (P M)^T dout,  dP = (dout v^T) M,  dS = scale P (dP - rowsum(dP P)),
    dq = dS k,  dk = dS^T q.  q, k, v arrive flattened to (N, T, D)."""

    @staticmethod
    def forward(ctx, q, k, v, *, fmask, keep, drop, scale, causal, be, reference):
        s = be.matmul(q, k.transpose(0, 2, 1))                       # (N, Tq, Tk)
        if fmask is not None:
            s *= scale
            s += fmask
            kscale = 1.0
        else:
            kscale = scale
        p = be.masked_softmax(s, kscale, keep, causal)               # in place: s is P
        pd = p * drop if drop is not None else p
        out = be.matmul(pd, v)                                       # (N, Tq, Dv)
        ctx.be, ctx.reference, ctx.scale = be, reference, scale
        ctx.p, ctx.drop = p, drop
        ctx.save_for_backward(q, k, v)
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (q, k, v), grad)
        be, need = ctx.be, ctx.needs_input_grad
        g = grad.data
        p, drop = ctx.p, ctx.drop
        gq = gk = gv = None
        if need[2]:
            pd = p * drop if drop is not None else p
            gv = _t(be.matmul(pd.transpose(0, 2, 1), g))             # (N, Tk, Dv)
        if need[0] or need[1]:
            dp = be.matmul(g, v.data.transpose(0, 2, 1))             # (N, Tq, Tk)
            if drop is not None:
                dp *= drop
            ds = be.softmax_backward(p, dp, ctx.scale)               # grad of q k^T
            if need[0]:
                gq = _t(be.matmul(ds, k.data))                       # (N, Tq, D)
            if need[1]:
                gk = _t(be.matmul(ds.transpose(0, 2, 1), q.data))    # (N, Tk, D)
        return gq, gk, gv


# ---------------------------------------------------------------------- coupling
class AffineCouplingFn(Function):
    """(y, logabsdet) with y = x e^{log_s} + t (inverse: x = (y - t) e^{-log_s}) and
    logabsdet_b = +-sum_k log_s[b, k], one fused pass; backward one fused pass for all
    three gradients of y, from the output (no copy of the input is kept), plus the
    logabsdet term d/dlog_s = +-g_ld broadcast over k."""

    @staticmethod
    def forward(ctx, a, log_s, t, *, inverse, be, reference):
        out, ld = be.coupling_forward(a, log_s, t, inverse)
        ctx.be, ctx.reference, ctx.inverse = be, reference, inverse
        ctx.save_for_backward(a, log_s, t, out)
        return out, ld

    @staticmethod
    def backward(ctx, grad, grad_ld):
        a, log_s, t, out = ctx.saved_tensors
        if is_grad_enabled():
            return reference_vjp(ctx.reference, (a, log_s, t), grad, grad_ld)
        g = grad.data if grad is not None else ctx.be.xp.zeros_like(out.data)
        g_in, g_ls, g_t = ctx.be.coupling_backward(g, out.data, log_s.data, t.data,
                                                   ctx.inverse)
        if grad_ld is not None:
            gld = grad_ld.data if not ctx.inverse else -grad_ld.data
            g_ls += gld.reshape((gld.shape[0],) + (1,) * (log_s.ndim - 1))  # (B, 1, ...)
        return _t(g_in), _t(g_ls), _t(g_t)


# ---------------------------------------------------------------------- logsumexp
class LogsumexpFn(Function):
    """lse_i = log sum_j exp(x_ij) per row;  dx_ij = g_i exp(x_ij - m_i) / sum_j exp(x_ij - m_i)"""

    @staticmethod
    def forward(ctx, x, *, keepdims, be, reference):
        x2 = be.c(x).reshape(-1, x.shape[-1])                        # (R, K)
        lse, saved = be.row_logsumexp(x2)                            # (R,), row max and sum
        ctx.be, ctx.reference, ctx.lse_saved, ctx.keepdims = be, reference, saved, keepdims
        ctx.save_for_backward(x)
        shape = x.shape[:-1] + ((1,) if keepdims else ())
        return lse.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if is_grad_enabled():
            ref, kd = ctx.reference, ctx.keepdims
            return reference_vjp(lambda z: ref(z, -1, kd), (x,), grad)
        be = ctx.be
        x2 = be.c(x.data).reshape(-1, x.shape[-1])
        gx = be.row_logsumexp_backward(x2, ctx.lse_saved, be.c(grad.data).reshape(-1))
        return _t(gx.reshape(x.shape))


# ---------------------------------------------------------------------- contrastive
def _row_weights(xp, grad: Tensor, n_rows: int, reduction: str, dtype):
    """Upstream gradient of each row's loss for mean / sum / none."""
    g = grad.data
    if reduction == "none":
        return xp.ascontiguousarray(g, dtype=dtype)
    scale = g.reshape(()) / n_rows if reduction == "mean" else g.reshape(())
    return xp.ones(n_rows, dtype=dtype) * scale.astype(dtype)     # 0-d array, numpy or cupy


def _reduce_rows(xp, loss, reduction: str):
    if reduction == "mean":
        return xp.asarray(loss.mean(dtype=loss.dtype))
    if reduction == "sum":
        return xp.asarray(loss.sum(dtype=loss.dtype))
    return loss


class NTXentFn(Function):
    """SimCLR NT-Xent: z = normalize([z1; z2]), S = z z^T / tau (diag masked), row CE with
    target i + N mod 2N.  dS = G + G^T with G_ij = w_i (P_ij - [j = pos i]) / tau,
    dz_hat = dS z_hat, dz = (dz_hat - z_hat <dz_hat, z_hat>) / ||z||."""

    @staticmethod
    def forward(ctx, z1, z2, *, tau, reduction, be, reference):
        xp = be.xp
        n = z1.shape[0]
        zn, norm = be.normalize_rows(xp.concatenate([z1, z2], axis=0))  # (2N, D)
        # A @ A.T would take BLAS's syrk path, which is slower here than a plain GEMM on a
        # transposed copy (DEVELOPERS.md performance facts).
        s = be.matmul(zn, be.c(zn.T))                                    # (2N, 2N)
        loss = be.row_cross_entropy(s, 1.0 / tau, n, True)               # s is now P
        ctx.be, ctx.reference, ctx.tau, ctx.reduction = be, reference, tau, reduction
        ctx.zn, ctx.norm, ctx.p = zn, norm, s
        ctx.save_for_backward(z1, z2)
        return _reduce_rows(xp, loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        z1, z2 = ctx.saved_tensors
        if is_grad_enabled():
            ref, tau, red = ctx.reference, ctx.tau, ctx.reduction
            return reference_vjp(lambda a, b: ref(a, b, tau, red), (z1, z2), grad)
        be = ctx.be
        n2 = ctx.p.shape[0]
        w = _row_weights(be.xp, grad, n2, ctx.reduction, ctx.p.dtype)
        h = be.cross_entropy_grad(ctx.p, w, 1.0 / ctx.tau, n2 // 2, True)  # (2N, 2N) sym.
        gzn = be.matmul(h, ctx.zn)                                        # (2N, D)
        gz = be.normalize_rows_backward(gzn, ctx.zn, ctx.norm)
        n = n2 // 2
        return _t(gz[:n]), _t(gz[n:])


class InfoNCEFn(Function):
    """InfoNCE with in-batch negatives: S = q_hat k_hat^T / tau, row CE with target i.
    G = w (P - I) / tau,  dq_hat = G k_hat,  dk_hat = G^T q_hat, then the normalisations."""

    @staticmethod
    def forward(ctx, q, k, *, tau, reduction, be, reference):
        qn, nq = be.normalize_rows(q)
        kn, nk = be.normalize_rows(k)
        s = be.matmul(qn, be.c(kn.T))                                # (N, N)
        loss = be.row_cross_entropy(s, 1.0 / tau, 0, False)          # s is now P
        ctx.be, ctx.reference, ctx.tau, ctx.reduction = be, reference, tau, reduction
        ctx.qn, ctx.nq, ctx.kn, ctx.nk, ctx.p = qn, nq, kn, nk, s
        ctx.save_for_backward(q, k)
        return _reduce_rows(be.xp, loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        q, k = ctx.saved_tensors
        if is_grad_enabled():
            ref, tau, red = ctx.reference, ctx.tau, ctx.reduction
            return reference_vjp(lambda a, b: ref(a, b, None, tau, red), (q, k), grad)
        be, need = ctx.be, ctx.needs_input_grad
        n = ctx.p.shape[0]
        w = _row_weights(be.xp, grad, n, ctx.reduction, ctx.p.dtype)
        g = be.cross_entropy_grad(ctx.p, w, 1.0 / ctx.tau, 0, False)    # (N, N)
        gq = gk = None
        if need[0]:
            gq = _t(be.normalize_rows_backward(be.matmul(g, ctx.kn), ctx.qn, ctx.nq))
        if need[1]:
            gk = _t(be.normalize_rows_backward(be.matmul(g.T, ctx.qn), ctx.kn, ctx.nk))
        return gq, gk
