"""Learning-rate schedulers against known sequences (worked out by hand / closed forms)."""
import math

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.optim import SGD, Adam
from tinylatent.optim.lr_scheduler import (CosineAnnealingLR, ExponentialLR, LambdaLR,
                                           LinearLR, MultiStepLR, SequentialLR, StepLR,
                                           linear_warmup)


def _opt(lr=1.0, groups=1):
    params = [{"params": [tl.zeros(1, requires_grad=True)], "lr": lr * (i + 1)}
              for i in range(groups)]
    return SGD(params, lr=lr)


def _lrs(opt, sched, n, group=0):
    """The rate in force for steps 0..n-1 (read before each scheduler.step())."""
    out = []
    for _ in range(n):
        out.append(opt.param_groups[group]["lr"])
        sched.step()
    return out


def test_step_lr():
    opt = _opt()
    assert np.allclose(_lrs(opt, StepLR(opt, step_size=2, gamma=0.1), 6),
                       [1, 1, 0.1, 0.1, 0.01, 0.01])


def test_multistep_lr_with_unsorted_milestones():
    opt = _opt(2.0)
    assert np.allclose(_lrs(opt, MultiStepLR(opt, [4, 1], gamma=0.5), 6),
                       [2, 1, 1, 1, 0.5, 0.5])


def test_exponential_lr():
    opt = _opt()
    assert np.allclose(_lrs(opt, ExponentialLR(opt, gamma=0.5), 4), [1, 0.5, 0.25, 0.125])


def test_cosine_annealing_lr():
    opt = _opt()
    got = _lrs(opt, CosineAnnealingLR(opt, T_max=4, eta_min=0.2), 9)
    c = [(1 + math.cos(math.pi * t / 4)) / 2 for t in range(9)]
    assert np.allclose(got, [0.2 + 0.8 * x for x in c])
    assert np.allclose(got[:5], [1.0, 0.2 + 0.8 * (2 + 2 ** 0.5) / 4, 0.6,
                                 0.2 + 0.8 * (2 - 2 ** 0.5) / 4, 0.2])


def test_linear_lr_ramps_then_holds():
    opt = _opt(0.3)
    assert np.allclose(_lrs(opt, LinearLR(opt), 7),  # PyTorch defaults: 1/3 -> 1 over 5
                       [0.1, 0.14, 0.18, 0.22, 0.26, 0.3, 0.3])
    opt = _opt()
    assert np.allclose(_lrs(opt, LinearLR(opt, 1.0, 0.5, total_iters=2), 4),
                       [1, 0.75, 0.5, 0.5])


def test_lambda_lr_per_group():
    opt = _opt(1.0, groups=2)
    sched = LambdaLR(opt, [lambda t: 1 / (t + 1), lambda t: 0.5 ** t])
    opt2 = opt  # both groups step together
    seq0, seq1 = [], []
    for _ in range(4):
        seq0.append(opt2.param_groups[0]["lr"])
        seq1.append(opt2.param_groups[1]["lr"])
        sched.step()
    assert np.allclose(seq0, [1, 1 / 2, 1 / 3, 1 / 4])
    assert np.allclose(seq1, [2, 1, 0.5, 0.25])
    assert np.allclose(sched.get_last_lr(), [1 / 5, 2 / 16])
    with pytest.raises(ValueError, match="2 parameter groups"):
        LambdaLR(_opt(groups=2), [lambda t: 1])


def test_linear_warmup_then_cosine():
    opt = _opt()
    sched = linear_warmup(opt, 4, CosineAnnealingLR(opt, T_max=4), start_factor=0.2)
    got = _lrs(opt, sched, 10)
    assert np.allclose(got[:4], [0.2, 0.4, 0.6, 0.8])
    assert np.allclose(got[4:9], [(1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)])
    opt = _opt(0.5)
    assert np.allclose(_lrs(opt, linear_warmup(opt, 2, start_factor=0.5), 4),
                       [0.25, 0.375, 0.5, 0.5])


def test_sequential_lr_three_phases():
    opt = _opt()
    sched = SequentialLR(opt, [ExponentialLR(opt, 0.5), StepLR(opt, 2, 0.1),
                               LambdaLR(opt, lambda t: 0.3)], milestones=[3, 6])
    assert np.allclose(_lrs(opt, sched, 8), [1, 0.5, 0.25, 1, 1, 0.1, 0.3, 0.3])
    with pytest.raises(ValueError, match="milestones"):
        SequentialLR(opt, [ExponentialLR(opt, 0.5)], milestones=[3])
    with pytest.raises(ValueError, match="different optimizer"):
        SequentialLR(opt, [ExponentialLR(opt, 0.5), StepLR(_opt(), 1)], milestones=[3])


@pytest.mark.parametrize("make", [
    lambda o: StepLR(o, 2, 0.5),
    lambda o: MultiStepLR(o, [1, 3]),
    lambda o: CosineAnnealingLR(o, 5, 0.01),
    lambda o: linear_warmup(o, 3, CosineAnnealingLR(o, 6)),
    lambda o: LambdaLR(o, lambda t: 0.9 ** t),
])
def test_state_dict_resume_continues_the_sequence(make, tmp_path):
    p = tl.zeros(2, requires_grad=True)
    opt = Adam([p], lr=0.1)
    sched = make(opt)
    for _ in range(4):
        sched.step()
    tl.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "ck.npz")
    rest = _lrs(opt, sched, 5)
    # resume: new optimizer and scheduler built the same way, then loaded
    p2 = tl.zeros(2, requires_grad=True)
    opt2 = Adam([p2], lr=0.1)
    sched2 = make(opt2)
    ck = tl.load(tmp_path / "ck.npz")
    opt2.load_state_dict(ck["opt"])
    sched2.load_state_dict(ck["sched"])
    assert np.allclose(_lrs(opt2, sched2, 5), rest)


def test_bad_arguments():
    with pytest.raises(TypeError, match="Optimizer"):
        StepLR(object(), 1)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(_opt(), 0)
    with pytest.raises(ValueError, match="T_max"):
        CosineAnnealingLR(_opt(), 0)
    with pytest.raises(ValueError, match="start_factor"):
        LinearLR(_opt(), start_factor=0.0)
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(_opt(), 1, last_epoch=3)


def test_reduce_lr_on_plateau():
    from tinylatent.optim.lr_scheduler import ReduceLROnPlateau
    metrics = [5, 4, 4, 4.1, 4, 4, 3, 3, 3, 3]
    opt = _opt(0.5)
    sched = ReduceLROnPlateau(opt, patience=2)
    got = []
    for m in metrics:
        sched.step(m)
        got.append(opt.param_groups[0]["lr"])
    # 4 is the best after step 2; steps 3, 4, 5 do not improve -> the 3rd bad one (> patience)
    # cuts lr at step 5; 3 improves at step 7; 3 more bad steps cut again at step 10
    assert np.allclose(got, [0.5] * 4 + [0.05] * 5 + [0.005])
    # cooldown and a floor: after a cut, `cooldown` steps do not count as bad
    opt = _opt(0.5)
    sched = ReduceLROnPlateau(opt, patience=0, cooldown=2, factor=0.5, min_lr=0.2)
    got = []
    for _ in range(7):
        sched.step(1.0)
        got.append(opt.param_groups[0]["lr"])
    assert np.allclose(got, [0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2])
    # mode="max" with an absolute threshold: +0.05 is not an improvement of 0.1
    opt = _opt(1.0)
    sched = ReduceLROnPlateau(opt, mode="max", patience=0, threshold=0.1,
                              threshold_mode="abs")
    for m in [1.0, 1.05]:
        sched.step(m)
    assert sched.get_last_lr() == [pytest.approx(0.1)]
    sd = sched.state_dict()
    sched2 = ReduceLROnPlateau(_opt(1.0), mode="max")
    sched2.load_state_dict(sd)
    assert sched2.best == 1.0 and sched2.patience == 0
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(_opt(), factor=1.5)


# ---------------------------------------------------------------- issue 13: two more schedules
def test_cosine_warm_restarts_by_hand():
    from tinylatent.optim.lr_scheduler import CosineAnnealingWarmRestarts
    opt = _opt()
    got = _lrs(opt, CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2, eta_min=0.1), 8)
    # periods of 2, 4, 8 steps: T_cur / T_i = 0, 1/2 | 0, 1/4, 2/4, 3/4 | 0, 1/8
    fr = [0, 0.5, 0, 0.25, 0.5, 0.75, 0, 0.125]
    assert np.allclose(got, [0.1 + 0.9 * (1 + math.cos(math.pi * f)) / 2 for f in fr])


def _torch_sched_pair(torch, make_ours, make_theirs, opt_name="SGD", opt_kw=None, groups=2):
    opt_kw = opt_kw or {"lr": 0.1, "momentum": 0.9}
    ours_p = [{"params": [tl.zeros(1, requires_grad=True)]} for _ in range(groups)]
    theirs_p = [{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(groups)]
    opt = getattr(tl.optim, opt_name)(ours_p, **opt_kw)
    opt_t = getattr(torch.optim, opt_name)(theirs_p, **opt_kw)
    return opt, make_ours(opt), opt_t, make_theirs(opt_t)


@pytest.mark.parametrize("kw", [dict(max_lr=1.0, total_steps=20),
                                dict(max_lr=[0.5, 2.0], epochs=3, steps_per_epoch=7,
                                     pct_start=0.4, anneal_strategy="linear",
                                     div_factor=10.0, final_div_factor=100.0),
                                dict(max_lr=1.0, total_steps=25, three_phase=True,
                                     base_momentum=0.8, max_momentum=0.9)])
@pytest.mark.parametrize("opt_name,opt_kw", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                             ("Adam", {"lr": 0.1})])
def test_one_cycle_lr_matches_torch_with_momentum(kw, opt_name, opt_kw):
    torch = pytest.importorskip("torch")
    opt, sched, opt_t, sched_t = _torch_sched_pair(
        torch, lambda o: tl.optim.lr_scheduler.OneCycleLR(o, **kw),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, **kw), opt_name, opt_kw)
    total = kw.get("total_steps") or kw["epochs"] * kw["steps_per_epoch"]
    key = "betas" if opt_name == "Adam" else "momentum"
    for _ in range(total):
        for g, gt in zip(opt.param_groups, opt_t.param_groups):
            assert math.isclose(g["lr"], gt["lr"], rel_tol=1e-12), (g["lr"], gt["lr"])
            assert np.allclose(g[key], gt[key], rtol=1e-12)
        opt_t.step()
        sched.step()
        sched_t.step()
    with pytest.raises(ValueError, match="beyond total_steps"):
        sched.step()
        sched.step()


@pytest.mark.parametrize("T_0,T_mult,eta_min", [(3, 1, 0.0), (2, 2, 0.01), (1, 3, 0.05)])
def test_cosine_warm_restarts_matches_torch_whole_and_fractional_epochs(T_0, T_mult, eta_min):
    torch = pytest.importorskip("torch")
    make = lambda mod: lambda o: mod.CosineAnnealingWarmRestarts(o, T_0, T_mult, eta_min)  # noqa
    opt, sched, opt_t, sched_t = _torch_sched_pair(
        torch, make(tl.optim.lr_scheduler), make(torch.optim.lr_scheduler))
    for _ in range(30):
        assert np.allclose([g["lr"] for g in opt.param_groups],
                           [g["lr"] for g in opt_t.param_groups], rtol=1e-12)
        opt_t.step()
        sched.step()
        sched_t.step()
    for epoch in np.arange(0, 12, 0.3):               # scheduler.step(epoch + i / iters)
        sched.step(float(epoch))
        sched_t.step(float(epoch))
        assert np.allclose(sched.get_last_lr(), sched_t.get_last_lr(), rtol=1e-10)


def test_one_cycle_and_restarts_reject_bad_arguments():
    from tinylatent.optim.lr_scheduler import CosineAnnealingWarmRestarts, OneCycleLR
    opt = _opt()
    with pytest.raises(ValueError, match="total_steps, or epochs and steps_per_epoch"):
        OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="max_lr has 2 values for 1 param groups"):
        OneCycleLR(opt, max_lr=[1.0, 2.0], total_steps=10)
    with pytest.raises(ValueError, match="T_mult must be an integer >= 1"):
        CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0)
    no_momentum = tl.optim.Adagrad([tl.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="neither momentum nor betas"):
        OneCycleLR(no_momentum, max_lr=1.0, total_steps=5)
