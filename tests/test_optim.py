"""Optimizers against hand-computed updates and an independent scalar re-implementation;
the fused Adam kernel against the NumPy reference; state_dict round trips."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent.optim import SAM, SGD, Adadelta, Adagrad, Adam, AdamW, Optimizer, RMSprop


def _params(*arrays, dtype="float64"):
    return [tl.tensor(np.array(a, dtype=dtype), requires_grad=True) for a in arrays]


def _run(opt_cls, init, grads, **kw):
    """Apply the given per-step gradients; return the parameters' values after each step."""
    ps = _params(*init, dtype=kw.pop("dtype", "float64"))
    opt = opt_cls(ps, **kw)
    history = []
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = tl.tensor(np.array(g, dtype=p.dtype))
        opt.step()
        history.append([p.array.copy() for p in ps])
    return history, opt, ps


# ---------------------------------------------------------------- hand-computed numbers
def test_sgd_plain_and_momentum_by_hand():
    hist, _, _ = _run(SGD, [[1.0]], [[[1.0]], [[1.0]]], lr=0.1)
    assert np.allclose([h[0][0] for h in hist], [0.9, 0.8])
    # buf_1 = g = 1, p = 0.9; buf_2 = 0.9 * 1 + 1 = 1.9, p = 0.9 - 0.19 = 0.71
    hist, _, _ = _run(SGD, [[1.0]], [[[1.0]], [[1.0]]], lr=0.1, momentum=0.9)
    assert np.allclose([h[0][0] for h in hist], [0.9, 0.71])
    # nesterov: d_1 = g + 0.9 * buf_1 = 1.9 -> 0.81; d_2 = 1 + 0.9 * 1.9 = 2.71 -> 0.539
    hist, _, _ = _run(SGD, [[1.0]], [[[1.0]], [[1.0]]], lr=0.1, momentum=0.9, nesterov=True)
    assert np.allclose([h[0][0] for h in hist], [0.81, 0.539])
    # dampening 0.5: buf_2 = 0.9 * 1 + 0.5 * 1 = 1.4 -> 0.9 - 0.14 = 0.76
    hist, _, _ = _run(SGD, [[1.0]], [[[1.0]], [[1.0]]], lr=0.1, momentum=0.9, dampening=0.5)
    assert np.allclose([h[0][0] for h in hist], [0.9, 0.76])
    # weight decay 0.5 with p = 2, g = 1: g' = 2 -> p = 1.8; g' = 1.9 -> p = 1.61
    hist, _, _ = _run(SGD, [[2.0]], [[[1.0]], [[1.0]]], lr=0.1, weight_decay=0.5)
    assert np.allclose([h[0][0] for h in hist], [1.8, 1.61])
    hist, _, _ = _run(SGD, [[1.0]], [[[1.0]]], lr=0.1, maximize=True)
    assert np.allclose(hist[0][0], [1.1])


def test_adam_first_steps_by_hand():
    # constant gradient g: the bias-corrected moments are exactly g and g^2, so each step
    # moves p by lr * g / (|g| + eps) ~ lr * sign(g)
    hist, opt, _ = _run(Adam, [[1.0, -2.0]], [[[0.5, -3.0]]] * 3, lr=0.1, eps=0.0)
    for k, h in enumerate(hist, start=1):
        assert np.allclose(h[0], [1.0 - 0.1 * k, -2.0 + 0.1 * k], atol=1e-12)
    state = opt.state[opt.param_groups[0]["params"][0]]
    assert state["step"] == 3
    assert np.allclose(state["exp_avg"], (1 - 0.9 ** 3) * np.array([0.5, -3.0]))
    assert np.allclose(state["exp_avg_sq"], (1 - 0.999 ** 3) * np.array([0.25, 9.0]))
    # two different gradients, worked out: g1 = 1, g2 = -1, betas (0.5, 0.5), lr 1, eps 0
    # m1 = .5, v1 = .5, mhat = 1, vhat = 1 -> p = -1
    # m2 = .25 - .5 = -.25, v2 = .25 + .5 = .75; mhat = -.25/.75 = -1/3, vhat = 1
    # -> p = -1 + 1/3
    hist, _, _ = _run(Adam, [[0.0]], [[[1.0]], [[-1.0]]], lr=1.0, betas=(0.5, 0.5), eps=0.0)
    assert np.allclose([h[0][0] for h in hist], [-1.0, -1.0 + 1.0 / 3.0])


def test_adamw_decay_is_decoupled_by_hand():
    # zero gradient: Adam's step is 0 (m = 0), AdamW still shrinks p by (1 - lr * wd)
    hist, _, _ = _run(AdamW, [[2.0]], [[[0.0]]] * 2, lr=0.1, weight_decay=0.5)
    assert np.allclose([h[0][0] for h in hist], [2.0 * 0.95, 2.0 * 0.95 ** 2])
    hist, _, _ = _run(Adam, [[2.0]], [[[0.0]]], lr=0.1, weight_decay=0.5, eps=0.0)
    # Adam's L2 form: g' = 0 + 0.5 * 2 = 1 -> a full normalised step of lr
    assert np.allclose(hist[0][0], [1.9])


def test_rmsprop_by_hand():
    # alpha .5, g = 2: s1 = .5 * 4 = 2, p = 1 - .1 * 2 / sqrt 2 = 1 - .1 * sqrt 2
    hist, _, _ = _run(RMSprop, [[1.0]], [[[2.0]]], lr=0.1, alpha=0.5, eps=0.0)
    assert np.allclose(hist[0][0], [1 - 0.1 * math.sqrt(2)])
    # centered: gbar1 = 1, s1 = 2 -> denominator sqrt(2 - 1) = 1 -> p = 1 - .2
    hist, _, _ = _run(RMSprop, [[1.0]], [[[2.0]]], lr=0.1, alpha=0.5, eps=0.0, centered=True)
    assert np.allclose(hist[0][0], [0.8])
    # momentum .9, two steps of g = 2 (not centered): buf1 = 2/sqrt2, s2 = 1 + 2 = 3,
    # buf2 = .9 * sqrt2 + 2/sqrt3
    hist, _, _ = _run(RMSprop, [[1.0]], [[[2.0]]] * 2, lr=0.1, alpha=0.5, eps=0.0,
                      momentum=0.9)
    b1 = 2 / math.sqrt(2)
    b2 = 0.9 * b1 + 2 / math.sqrt(3)
    assert np.allclose([h[0][0] for h in hist], [1 - 0.1 * b1, 1 - 0.1 * b1 - 0.1 * b2])


# ---------------------------------------------------------------- an independent oracle
def _scalar_oracle(name, p0, grads, hp):
    """Per-element float64 re-implementation of the papers' formulas (PyTorch's variant)."""
    out = []
    for j, p in enumerate(p0):
        m = v = vmax = buf = gbar = 0.0
        for t, gs in enumerate(grads, start=1):
            g = -gs[j] if hp.get("maximize") else gs[j]
            if name in ("adam", "adamw"):
                b1, b2 = hp.get("betas", (0.9, 0.999))
                lr, wd = hp["lr"], hp.get("weight_decay", 0.0 if name == "adam" else 1e-2)
                if name == "adamw":
                    p *= 1 - lr * wd
                else:
                    g += wd * p
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                vmax = max(vmax, v)
                vv = vmax if hp.get("amsgrad") else v
                denom = math.sqrt(vv / (1 - b2 ** t)) + hp.get("eps", 1e-8)
                p -= lr * (m / (1 - b1 ** t)) / denom
            elif name == "sgd":
                g += hp.get("weight_decay", 0.0) * p
                mom = hp.get("momentum", 0.0)
                if mom:
                    buf = g if t == 1 else mom * buf + (1 - hp.get("dampening", 0.0)) * g
                    g = g + mom * buf if hp.get("nesterov") else buf
                p -= hp["lr"] * g
            elif name == "rmsprop":
                a, eps, mom = hp.get("alpha", 0.99), hp.get("eps", 1e-8), hp.get("momentum", 0)
                g += hp.get("weight_decay", 0.0) * p
                v = a * v + (1 - a) * g * g
                gbar = a * gbar + (1 - a) * g
                d = math.sqrt(v - gbar * gbar if hp.get("centered") else v) + eps
                if mom:
                    buf = mom * buf + g / d
                    p -= hp["lr"] * buf
                else:
                    p -= hp["lr"] * g / d
            elif name == "adagrad":
                g += hp.get("weight_decay", 0.0) * p
                if t == 1:
                    v = hp.get("initial_accumulator_value", 0.0)
                v += g * g
                lr = hp["lr"] / (1 + (t - 1) * hp.get("lr_decay", 0.0))
                p -= lr * g / (math.sqrt(v) + hp.get("eps", 1e-10))
            elif name == "adadelta":      # v = E[g^2], buf = E[dx^2] (Zeiler 2012, Alg. 1)
                rho, eps = hp.get("rho", 0.9), hp.get("eps", 1e-6)
                g += hp.get("weight_decay", 0.0) * p
                v = rho * v + (1 - rho) * g * g
                dx = math.sqrt(buf + eps) / math.sqrt(v + eps) * g
                buf = rho * buf + (1 - rho) * dx * dx
                p -= hp.get("lr", 1.0) * dx
        out.append(p)
    return np.array(out)


CASES = [
    (SGD, "sgd", dict(lr=0.1)),
    (SGD, "sgd", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    (SGD, "sgd", dict(lr=0.1, momentum=0.8, dampening=0.3)),
    (SGD, "sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (Adam, "adam", dict(lr=0.1)),
    (Adam, "adam", dict(lr=0.1, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.1)),
    (Adam, "adam", dict(lr=0.1, amsgrad=True)),
    (Adam, "adam", dict(lr=0.1, maximize=True)),
    (AdamW, "adamw", dict(lr=0.1)),
    (AdamW, "adamw", dict(lr=0.1, weight_decay=0.3, amsgrad=True)),
    (RMSprop, "rmsprop", dict(lr=0.01)),
    (RMSprop, "rmsprop", dict(lr=0.01, alpha=0.5, centered=True)),
    (RMSprop, "rmsprop", dict(lr=0.01, momentum=0.9, weight_decay=0.1)),
    (RMSprop, "rmsprop", dict(lr=0.01, momentum=0.5, centered=True, eps=1e-2)),
    (Adagrad, "adagrad", dict(lr=0.1)),
    (Adagrad, "adagrad", dict(lr=0.1, lr_decay=0.5, weight_decay=0.1,
                              initial_accumulator_value=0.3, eps=1e-3)),
    (Adadelta, "adadelta", dict()),
    (Adadelta, "adadelta", dict(lr=0.5, rho=0.5, eps=1e-3, weight_decay=0.1)),
]


ORACLE_CASES = [(c, n, h, None) for c, n, h in CASES] + \
    [(c, n, h, False) for c, n, h in CASES if c in (Adam, AdamW)]   # Adam's reference path


@pytest.mark.parametrize("cls,name,hp,fused", ORACLE_CASES)
def test_optimizers_match_scalar_oracle(cls, name, hp, fused):
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(4)]
    kw = dict(hp, fused=fused) if cls in (Adam, AdamW) else dict(hp)
    hist, _, _ = _run(cls, [p0.reshape(2, 3)], [[g.reshape(2, 3)] for g in grads], **kw)
    assert np.allclose(hist[-1][0].ravel(), _scalar_oracle(name, p0, grads, hp),
                       rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- fused Adam vs reference
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hp", [dict(), dict(weight_decay=0.1, amsgrad=True),
                                dict(betas=(0.5, 0.9), maximize=True)])
@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_fused_adam_matches_reference(cls, hp, dtype):
    rng = np.random.default_rng(2)
    shapes = [(17, 5), (5,), (3, 4, 2)]
    init = [rng.standard_normal(s) for s in shapes]
    results = []
    for fused in (True, False):
        ps = _params(*init, dtype=dtype)
        opt = cls(ps, lr=0.01, fused=fused, **hp)
        grng = np.random.default_rng(3)
        for _ in range(6):
            for p in ps:
                p.grad = tl.tensor(grng.standard_normal(p.shape).astype(dtype))
            opt.step()
        results.append([p.array for p in ps])
        assert all(p.dtype == dtype for p in ps)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@given(shape=st.sampled_from([(1,), (7,), (3, 5), (2, 3, 4)]),
       dtype=st.sampled_from(["float32", "float64"]),
       lr=st.floats(1e-4, 0.1), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.5, 0.9999),
       eps=st.sampled_from([1e-8, 1e-6, 1e-3]), weight_decay=st.sampled_from([0.0, 0.05]),
       amsgrad=st.booleans(), maximize=st.booleans(), decoupled=st.booleans(),
       steps=st.integers(1, 8), seed=st.integers(0, 2 ** 16))
def test_fused_adam_matches_reference_hypothesis(shape, dtype, lr, beta1, beta2, eps,
                                                 weight_decay, amsgrad, maximize, decoupled,
                                                 steps, seed):
    cls = AdamW if decoupled else Adam
    rng = np.random.default_rng(seed)
    init = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 10.0]) for _ in range(steps)]
    out = []
    for fused in (True, False):
        (p,) = _params(init, dtype=dtype)
        opt = cls([p], lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                  amsgrad=amsgrad, maximize=maximize, fused=fused)
        for g in grads:
            p.grad = tl.tensor(g.astype(dtype))
            opt.step()
        out.append(p.array)
    # float32: a few roundings differ per step (sqrt(v) * (1/sqrt(bc2)) vs sqrt(v) / sqrt(bc2))
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out[0], out[1], rtol=tol, atol=tol * max(1.0, lr * steps * 10))


def test_fused_adam_falls_back_on_non_contiguous_grad():
    ps = _params(np.ones((3, 4)), dtype="float32")
    ref = _params(np.ones((3, 4)), dtype="float32")
    g = np.arange(12, dtype=np.float32).reshape(4, 3).T  # a transposed view
    ps[0].grad = tl.tensor(g)
    ref[0].grad = tl.tensor(np.ascontiguousarray(g))
    Adam(ps, lr=0.1).step()
    Adam(ref, lr=0.1, fused=False).step()
    np.testing.assert_allclose(ps[0].array, ref[0].array, rtol=1e-6)


def test_adam_flushes_denormal_moments():
    # a parameter whose gradient is 1 once and then exactly 0: m decays by 0.9 a step and
    # would pass below float32's smallest normal after ~830 steps
    tiny = np.finfo(np.float32).tiny
    for fused in (None, False):
        ps = _params(np.ones(4), dtype="float32")
        opt = Adam(ps, lr=1e-3, fused=fused)
        ps[0].grad = tl.tensor(np.ones(4, dtype=np.float32))
        opt.step()
        ps[0].grad = tl.tensor(np.zeros(4, dtype=np.float32))
        for _ in range(900):
            opt.step()
        m = opt.state[ps[0]]["exp_avg"]
        v = opt.state[ps[0]]["exp_avg_sq"]
        for buf in (m, v):
            assert np.all((buf == 0) | (np.abs(buf) >= tiny)), f"denormals (fused={fused})"
        assert np.all(m == 0) and np.all(v > 0)


# ---------------------------------------------------------------- API and state dicts
def test_param_groups_zero_grad_and_errors():
    a, b = _params(np.ones(2), np.ones(3))
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["momentum"] == 0.9
    a.grad = tl.ones(2, dtype="float64")
    b.grad = tl.ones(3, dtype="float64")
    opt.step()
    assert np.allclose(a.array, 0.9) and np.allclose(b.array, 0.5)
    opt.zero_grad(set_to_none=False)
    assert np.all(a.grad.array == 0)
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    opt.step()  # parameters without gradients are skipped
    assert np.allclose(a.array, 0.9)
    c = _params(np.ones(1))[0]
    opt.add_param_group({"params": c, "lr": 2.0})
    assert opt.param_groups[2]["momentum"] == 0.9
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError, match="single Tensor"):
        Adam(a)
    with pytest.raises(ValueError, match="empty"):
        Adam([])
    with pytest.raises(ValueError, match="betas"):
        Adam([a], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="nesterov"):
        SGD([a], nesterov=True)
    with pytest.raises(ValueError, match="lr"):
        RMSprop([a], lr=-1.0)
    with pytest.raises(TypeError, match="not a Tensor"):
        SGD([np.ones(2)])
    assert "Parameter Group 1" in repr(opt)


def test_step_updates_in_place_and_closure():
    (p,) = _params(np.ones(3))
    data = p.array
    opt = Adam([p], lr=0.1)

    def closure():
        loss = (p * p).sum()
        p.grad = None
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.item()) == pytest.approx(3.0)
    assert p.array is data and np.allclose(p.array, 0.9)
    assert p.requires_grad and p.is_leaf


@pytest.mark.parametrize("cls,hp", [(SGD, dict(lr=0.1, momentum=0.9)),
                                    (Adam, dict(lr=0.01, amsgrad=True)),
                                    (AdamW, dict(lr=0.01)),
                                    (RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
                                    (Adagrad, dict(lr=0.1, lr_decay=0.1)),
                                    (Adadelta, dict(lr=1.0, rho=0.8))])
def test_state_dict_round_trip_continues_identically(cls, hp, tmp_path):
    rng = np.random.default_rng(4)
    init = [rng.standard_normal((4, 3)), rng.standard_normal(3)]
    grads = [[rng.standard_normal((4, 3)), rng.standard_normal(3)] for _ in range(6)]

    def set_grads(ps, gs):
        for p, g in zip(ps, gs):
            p.grad = tl.tensor(g)

    ps = _params(*init)
    opt = cls(ps, **hp)
    for gs in grads[:3]:
        set_grads(ps, gs)
        opt.step()
    sd = opt.state_dict()
    # plain data only: arrays and numbers, parameters named by index
    assert set(sd["state"]) == {0, 1}
    for s in sd["state"].values():
        assert all(isinstance(v, (np.ndarray, int, float)) for v in s.values())
    assert sd["param_groups"][0]["params"] == [0, 1]
    tl.save(sd, tmp_path / "opt.npz")
    # a fresh optimizer on copies of the parameters, loaded from disk
    ps2 = _params(*[p.array.copy() for p in ps])
    opt2 = cls(ps2, lr=123.0)
    opt2.load_state_dict(tl.load(tmp_path / "opt.npz"))
    assert opt2.param_groups[0]["lr"] == hp["lr"]
    for gs in grads[3:]:
        set_grads(ps, gs)
        set_grads(ps2, gs)
        opt.step()
        opt2.step()
    for a, b in zip(ps, ps2):
        np.testing.assert_array_equal(a.array, b.array)
    # the saved dict is a snapshot, not a view of the live buffers
    assert not np.array_equal(sd["state"][0][next(k for k in sd["state"][0]
                                                  if k != "step")],
                              opt.state_dict()["state"][0][next(k for k in sd["state"][0]
                                                                if k != "step")])


def test_load_state_dict_errors():
    a, b = _params(np.ones(2), np.ones(3))
    opt = Adam([a, b])
    a.grad, b.grad = tl.ones(2, dtype="float64"), tl.ones(3, dtype="float64")
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="parameter group 0 has 2 parameters"):
        Adam([a]).load_state_dict(sd)
    with pytest.raises(ValueError, match="shape"):
        Adam([b, a]).load_state_dict(sd)


def test_optimizer_base_is_abstract():
    (p,) = _params(np.ones(1))
    with pytest.raises(NotImplementedError):
        Optimizer([p], {"lr": 0.1}).step()


# ---------------------------------------------------------------- SAM
def _quadratic(w, a):
    return 0.5 * (tl.tensor(a) * w * w).sum()


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_matches_hand_computation(adaptive):
    a = np.array([1.0, 3.0])
    w0 = np.array([1.0, 2.0])
    (w,) = _params(w0)
    opt = SAM([w], SGD, rho=0.1, adaptive=adaptive, lr=0.5)

    def closure():
        opt.zero_grad()
        loss = _quadratic(w, a)
        loss.backward()
        return loss

    loss = opt.step(closure)
    g = a * w0
    if adaptive:   # e = rho * w^2 g / || |w| g ||
        e = 0.1 * w0 ** 2 * g / np.linalg.norm(np.abs(w0) * g)
    else:          # e = rho * g / ||g||
        e = 0.1 * g / np.linalg.norm(g)
    expected = w0 - 0.5 * a * (w0 + e)
    assert float(loss.item()) == pytest.approx(0.5 * np.sum(a * w0 ** 2))
    np.testing.assert_allclose(w.array, expected, rtol=1e-12)
    assert opt.param_groups is opt.base_optimizer.param_groups
    assert opt.param_groups[0]["rho"] == 0.1 and opt.param_groups[0]["lr"] == 0.5


def test_sam_two_explicit_half_steps_with_momentum_and_scheduler():
    a = np.array([2.0, 0.5, 1.0])
    (w,) = _params(np.ones(3))
    (ref,) = _params(np.ones(3))
    opt = SAM([w], SGD, rho=0.05, lr=0.1, momentum=0.9)
    sched = tl.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    base = SGD([ref], lr=0.1, momentum=0.9)
    for k in range(3):
        _quadratic(w, a).backward()
        g = w.grad.array.copy()
        opt.first_step(zero_grad=True)
        _quadratic(w, a).backward()
        opt.second_step(zero_grad=True)
        # the same with plain SGD fed the gradient at w + rho g / ||g||
        ref.grad = tl.tensor(a * (ref.array + 0.05 * g / np.linalg.norm(g)))
        base.step()
        sched.step()
        base.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
        np.testing.assert_allclose(w.array, ref.array, rtol=1e-12)
    assert w.grad is None
    with pytest.raises(ValueError, match="closure"):
        opt.step()
    sd = opt.state_dict()
    assert "momentum_buffer" in sd["state"][0]


# ---------------------------------------------------------------- kernel switch, lazy import
def test_reference_switch_selects_the_reference_path(monkeypatch):
    import tinylatent.optim.adam as adam_mod
    calls = []
    real = adam_mod._adam_reference
    monkeypatch.setattr(adam_mod, "_adam_reference",
                        lambda *a, **k: (calls.append(1), real(*a, **k)))
    (p,) = _params(np.ones(3), dtype="float32")
    opt = Adam([p])
    p.grad = tl.ones(3)
    opt.step()
    assert calls == []                    # CPU, contiguous float32: the fused kernel
    monkeypatch.setenv("TINYLATENT_KERNELS", "reference")
    opt.step()
    assert calls == [1]
    monkeypatch.delenv("TINYLATENT_KERNELS")
    Adam([p], fused=False).step()
    assert calls == [1, 1]


def test_numba_is_imported_only_by_the_first_fused_step():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(tl.__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = ("import sys, tinylatent as tl; import tinylatent.optim, tinylatent.distributions, "
            "tinylatent.serialization; assert 'numba' not in sys.modules, 'numba at import'; "
            "p = tl.zeros(2, requires_grad=True); p.grad = tl.ones(2); "
            "tl.optim.Adam([p]).step(); assert 'numba' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name,hp", [("Adagrad", dict(lr=0.1)),
                                     ("Adagrad", dict(lr=0.1, lr_decay=0.3, weight_decay=0.1,
                                                      initial_accumulator_value=0.2,
                                                      maximize=True)),
                                     ("Adadelta", dict()),
                                     ("Adadelta", dict(lr=0.7, rho=0.6, eps=1e-4,
                                                       weight_decay=0.05, maximize=True))])
def test_adagrad_and_adadelta_match_torch_on_a_model(name, hp):
    """Same initial weights, same data, ten steps: identical parameters (float64)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    w1, b1, w2 = rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(1, 4))
    ours = [tl.tensor(a, requires_grad=True) for a in (w1, b1, w2)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (w1, b1, w2)]
    opt = getattr(tl.optim, name)(ours, **hp)
    opt_t = getattr(torch.optim, name)(theirs, **hp)
    for _ in range(10):
        x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
        loss = (((tl.tensor(x) @ ours[0].T + ours[1]).tanh() @ ours[2].T - tl.tensor(y)) ** 2
                ).mean()
        loss_t = (((torch.tensor(x) @ theirs[0].T + theirs[1]).tanh() @ theirs[2].T
                   - torch.tensor(y)) ** 2).mean()
        opt.zero_grad()
        opt_t.zero_grad()
        loss.backward()
        loss_t.backward()
        opt.step()
        opt_t.step()
        np.testing.assert_allclose(loss.item(), loss_t.item(), rtol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-11,
                                   atol=1e-13)
