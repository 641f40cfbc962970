"""Video pretext tasks on Moving MNIST (family 8 of MISSION.md; tl.data.moving_mnist).

Future-frame prediction (`FramePredictor`): an encoder-ConvLSTM-decoder in the manner of
Shi et al. 2015 ("Convolutional LSTM network"; the LSTM's matrix products replaced by
convolutions so the state keeps its spatial layout):

    i, f, o = sigmoid(.), g = tanh(.)   of   W * [x_t, h_{t-1}] + b     (* = 2-D convolution)
    c_t = f c_{t-1} + i g,   h_t = o tanh(c_t)                            (Shi et al. eq. 3)

Each frame x_t is encoded by a stride-2 conv, the ConvLSTM runs at half resolution, and a
transposed conv decodes h_t into the logits of the next frame x_{t+1}. Pixels lie in [0, 1];
the loss is the Bernoulli cross-entropy of every next frame given the true past (teacher
forcing), -1/(T-1) sum_t log p(x_{t+1} | x_{<=t}) summed over pixels. `rollout` predicts
beyond the given frames by feeding back its own mean predictions. Its figures are judged
against copying the last frame and against linear extrapolation clip(2 x_t - x_{t-1}).

Arrow of time (`ArrowOfTime`; Wei, Lim, Zisserman & Freeman 2018): is a clip played forward
or reversed? Every clip goes into the batch both ways (label 1 forward, 0 reversed) and a
conv net over its frames stacked as channels (early fusion) classifies it. On the plain
bouncing digits time is reversible, so chance is the best possible; on the "gravity" and
"fading" variants (inelastic bounces, fading ink) it is not, and the task becomes learnable.
(The paper's network reads optical flow with a temporal class-activation map; here the
frames themselves are the input.)

Order verification (Misra et al. 2016) lives in order_verification.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import nn, ops
from ..autograd import no_grad
from ..distributions import Bernoulli, Categorical
from ..tensor import Tensor, zeros
from .config import resolve_config
from .pretext import conv_block

__all__ = ["ConvLSTMCell", "FramePredictorConfig", "FramePredictor", "ArrowOfTimeConfig",
           "ArrowOfTime", "reverse_clips", "copy_last_mse", "linear_extrapolation_mse"]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step (Shi et al. 2015, eq. 3, without the peephole terms): the four
    gates [i, f, g, o] from one convolution of the concatenated input and hidden state."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                              padding=kernel_size // 2)

    def forward(self, x: Tensor, state: tuple | None = None) -> tuple:
        if state is None:
            h = zeros(len(x), self.hidden_channels, *x.shape[-2:], dtype=x.dtype,
                          device=x.device)
            state = (h, h)
        h, c = state
        gates = self.conv(ops.cat([x, h], 1))                       # (B, 4 Hc, H, W)
        i, f, g, o = ops.chunk(gates, 4, 1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c


def _videos(batch) -> Tensor:
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if x.ndim != 5:
        raise ValueError(f"expected videos (B, T, C, H, W), got {tuple(x.shape)}")
    return x


@dataclass(frozen=True)
class FramePredictorConfig:
    in_channels: int = 1
    image_size: int = 32
    hidden_channels: int = 32        # ConvLSTM state channels (at half resolution)
    kernel_size: int = 5             # ConvLSTM kernel: covers a step of the digits' motion


class FramePredictor(nn.Module):
    """Encoder (stride-2 conv) -> ConvLSTM -> decoder (transposed conv): next-frame logits."""

    def __init__(self, config: FramePredictorConfig | None = None, **overrides):
        super().__init__()
        cfg = resolve_config(self, FramePredictorConfig, config, overrides)
        if cfg.image_size % 2:
            raise ValueError(f"FramePredictor: image_size must be even, got {cfg.image_size}")
        self.config = cfg
        hc = cfg.hidden_channels
        self.encoder = nn.Sequential(nn.Conv2d(cfg.in_channels, hc, 4, stride=2, padding=1),
                                     nn.ReLU())
        self.cell = ConvLSTMCell(hc, hc, cfg.kernel_size)
        self.decoder = nn.Sequential(nn.ConvTranspose2d(hc, hc, 4, stride=2, padding=1),
                                     nn.ReLU(), nn.Conv2d(hc, cfg.in_channels, 3, padding=1))

    def _check(self, batch, min_frames: int = 2) -> Tensor:
        x = _videos(batch)
        c, s = self.config.in_channels, self.config.image_size
        if tuple(x.shape[2:]) != (c, s, s) or x.shape[1] < min_frames:
            raise ValueError(f"FramePredictor: expected videos (B, T >= {min_frames}, {c}, "
                             f"{s}, {s}), got {tuple(x.shape)}")
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Logits of x_{t+1} given x_{<=t}, for t = 1..T: (B, T, C, H, W)."""
        x = self._check(x, 1)
        state, out = None, []
        for t in range(x.shape[1]):
            state = self.cell(self.encoder(x[:, t]), state)
            out.append(self.decoder(state[0]))
        return ops.stack(out, 1)

    def loss(self, batch) -> tuple:
        x = self._check(batch)
        logits = self(x[:, :-1])                                     # predicts x[:, 1:]
        nll = -Bernoulli(logits=logits).log_prob(x[:, 1:]).sum((-3, -2, -1)).mean()
        mse = ((logits.detach().sigmoid() - x[:, 1:]) ** 2).mean()
        return nll, {"loss": nll.detach(), "mse": mse}

    @no_grad()
    def predict_next(self, x: Tensor) -> Tensor:
        """Mean prediction of every next frame given the true past: (B, T-1, C, H, W)."""
        return self(self._check(x)[:, :-1]).sigmoid()

    @no_grad()
    def rollout(self, context: Tensor, steps: int) -> Tensor:
        """Predict `steps` frames after `context` (B, T0, C, H, W), each fed back as the
        next input (its mean, sigmoid(logits)): (B, steps, C, H, W)."""
        state = None
        for t in range(self._check(context, 1).shape[1]):
            state = self.cell(self.encoder(context[:, t]), state)
        out = []
        for _ in range(steps):
            frame = self.decoder(state[0]).sigmoid()
            out.append(frame)
            state = self.cell(self.encoder(frame), state)
        return ops.stack(out, 1)

    def encode(self, x: Tensor) -> Tensor:
        """The ConvLSTM's last hidden state, spatially averaged: (B, hidden_channels)."""
        x = self._check(x, 1)
        with no_grad():
            state = None
            for t in range(x.shape[1]):
                state = self.cell(self.encoder(x[:, t]), state)
            return state[0].mean((-2, -1))


def copy_last_mse(x) -> float:
    """Per-pixel MSE of predicting x_{t+1} = x_t on every step of videos x (B, T, ...)."""
    x = x.array if isinstance(x, Tensor) else x
    return float(((x[:, 1:] - x[:, :-1]) ** 2).mean())


def linear_extrapolation_mse(x) -> float:
    """Per-pixel MSE of x_{t+1} = clip(2 x_t - x_{t-1}, 0, 1), for t >= 2 (needs two frames).
    Compare with the model's error on the same steps: `predict_next(x)[:, 1:]`."""
    x = x.array if isinstance(x, Tensor) else x
    guess = (2 * x[:, 1:-1] - x[:, :-2]).clip(0, 1)
    return float(((x[:, 2:] - guess) ** 2).mean())


# ------------------------------------------------------------------------- arrow of time
def reverse_clips(x: Tensor) -> tuple:
    """Each clip forward and reversed in time: x (B, T, C, H, W) -> ((2B, T, C, H, W), y)
    with clip b forward at row 2 b (y = 1) and reversed at row 2 b + 1 (y = 0)."""
    x = _videos(x).detach()
    xp = x.xp
    a = x.array
    both = xp.stack([a, a[:, ::-1]], 1).reshape((-1,) + a.shape[1:])  # (2B, T, C, H, W)
    y = xp.tile(xp.asarray([1, 0], dtype=xp.int64), len(a))
    return Tensor._make(xp.ascontiguousarray(both)), Tensor._make(y)


@dataclass(frozen=True)
class ArrowOfTimeConfig:
    in_channels: int = 1
    num_frames: int = 8
    image_size: int = 32
    hidden_channels: tuple = (16, 32, 64)


class ArrowOfTime(nn.Module):
    """Early-fusion conv net: the T frames as T*C input channels -> conv blocks -> global
    average pool -> 2 logits (reversed, forward)."""

    def __init__(self, config: ArrowOfTimeConfig | None = None, **overrides):
        super().__init__()
        cfg = resolve_config(self, ArrowOfTimeConfig, config, overrides)
        self.config = cfg
        widths = [cfg.in_channels * cfg.num_frames, *cfg.hidden_channels]
        self.blocks = nn.Sequential(*[conv_block(a, b) for a, b in zip(widths, widths[1:])])
        self.head = nn.Linear(widths[-1], 2)

    def _check(self, batch) -> Tensor:
        x = _videos(batch)
        cfg = self.config
        want = (cfg.num_frames, cfg.in_channels, cfg.image_size, cfg.image_size)
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"ArrowOfTime: expected clips (B, {', '.join(map(str, want))}), "
                             f"got {tuple(x.shape)}")
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, 2) of [reversed, forward]."""
        x = self._check(x)
        h = self.blocks(x.reshape(len(x), -1, *x.shape[-2:]))  # (B, T*C, H, W)
        return self.head(h.mean((-2, -1)))

    def loss(self, batch) -> tuple:
        both, y = reverse_clips(self._check(batch))
        logits = self(both)
        nll = -Categorical(logits=logits).log_prob(y).mean()
        accuracy = (logits.detach().argmax(-1) == y).float().mean()
        return nll, {"loss": nll.detach(), "accuracy": accuracy}

    @no_grad()
    def accuracy(self, x: Tensor, batch_size: int = 200) -> float:
        """Fraction of the 2N clips (each forward and reversed) classified correctly."""
        hits = 0
        for i in range(0, len(x), batch_size):
            both, y = reverse_clips(self._check(x[i:i + batch_size]))
            hits += int((self(both).argmax(-1) == y).sum().item())
        return hits / (2 * len(x))

    def encode(self, x: Tensor) -> Tensor:
        """Globally pooled last conv block: (B, hidden_channels[-1]), frozen."""
        x = self._check(x)
        with no_grad():
            return self.blocks(x.reshape(len(x), -1, *x.shape[-2:])).mean((-2, -1))

