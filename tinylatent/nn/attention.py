"""Multi-head attention (Vaswani et al. 2017, sec. 3.2), PyTorch's layout and masks.

Parameters: in_proj_weight (3E, E) holding [W_q; W_k; W_v] (or q/k/v_proj_weight when the
key/value sizes differ from E), in_proj_bias (3E,), out_proj = Linear(E, E), so a state
dict matches torch.nn.MultiheadAttention's key for key.

Masks follow torch.nn.MultiheadAttention, which is the *opposite* of
scaled_dot_product_attention for booleans: here True means "masked out".
  key_padding_mask (B, S): True at padded keys.   attn_mask (L, S) or (B*heads, L, S).
Float masks are added to the scores.
"""
from __future__ import annotations

import math

from .. import ops
from ..ops.attention import scaled_dot_product_attention
from ..tensor import Tensor, empty, is_float_dtype, zeros
from . import functional as F
from . import init
from .linear import Linear
from .module import Module, Parameter

__all__ = ["MultiheadAttention", "scaled_dot_product_attention"]


def _attention_with_weights(q: Tensor, k: Tensor, v: Tensor, mask, dropout_p: float,
                            generator) -> tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d) + mask) v, also returning the weights; mask is None, a
    boolean keep-mask (True = attend) or an additive float mask. Rows with every key
    masked get zero weights (as the SDPA reference does)."""
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, h, L, S)
    if mask is not None and is_float_dtype(mask.dtype):
        scores = scores + mask
        attn = ops.softmax(scores, axis=-1)
    elif mask is not None:
        xp = q.xp
        keep = xp.broadcast_to(mask.array, scores.shape)
        any_kept = keep.any(axis=-1, keepdims=True)
        scores = ops.where(Tensor._make(keep), scores, -math.inf)
        scores = ops.where(Tensor._make(any_kept), scores, 0.0)
        attn = ops.softmax(scores, axis=-1) * Tensor._make(any_kept.astype(scores.dtype))
    else:
        attn = ops.softmax(scores, axis=-1)
    dropped = F.dropout(attn, dropout_p, True, generator) if dropout_p > 0 else attn
    return dropped @ v, attn                                       # (B, h, L, Dv)


class MultiheadAttention(Module):
    """out = concat(head_1..head_h) W_o, head_i = attention(q W_q^i, k W_k^i, v W_v^i).

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
            average_attn_weights=True, is_causal=False) -> (output, weights or None)
    Shapes: (L, B, E) or with batch_first (B, L, E); unbatched (L, E) also works.
    Weights are (B, L, S) averaged over heads, or (B, heads, L, S).
    With need_weights=False the fused tl.ops.attention kernel does the work.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
                 device=None, dtype=None, generator=None) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim={embed_dim} must be divisible by "
                             f"num_heads={num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first, self.generator = dropout, batch_first, generator
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, dtype=dtype,
                                                  device=device))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, dtype=dtype,
                                                 device=device))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, dtype=dtype,
                                                 device=device))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, dtype=dtype,
                                                 device=device))
        if bias:
            self.in_proj_bias = Parameter(zeros(3 * embed_dim, dtype=dtype, device=device))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # PyTorch: xavier_uniform on the packed projection, zero biases; out_proj.weight
        # keeps Linear's default init.
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _projections(self):
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        return (wq, bq), (wk, bk), (wv, bv)

    def _merge_masks(self, attn_mask, key_padding_mask, b: int, tq: int, ts: int, like):
        """One mask for SDPA, shaped to broadcast to (B, heads, L, S): a boolean keep-mask
        (True = attend) when both inputs are boolean, else an additive float mask."""
        name = "MultiheadAttention"
        h = self.num_heads
        xp = like.xp
        masks = []
        if attn_mask is not None:
            m = attn_mask
            if m.ndim == 2:
                if tuple(m.shape) != (tq, ts):
                    raise ValueError(f"{name}: a 2-D attn_mask must be (L, S) = {(tq, ts)}, "
                                     f"got {tuple(m.shape)}")
                m = m.reshape(1, 1, tq, ts)
            elif m.ndim == 3:
                if tuple(m.shape) != (b * h, tq, ts):
                    raise ValueError(f"{name}: a 3-D attn_mask must be (B*heads, L, S) = "
                                     f"{(b * h, tq, ts)}, got {tuple(m.shape)}")
                m = m.reshape(b, h, tq, ts)
            else:
                raise ValueError(f"{name}: attn_mask must be 2-D or 3-D, got shape "
                                 f"{tuple(m.shape)}")
            masks.append(m)
        if key_padding_mask is not None:
            m = key_padding_mask
            if tuple(m.shape) != (b, ts):
                raise ValueError(f"{name}: key_padding_mask must be (B, S) = {(b, ts)}, got "
                                 f"{tuple(m.shape)}")
            masks.append(m.reshape(b, 1, 1, ts))
        if not masks:
            return None
        if all(m.dtype.kind == "b" for m in masks):
            keep = ~masks[0].array
            for m in masks[1:]:
                keep = xp.logical_and(keep, ~m.array)
            return Tensor._make(keep)
        total = None
        for m in masks:
            if m.dtype.kind == "b":
                add = xp.where(m.array, -math.inf, 0.0).astype(like.dtype)
            else:
                add = m.array.astype(like.dtype)
            total = add if total is None else total + add
        return Tensor._make(total)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask=None,
                need_weights: bool = True, attn_mask=None, average_attn_weights: bool = True,
                is_causal: bool = False):
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if query.ndim != 3 or query.shape[-1] != self.embed_dim:
            raise ValueError(f"MultiheadAttention: query must be (L, B, E={self.embed_dim}) "
                             f"(or batch_first / unbatched), got shape {tuple(query.shape)}")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"MultiheadAttention: key {tuple(key.shape)} and value "
                             f"{tuple(value.shape)} must share (S, B)")
        if key.ndim != 3 or key.shape[1] != query.shape[1]:
            raise ValueError(f"MultiheadAttention: query {tuple(query.shape)} and key "
                             f"{tuple(key.shape)} must have the same batch size (as (L, B, E) "
                             "and (S, B, E) after batch_first)")
        tq, b, e = query.shape
        ts = key.shape[0]
        h, hd = self.num_heads, self.head_dim
        if is_causal and attn_mask is None:
            attn_mask = Tensor._make(~query.xp.tril(query.xp.ones((tq, ts), dtype=bool)))
        (wq, bq), (wk, bk), (wv, bv) = self._projections()

        def heads(x, w, bias, t):                                  # (T, B, E) -> (B, h, T, hd)
            return F.linear(x, w, bias).reshape(t, b, h, hd).permute(1, 2, 0, 3)

        q = heads(query, wq, bq, tq)
        k = heads(key, wk, bk, ts)
        v = heads(value, wv, bv, ts)
        mask = self._merge_masks(attn_mask, key_padding_mask, b, tq, ts, q)
        p = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = _attention_with_weights(q, k, v, mask, p, self.generator)
        else:
            out = scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                               generator=self.generator)
            weights = None
        out = out.permute(2, 0, 1, 3).reshape(tq, b, e)             # (L, B, E)
        out = self.out_proj(out)
        if weights is not None and average_attn_weights:
            weights = weights.mean(axis=1)                          # (B, L, S)
        if unbatched:
            out = out.squeeze(1)
            if weights is not None:
                weights = weights.squeeze(0)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}")
