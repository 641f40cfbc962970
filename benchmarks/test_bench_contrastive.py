"""The SimCLR model's training step (tinylatent/models/simclr.py: conv encoder f, projection
head g, NT-Xent over 2N views) next to a PyTorch twin with the same layers, the same initial
weights and the same two augmented views.

Values first (the part that can fail): one float32 step agrees in the loss (rtol 1e-4) and
in every gradient (relative 2-norm 1e-2), and three float64 steps with Adam agree
elementwise (benchmarks/test_bench_models.py's checks). Then the time of one step,
tinylatent / PyTorch (goal <= 1.0), reported, never asserted. The augmentation is data
preparation and identical on both sides, so it is done once, outside the timed step.
"""
from __future__ import annotations

import numpy as np

import tinylatent as tl
from benchmarks.harness import torch
from benchmarks.test_bench_models import (Workload, _check_first_step_float32,
                                          _check_steps_float64, _copy_weights, _mnist)
from tinylatent.models import SimCLR
from tinylatent.ops.contrastive import nt_xent

# the measured encoder (the README row's): conv 32-64 without BatchNorm, h 128; the model's
# defaults have since gained BatchNorm and a 512-wide h (issue 18), which the twin lacks
BENCH_CONFIG = dict(batch_norm=False, hidden_features=128)


def torch_simclr():
    """PyTorch's SimCLR with tinylatent's parameter names: encoder.0 (conv trunk),
    encoder.1 (Linear to h), head.0 / head.2 (the projection MLP)."""
    nn = torch.nn
    trunk = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(),             # (B, 32, 14, 14)
                          nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(), nn.Flatten())  # (B, 3136)
    model = nn.Module()
    model.encoder = nn.Sequential(trunk, nn.Linear(64 * 7 * 7, 128), nn.ReLU())
    model.head = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 64))
    return model


def torch_nt_xent(z1, z2, tau):
    n = z1.shape[0]
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)          # (2N, D)
    sim = (z @ z.T / tau).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    return torch.nn.functional.cross_entropy(sim, (torch.arange(2 * n) + n) % (2 * n))


def _views(b: int) -> np.ndarray:
    """2b views (v1; v2) of the first b MNIST images, drawn once by the model's own T."""
    tl.manual_seed(0)
    v1, v2 = SimCLR(**BENCH_CONFIG).views(tl.tensor(_mnist(max(512, b))[:b]),
                            generator=np.random.default_rng(0))
    return np.concatenate([v1.numpy(), v2.numpy()])                        # (2B, 1, 28, 28)


def _pair(b: int, dtype=np.float32, with_torch=True):
    views = _views(b).astype(dtype)
    tl.manual_seed(0)
    model = SimCLR(**BENCH_CONFIG)
    if dtype != np.float32:
        model.to(dtype)
    tau = model.config.temperature
    v_tl = tl.tensor(views)

    def tl_loss(m):
        z = m.project(v_tl)                                                # (2B, 64)
        return nt_xent(z[:b], z[b:], tau)

    tl_side = Workload(tl, model, tl_loss)
    if not with_torch or torch is None:
        return tl_side, None
    twin = torch_simclr()
    _copy_weights(model, twin)
    v_pt = torch.from_numpy(views)

    def pt_loss(m):
        z = m.head(m.encoder(v_pt))
        return torch_nt_xent(z[:b], z[b:], tau)

    return tl_side, Workload(torch, twin, pt_loss)


def test_simclr_training_step(bench):
    b = bench.pick(quick=32, full=128)
    tl_side, pt_side = _pair(b)

    def check():
        _check_first_step_float32(*_pair(b), rtol=1e-4)
        _check_steps_float64(*_pair(b, dtype=np.float64))

    bench.compare(f"SimCLR model step (conv 32-64, h 128, z 64, 2x{b} views, NT-Xent, Adam)",
                  tl_side.step, None if pt_side is None else pt_side.step, check=check,
                  group="models", goal=1.0)


# --------------------------------------------------------------------------- CLIP
def torch_clip():
    """PyTorch's CLIP twin with tinylatent's parameter names (models/clip.py)."""
    nn = torch.nn
    model = nn.Module()
    model.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
    trunk = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(),
                          nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(), nn.Flatten())
    model.image_encoder = nn.Sequential(trunk, nn.Linear(64 * 7 * 7, 128), nn.ReLU())
    model.image_projection = nn.Linear(128, 64)
    model.token_embedding = nn.Embedding(64, 128)
    model.text_encoder = nn.Sequential(nn.Linear(128, 128), nn.ReLU())
    model.text_projection = nn.Linear(128, 64)
    return model


def torch_clip_loss(m, images, tokens):
    F = torch.nn.functional
    i = F.normalize(m.image_projection(m.image_encoder(images)), dim=-1)        # (N, E)
    mask = (tokens > 0).to(images.dtype)                                         # (N, L)
    mean = (m.token_embedding(tokens) * mask[..., None]).sum(1) / \
        mask.sum(1, keepdim=True).clamp(min=1.0)                                 # (N, H)
    t = F.normalize(m.text_projection(m.text_encoder(mean)), dim=-1)            # (N, E)
    logits = torch.exp(m.logit_scale.clamp(max=float(np.log(100.0)))) * i @ t.T
    target = torch.arange(len(images))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _clip_pair(b: int, dtype=np.float32, with_torch=True):
    from tinylatent.models.clip import CLIP, Captions
    cap = Captions()
    rng = np.random.default_rng(0)
    images = _mnist(max(512, b))[:b].astype(dtype)
    tokens = cap.tokens(cap.sample(rng.integers(0, 10, b), rng))                # (B, L)
    tl.manual_seed(0)
    model = CLIP()
    if dtype != np.float32:
        model.to(dtype)
    batch = (tl.tensor(images), tl.tensor(tokens))
    tl_side = Workload(tl, model, lambda m: m.loss(batch)[0])
    if not with_torch or torch is None:
        return tl_side, None
    twin = torch_clip()
    _copy_weights(model, twin)
    x, t = torch.from_numpy(images), torch.from_numpy(tokens)
    return tl_side, Workload(torch, twin, lambda m: torch_clip_loss(m, x, t))


def test_clip_training_step(bench):
    b = bench.pick(quick=32, full=128)
    tl_side, pt_side = _clip_pair(b)

    def check():
        _check_first_step_float32(*_clip_pair(b), rtol=1e-4)
        _check_steps_float64(*_clip_pair(b, dtype=np.float64))

    bench.compare(f"CLIP step (conv image tower, bag-of-words text tower, {b} pairs, "
                  "symmetric InfoNCE, Adam)", tl_side.step,
                  None if pt_side is None else pt_side.step, check=check, group="models",
                  goal=1.0)
