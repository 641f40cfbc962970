"""Adam step over the MLP VAE's 652,824 parameters (784-400-20-400-784), tinylatent's
`tl.optim.Adam` (fused Numba kernel, and the NumPy reference path) next to
`torch.optim.Adam` with default settings, from identical weights and gradients.

Two regimes:
  * fresh: the first steps (moments well inside float32's normal range);
  * denormal: after 1,200 steps of a sparse-gradient pattern like MNIST's first layer
    (input pixels that are almost never lit get a gradient once in a few hundred steps;
    in between, Adam's first moment m decays by 0.9 a step and spends ~150 steps as a
    denormal float, which x86 handles in microcode, 10-100x slower per operation).
    tinylatent's kernel flushes such moments to zero (see tinylatent/optim/_fused.py);
    PyTorch's CPU Adam does not.

Each timed call applies that step's sparse gradient change (the same few column writes on
both sides) and one optimizer step. The check runs both sides for the same steps and asserts
that the parameters agree.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import assert_close, assert_close_norm, torch

SHAPES = [(400, 784), (400,), (20, 400), (20,), (20, 400), (20,), (400, 20), (400,),
          (784, 400), (784,)]
N_PARAMS = sum(int(np.prod(s)) for s in SHAPES)   # 652,824
RING = 4096          # length of the precomputed sparse-gradient schedule
RARE_RATE = 1 / 400  # a rarely lit pixel's column gets a gradient once per ~400 steps
DENORMAL_WARMUP = 1200


def _problem(seed: int = 0) -> dict:
    """Initial weights, dense gradients and the sparse schedule of W1's rare columns."""
    rng = np.random.default_rng(seed)
    init = [(rng.standard_normal(s) * 0.05).astype(np.float32) for s in SHAPES]
    grads = [(rng.standard_normal(s) * 1e-2).astype(np.float32) for s in SHAPES]
    kind = rng.choice(3, size=784, p=[0.1, 0.4, 0.5])     # 0 never lit, 1 rare, 2 dense
    rare = np.flatnonzero(kind == 1)
    schedule = [rare[rng.random(rare.size) < RARE_RATE] for _ in range(RING)]
    first = grads[0].copy()                               # step 0: every lit column active
    first[:, kind == 0] = 0
    steady = first.copy()
    steady[:, rare] = 0                                   # afterwards: only dense columns
    return dict(init=init, grads=grads, first=first, steady=steady, schedule=schedule)


class _Workload:
    """One library's parameters, gradient buffers and optimizer; `step()` = one Adam step."""

    def __init__(self, lib: str, prob: dict, fused=None):
        self.prob, self.t = prob, 0
        if lib == "tl":
            self.params = [tl.tensor(a.copy(), requires_grad=True) for a in prob["init"]]
            for p, g in zip(self.params, prob["grads"]):
                p.grad = tl.tensor(g.copy())
            self.g1 = self.params[0].grad.array                 # the numpy buffer itself
            self.opt = tl.optim.Adam(self.params, fused=fused)
        else:
            self.params = [torch.tensor(a.copy(), requires_grad=True) for a in prob["init"]]
            for p, g in zip(self.params, prob["grads"]):
                p.grad = torch.from_numpy(g.copy())
            self.g1 = self.params[0].grad.numpy()              # shares memory with the grad
            self.opt = torch.optim.Adam(self.params)           # PyTorch defaults
        self.g1[...] = prob["first"]

    def step(self) -> None:
        if self.t == 1:
            self.g1[...] = self.prob["steady"]
        if self.t >= 1:   # undo the previous step's spikes, apply this step's
            prev = self.prob["schedule"][(self.t - 1) % RING]
            cur = self.prob["schedule"][self.t % RING]
            self.g1[:, prev] = 0
            self.g1[:, cur] = self.prob["grads"][0][:, cur]
        self.opt.step()
        self.t += 1

    def values(self) -> list:
        return [p.array if isinstance(p, tl.Tensor) else p.detach().numpy()
                for p in self.params]


def _prepared(fused, steps: int):
    prob = _problem()
    a = _Workload("tl", prob, fused=fused)
    b = _Workload("torch", prob) if torch is not None else None
    for _ in range(steps):
        a.step()
        if b is not None:
            b.step()
    return a, b


def _denormal_fraction(values) -> float:
    tiny = np.finfo(np.float32).tiny
    n = sum(int(((v != 0) & (np.abs(v) < tiny)).sum()) for v in values)
    return n / N_PARAMS


# memory factories (module level: each runs in a fresh process, full mode only)
def tl_adam_step_factory():
    return _Workload("tl", _problem()).step


def torch_adam_step_factory():
    return _Workload("torch", _problem()).step


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "reference"])
def test_adam_step_fresh(bench, fused):
    a, b = _prepared(fused, 0)
    label = "Numba kernel" if fused is None else "NumPy reference"

    def check():
        c, d = _prepared(fused, 20)
        assert_close(c.values(), d.values(), rtol=1e-5, atol=1e-6, name="params after 20")

    bench.compare(f"Adam step, {N_PARAMS:,} params (MLP VAE), {label}", a.step,
                  b.step if b is not None else None, check=check, group="optim",
                  goal=1.0 if fused is None else None,
                  memory=(tl_adam_step_factory, torch_adam_step_factory)
                  if fused is None else None)


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "reference"])
def test_adam_step_after_1200_steps_denormal_regime(bench, fused):
    a, b = _prepared(fused, DENORMAL_WARMUP)
    label = "Numba kernel" if fused is None else "NumPy reference"
    torch_denormals = None
    if b is not None:
        state = [b.opt.state[p] for p in b.params]
        torch_denormals = _denormal_fraction([s["exp_avg"].numpy() for s in state] +
                                             [s["exp_avg_sq"].numpy() for s in state])
    ours = _denormal_fraction([a.opt.state[p][k] for p in a.params
                               for k in ("exp_avg", "exp_avg_sq")])
    assert ours == 0.0, f"tinylatent's Adam state holds denormals ({ours:.2%} of params)"

    def check():
        assert_close_norm(a.values(), b.values(), rel=1e-5, name="params after 1200 steps")
        assert_close(a.values(), b.values(), rtol=1e-3, atol=1e-4, name="params (elementwise)")

    notes = (f"sparse W1 gradients; PyTorch's moments hold {torch_denormals:.2%} denormals"
             if torch_denormals is not None else "sparse W1 gradients")
    bench.compare(f"Adam step after {DENORMAL_WARMUP} steps (denormal regime), {label}",
                  a.step, b.step if b is not None else None, check=check, group="optim",
                  goal=1.0 if fused is None else None, notes=notes)
