"""Training steps of the autoregressive image and audio models, tinylatent next to PyTorch.

PixelCNN (7x7 mask-A conv, 5 residual 3x3 mask-B layers, 32 channels) on a batch of
binarised MNIST digits, and WaveNet (dilations 1..512, 32 residual / 64 skip channels) on
windows of the embedded speech clip. The tinylatent side is the model class users train
(tinylatent.models.PixelCNN / WaveNet); the PyTorch side is the same network written in
torch with the same parameter names, loaded with tinylatent's initial weights. Values are
checked first (test_bench_models' checks: the float32 step's loss and gradients, then 3
float64 Adam steps elementwise); times are recorded, never asserted.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import torch
from benchmarks.test_bench_models import (_batch, _build_pair, _check_first_step_float32,
                                          _check_steps_float64)
from tinylatent.models.pixelcnn import PixelCNN
from tinylatent.models.wavenet import WaveNet


def _torch_pixelcnn(hidden=32, layers=5):
    nn, F = torch.nn, torch.nn.functional

    class MaskedConv2d(nn.Conv2d):
        def __init__(self, c_in, c_out, k, mask_type):
            super().__init__(c_in, c_out, k, padding=k // 2)
            mask = torch.zeros(1, 1, k, k)
            mask[:, :, : k // 2] = 1
            mask[:, :, k // 2, : k // 2 + (mask_type == "B")] = 1
            self.register_buffer("mask", mask, persistent=False)

        def forward(self, x):
            return F.conv2d(x, self.weight * self.mask.to(self.weight.dtype), self.bias,
                            padding=self.padding)

    class TorchPixelCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.input = MaskedConv2d(1, hidden, 7, "A")
            self.layers = nn.ModuleList([MaskedConv2d(hidden, hidden, 3, "B")
                                         for _ in range(layers)])
            self.out_hidden = nn.Conv2d(hidden, hidden, 1)
            self.out = nn.Conv2d(hidden, 1, 1)

        def forward(self, x):
            h = self.input(x)
            for layer in self.layers:
                h = h + layer(F.relu(h))
            return self.out(F.relu(self.out_hidden(F.relu(h))))

    return TorchPixelCNN()


def _torch_wavenet(q=256, hidden=32, skip=64, layers=10):
    nn, F = torch.nn, torch.nn.functional
    dilations = [2 ** i for i in range(layers)]

    class TorchWaveNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(q, hidden)
            self.dilated = nn.ModuleList([nn.Conv1d(hidden, 2 * hidden, 2, dilation=d)
                                          for d in dilations])
            self.residual = nn.ModuleList([nn.Conv1d(hidden, hidden, 1)
                                           for _ in dilations[1:]])
            self.skip = nn.ModuleList([nn.Conv1d(hidden, skip, 1) for _ in dilations])
            self.out_hidden = nn.Conv1d(skip, skip, 1)
            self.out = nn.Conv1d(skip, q, 1)

        def forward(self, x):
            h = F.pad(self.embed(x).transpose(1, 2), (1, 0))[:, :, :-1]
            skips = 0.0
            for k, d in enumerate(dilations):
                a = self.dilated[k](F.pad(h, (d, 0)))
                z = torch.tanh(a[:, :hidden]) * torch.sigmoid(a[:, hidden:])
                skips = skips + self.skip[k](z)
                if k < len(self.residual):
                    h = h + self.residual[k](z)
            return self.out(F.relu(self.out_hidden(F.relu(skips))))

    return TorchWaveNet()


def pixelcnn_model(L):
    return _torch_pixelcnn() if L is torch else PixelCNN(hidden_channels=32, num_layers=5)


def pixelcnn_loss(L, b, dtype=np.float32):
    x_np = (np.random.default_rng(6).random((b, 1, 28, 28)) < _batch(b)).astype(dtype)
    if L is torch:
        x = torch.from_numpy(x_np)
        return lambda m: torch.nn.functional.binary_cross_entropy_with_logits(
            m(x), x, reduction="sum") / b
    x = tl.tensor(x_np)
    return lambda m: m.loss(x)[0]                        # -sum log Bern(x; sigmoid(l)) / B


def wavenet_model(L):
    return _torch_wavenet() if L is torch else WaveNet(hidden_channels=32, skip_channels=64,
                                                       num_layers=10)


def wavenet_loss(L, b, dtype=np.float32, window=2048):
    codes = tl.data.load_speech().mulaw
    starts = np.random.default_rng(7).integers(0, len(codes) - window, b)
    x_np = codes[starts[:, None] + np.arange(window)]                    # (B, window)
    if L is torch:
        x = torch.from_numpy(x_np)
        return lambda m: torch.nn.functional.cross_entropy(m(x), x)
    return lambda m: m.loss(x_np)[0]                     # mean -log p(x_t | x_<t), nats


WORKLOADS = {
    "pixelcnn": ("PixelCNN 28x28 32ch 5 layers step (B={b}, Adam)", pixelcnn_model,
                 pixelcnn_loss, 32, 8),
    "wavenet": ("WaveNet dilations 1..512 step ({b} x 2048 samples, Adam)", wavenet_model,
                wavenet_loss, 4, 1),
}


def _make(key, quick, dtype=np.float32):
    title, make_model, make_loss, b_full, b_quick = WORKLOADS[key]
    b = b_quick if quick else b_full
    tl_side, pt_side = _build_pair(make_model, lambda L: make_loss(L, b, dtype=dtype),
                                   dtype=dtype)
    return title.format(b=b), tl_side, pt_side


@pytest.mark.parametrize("key", list(WORKLOADS))
def test_training_step(bench, key):
    name, tl_side, pt_side = _make(key, bench.quick)

    def check():
        _check_first_step_float32(*_make(key, bench.quick)[1:], rtol=1e-4)
        _check_steps_float64(*_make(key, True, dtype=np.float64)[1:])

    bench.compare(name, tl_side.step, None if pt_side is None else pt_side.step, check=check,
                  group="models")
