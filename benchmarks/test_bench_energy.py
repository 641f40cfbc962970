"""Energy models' heaviest steps, tinylatent next to a PyTorch twin with the same weights and
data: the RBM CD-k training step (models/boltzmann.py) and the EBM Langevin + loss step
(models/ebm.py). Values are checked first: the free energies, the conditionals and the CD
gradient for the same negatives; the energy, its input gradient (Langevin's drift) and the
loss gradient for the same negatives. Timings are reported, never asserted.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinylatent as tl
from benchmarks.harness import assert_close, torch
from tinylatent.models import EBM, RBM


def _rbm_pair(bench, V, H, B, k):
    tl.manual_seed(0)
    rbm = RBM(in_features=V, hidden_features=H, k=k, init_std=0.1)
    x_np = (bench.rng.random((B, V)) < 0.3).astype(np.float32)
    opt = tl.optim.SGD(rbm.parameters(), lr=0.01, momentum=0.9)
    x = tl.tensor(x_np)

    def tl_step():
        loss, _ = rbm.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if torch is None:
        return rbm, x, tl_step, None, None
    W, b, c = (torch.tensor(p.detach().numpy(), requires_grad=True)
               for p in (rbm.weight, rbm.v_bias, rbm.h_bias))
    popt = torch.optim.SGD([W, b, c], lr=0.01, momentum=0.9)
    xp = torch.from_numpy(x_np)

    def free_energy(v):
        return -(v @ b) - torch.nn.functional.softplus(v @ W.T + c).sum(1)

    def negatives(v):
        with torch.no_grad():
            for _ in range(k):
                h = torch.bernoulli(torch.sigmoid(v @ W.T + c))
                v = torch.bernoulli(torch.sigmoid(h @ W + b))
        return v

    def pt_step():
        loss = free_energy(xp).mean() - free_energy(negatives(xp)).mean()
        popt.zero_grad()
        loss.backward()
        popt.step()
    return rbm, x, tl_step, pt_step, (W, b, c, free_energy)


@pytest.mark.parametrize("k", [1, 25])
def test_rbm_cd_step(bench, k):
    V, H, B = 784, bench.pick(quick=200, full=500), 100
    rbm, x, tl_step, pt_step, twin = _rbm_pair(bench, V, H, B, k)
    check = None
    if twin is not None:
        W, b, c, free_energy = twin

        def check():      # same weights, data and negatives: same F, p(h|v), CD gradient
            v_neg = rbm.negative_sample(x)
            vn = torch.from_numpy(v_neg.numpy())
            xp = torch.from_numpy(x.numpy())
            assert_close(rbm.free_energy(x), free_energy(xp), rtol=1e-4, atol=1e-3, name="F")
            assert_close(rbm.hidden_probs(x), torch.sigmoid(xp @ W.T + c), name="p(h|v)")
            rbm.zero_grad()
            (rbm.free_energy(x).mean() - rbm.free_energy(v_neg).mean()).backward()
            for p in (W, b, c):
                p.grad = None
            (free_energy(xp).mean() - free_energy(vn).mean()).backward()
            assert_close([rbm.weight.grad, rbm.v_bias.grad, rbm.h_bias.grad],
                         [W.grad, b.grad, c.grad], rtol=1e-4, atol=1e-5, name="CD gradient")
    bench.compare(f"rbm CD-{k} step ({V}-{H}, batch {B})", tl_step, pt_step, check=check,
                  group="models")


def test_ebm_langevin_step(bench):
    K, B = bench.pick(quick=10, full=20), 128
    tl.manual_seed(0)
    ebm = EBM(in_features=2, hidden_features=(128, 128), langevin_steps=K, buffer_size=1000)
    x_np = bench.rng.standard_normal((B, 2)).astype(np.float32)
    x = tl.tensor(x_np)
    opt = tl.optim.Adam(ebm.parameters(), lr=1e-3)

    def tl_step():
        loss, _ = ebm.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pt_step = check = None
    if torch is not None:
        lin = [m for m in ebm.net if isinstance(m, tl.nn.Linear)]
        net = torch.nn.Sequential(torch.nn.Linear(2, 128), torch.nn.SiLU(),
                                  torch.nn.Linear(128, 128), torch.nn.SiLU(),
                                  torch.nn.Linear(128, 1))
        with torch.no_grad():
            for a, m in zip(lin, [m for m in net if isinstance(m, torch.nn.Linear)]):
                m.weight.copy_(torch.from_numpy(a.weight.detach().numpy()))
                m.bias.copy_(torch.from_numpy(a.bias.detach().numpy()))
        buffer = torch.from_numpy(ebm.buffer.numpy().copy())
        popt = torch.optim.Adam(net.parameters(), lr=1e-3)
        xp = torch.from_numpy(x_np)
        c = ebm.config
        energy = lambda v: net(v).reshape(-1)                              # noqa: E731

        def pt_step():    # the same algorithm: buffer draw, 5% noise, K Langevin steps, loss
            idx = torch.randint(0, c.buffer_size, (B,))
            start = buffer[idx]
            fresh = torch.rand(B, 1) < c.reinit_prob
            v = torch.where(fresh, torch.rand(B, 2) * (c.data_high - c.data_low) + c.data_low,
                            start)
            for _ in range(K):
                v.requires_grad_(True)
                (g,) = torch.autograd.grad(energy(v).sum(), v)
                v = (v - 0.5 * c.step_size * g + c.step_size ** 0.5 * torch.randn_like(v)
                     ).detach()
            buffer[idx] = v
            e_pos, e_neg = energy(xp), energy(v)
            loss = e_pos.mean() - e_neg.mean() + c.alpha * ((e_pos ** 2).mean() +
                                                            (e_neg ** 2).mean())
            popt.zero_grad()
            loss.backward()
            popt.step()

        def check():      # same weights and negatives: same energy, drift and loss gradient
            v = ebm.negative_sample(B)
            vt = torch.from_numpy(v.numpy()).requires_grad_(True)
            assert_close(ebm.energy(v), energy(vt), name="E(x)")
            vv = v.detach().requires_grad_(True)
            (g,) = tl.grad(ebm.energy(vv).sum(), vv)
            (gt,) = torch.autograd.grad(energy(vt).sum(), vt)
            assert_close(g, gt, name="grad_x E")
            ebm.zero_grad()
            net.zero_grad()
            e_pos, e_neg = ebm.energy(x), ebm.energy(v)
            (e_pos.mean() - e_neg.mean() + c.alpha * ((e_pos ** 2).mean() + (e_neg ** 2).mean())
             ).backward()
            tp, tn = energy(xp), energy(vt.detach())
            (tp.mean() - tn.mean() + c.alpha * ((tp ** 2).mean() + (tn ** 2).mean())).backward()
            assert_close([p.grad for m in lin for p in (m.weight, m.bias)],
                         [p.grad for m in net if isinstance(m, torch.nn.Linear)
                          for p in (m.weight, m.bias)], rtol=1e-4, atol=1e-5, name="loss grad")
    bench.compare(f"ebm Langevin-{K} + loss step (2-128-128-1, batch {B})", tl_step, pt_step,
                  check=check, group="models")
