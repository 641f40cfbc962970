"""WaveNet (van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio"), seed 001.

p(x) = prod_t p(x_t | x_<t [, c]) over 8-bit mu-law codes x_t in {0..255} with a 256-way
softmax (Sec. 2.2), computed for all t in one pass by a stack of causal dilated 1-D
convolutions (Sec. 2.1): kernel 2, dilations 1, 2, ..., 2^(L-1), repeated num_blocks times.

    z = tanh(W_f,k * h + V_f,k * c) . sigmoid(W_g,k * h + V_g,k * c)       (eq. 2, 3)
    h <- h + 1x1(z) (residual),   skip_k = 1x1(z)                           (Sec. 2.4, Fig. 4)
    logits = 1x1(relu(1x1(relu(sum_k skip_k))))

The input is shifted one step right (h_t is the embedding of x_{t-1}; h_0 = 0), so the
logits at t see exactly x_{t-R} .. x_{t-1}, R = 1 + sum_k (kernel_size - 1) d_k (the
`receptive_field`); p(x_0) is the model's distribution given an empty past. `c` is optional
local conditioning (B, cond_channels, T), already at the sample rate (eq. 3).

Generation caches each layer's past inputs (Paine et al. 2016, "Fast Wavenet Generation
Algorithm"): a step costs O(layers) instead of a pass over the receptive field.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Categorical
from tinylatent.nn.conv import conv1d
from tinylatent.tensor import Tensor

from .config import resolve_config

__all__ = ["WaveNet", "WaveNetConfig"]


@dataclass(frozen=True)
class WaveNetConfig:
    quantization_channels: int = 256   # mu-law codes (the softmax size)
    hidden_channels: int = 32          # residual channels
    skip_channels: int = 64
    kernel_size: int = 2
    num_layers: int = 10               # per block: dilations 1 .. 2^(num_layers - 1)
    num_blocks: int = 1                # repeats of the dilation cycle
    cond_channels: int = 0             # > 0: local conditioning c (B, cond_channels, T)


class WaveNet(nn.Module):
    """forward(x (B, T) int codes[, c]) -> logits (B, Q, T) of p(x_t | x_<t);
    log_prob(x) -> (B,) in nats; sample(n, length) -> (n, length) codes (cached, fast)."""

    def __init__(self, config: WaveNetConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = resolve_config(self, WaveNetConfig, config, overrides)
        if cfg.kernel_size < 2 or cfg.num_layers < 1 or cfg.num_blocks < 1:
            raise ValueError(f"WaveNet: need kernel_size >= 2, num_layers >= 1, num_blocks >= "
                             f"1, got {cfg.kernel_size}, {cfg.num_layers}, {cfg.num_blocks}")
        q, h, s = cfg.quantization_channels, cfg.hidden_channels, cfg.skip_channels
        self.quantization_channels, self.kernel_size = q, cfg.kernel_size
        self.dilations = [2 ** i for _ in range(cfg.num_blocks) for i in range(cfg.num_layers)]
        self.receptive_field = 1 + sum((cfg.kernel_size - 1) * d for d in self.dilations)
        self.embed = nn.Embedding(q, h)                     # = a 1x1 conv of one-hot(x)
        self.dilated = nn.ModuleList([nn.Conv1d(h, 2 * h, cfg.kernel_size, dilation=d)
                                      for d in self.dilations])       # filter | gate
        self.cond = (nn.ModuleList([nn.Conv1d(cfg.cond_channels, 2 * h, 1, bias=False)
                                    for _ in self.dilations]) if cfg.cond_channels else None)
        # the last layer's output only feeds the skip sum: no residual 1x1 there
        self.residual = nn.ModuleList([nn.Conv1d(h, h, 1) for _ in self.dilations[1:]])
        self.skip = nn.ModuleList([nn.Conv1d(h, s, 1) for _ in self.dilations])
        self.out_hidden = nn.Conv1d(s, s, 1)
        self.out = nn.Conv1d(s, q, 1)

    # ------------------------------------------------------------------ full pass
    def _codes(self, x, name: str) -> np.ndarray:
        codes = np.asarray(x.numpy() if isinstance(x, Tensor) else x)
        if codes.ndim != 2 or codes.dtype.kind not in "iu":
            raise ValueError(f"WaveNet.{name}: expected integer codes (B, T), got "
                             f"{codes.dtype} shape {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.quantization_channels):
            raise ValueError(f"WaveNet.{name}: codes must lie in [0, "
                             f"{self.quantization_channels}), got [{codes.min()}, "
                             f"{codes.max()}]")
        return codes.astype(np.int64)

    def _check_cond(self, c, length: int, n: int, name: str):
        if self.cond is None:
            if c is not None:
                raise ValueError(f"WaveNet.{name}: conditioning c given but cond_channels=0")
            return None
        want = (n, self.config.cond_channels, length)
        if c is None or tuple(c.shape) != want:
            raise ValueError(f"WaveNet.{name}: local conditioning c must have shape {want}, "
                             f"got {None if c is None else tuple(c.shape)}")
        return c

    def _gate(self, a: Tensor) -> Tensor:
        h = a.shape[1] // 2
        return tl.tanh(a[:, :h]) * tl.sigmoid(a[:, h:])

    def _head(self, skips: Tensor) -> Tensor:
        return self.out(tl.relu(self.out_hidden(tl.relu(skips))))

    def forward(self, x, c=None) -> Tensor:
        codes = self._codes(x, "forward")
        c = self._check_cond(c, codes.shape[1], len(codes), "forward")
        e = self.embed(tl.tensor(codes)).transpose(1, 2)              # (B, h, T)
        h = tl.pad(e, (1, 0))[:, :, :-1]                              # h_t = embed(x_{t-1})
        skips = 0.0
        for k, d in enumerate(self.dilations):
            conv = self.dilated[k]
            a = conv1d(tl.pad(h, ((self.kernel_size - 1) * d, 0)), conv.weight, conv.bias,
                       dilation=d)                                    # causal, (B, 2h, T)
            if c is not None:
                a = a + self.cond[k](c)
            z = self._gate(a)                                         # (B, h, T)
            skips = skips + self.skip[k](z)
            if k < len(self.residual):
                h = h + self.residual[k](z)
        return self._head(skips)                                      # (B, Q, T)

    def log_prob_steps(self, x, c=None) -> Tensor:
        """log p(x_t | x_<t [, c]) for every t, (B, T) in nats."""
        logits = self(x, c).transpose(1, 2)                           # (B, T, Q)
        return Categorical(logits=logits).log_prob(self._codes(x, "log_prob"))

    def log_prob(self, x, c=None) -> Tensor:
        """log p(x) = sum_t log p(x_t | x_<t), (B,) in nats."""
        return self.log_prob_steps(x, c).sum(axis=1)

    def loss(self, x, c=None) -> tuple[Tensor, dict]:
        """Mean NLL in nats per sample (and bits per sample in the metrics)."""
        nll = -self.log_prob_steps(x, c).mean()
        return nll, {"loss": nll.detach(), "nll": nll.detach(),
                     "bits_per_sample": nll.detach() / float(np.log(2))}

    # ------------------------------------------------------------------ generation
    def _incremental(self, n: int):
        """A step function over cached layer inputs (Paine et al. 2016): each layer keeps the
        last (kernel_size - 1) d inputs it saw, so the dilated taps are read from the queue.
        step(prev codes (n,), c_t (n, cond) or None) -> logits (n, Q) of the next sample."""
        k = self.kernel_size
        dt, dev = self.out.weight.dtype, self.out.weight.device
        hidden = self.config.hidden_channels
        queues = [deque([tl.zeros(n, hidden, dtype=dt, device=dev)] * ((k - 1) * d),
                        maxlen=(k - 1) * d) for d in self.dilations]

        def step(prev, c_t):
            h = (tl.zeros(n, hidden, dtype=dt, device=dev) if prev is None
                 else self.embed(tl.tensor(prev)))                    # (n, h)
            skips = 0.0
            for i, d in enumerate(self.dilations):
                q, conv = queues[i], self.dilated[i]
                # taps j = 0..k-1 read the input (k - 1 - j) d steps back; the last is h
                taps = [q[len(q) - (k - 1 - j) * d] for j in range(k - 1)] + [h]
                a = conv.bias
                for j, tap in enumerate(taps):
                    a = a + tl.matmul(tap, conv.weight[:, :, j].transpose(0, 1))   # (n, 2h)
                if c_t is not None:
                    a = a + tl.matmul(c_t, self.cond[i].weight[:, :, 0].transpose(0, 1))
                q.append(h)
                z = self._gate(a)
                skips = skips + tl.matmul(z, self.skip[i].weight[:, :, 0].transpose(0, 1)) \
                    + self.skip[i].bias
                if i < len(self.residual):
                    h = h + tl.matmul(z, self.residual[i].weight[:, :, 0].transpose(0, 1)) \
                        + self.residual[i].bias
            return self._head(skips.unsqueeze(-1))[:, :, 0]           # (n, Q)
        return step

    @tl.no_grad()
    def incremental_logits(self, x, c=None) -> Tensor:
        """forward(x, c) computed one step at a time through the cached generator (teacher
        forcing): equal to forward up to rounding; (B, Q, T)."""
        codes = self._codes(x, "incremental_logits")
        c = self._check_cond(c, codes.shape[1], len(codes), "incremental_logits")
        step = self._incremental(len(codes))
        out = [step(None if t == 0 else codes[:, t - 1], None if c is None else c[:, :, t])
               for t in range(codes.shape[1])]
        return tl.stack(out, axis=2)

    @tl.no_grad()
    def sample(self, n: int, length: int | None = None, generator=None, c=None,
               temperature: float = 1.0, fast: bool = True) -> Tensor:
        """n sequences (n, length) of codes by ancestral sampling. fast=True: the cached
        step, O(layers) per sample; fast=False: a full forward pass over the sequence so far
        at every step (the naive reference). Default length: the receptive field."""
        length = self.receptive_field if length is None else length
        c = self._check_cond(c, length, n, "sample")
        codes = np.zeros((n, length), dtype=np.int64)
        step = self._incremental(n) if fast else None
        for t in range(length):
            c_t = None if c is None else c[:, :, t]
            if fast:
                logits = step(None if t == 0 else codes[:, t - 1], c_t)      # (n, Q)
            else:
                # the output at t sees x_{t-R} .. x_{t-1}: a window from t - R suffices (its
                # first position's own input, x_{t-R-1}, is not seen)
                ctx = max(0, t - self.receptive_field)
                c_ctx = None if c is None else c[:, :, ctx: t + 1]
                logits = self(codes[:, ctx: t + 1], c_ctx)[:, :, -1]
            draw = Categorical(logits=logits / temperature).sample(generator=generator)
            codes[:, t] = draw.numpy()
        return tl.tensor(codes)
