"""Check autograd's gradients against float64 central finite differences.

    gradcheck(fn, inputs)      first derivatives of fn at inputs
    gradgradcheck(fn, inputs)  second derivatives: the gradient of <v, fn(x)> is checked by
                               gradcheck in turn (create_graph=True makes it differentiable)

For small problems the whole Jacobian is compared, entry by entry: analytic rows come from
one backward per output element, numerical columns from one central difference per input
element. For large ones, random projections are compared instead (as Chainer does): for a
random output weighting v and input direction u, <d<v,f>/dx, u> must equal
(<v, f(x + eps u)> - <v, f(x - eps u)>) / (2 eps). On failure the error names the input, the
element (or direction) and both values.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import autograd
from .tensor import Tensor, is_float_dtype

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    pass


def _outputs(fn, xs) -> list:
    out = fn(*xs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _prep(inputs) -> list:
    xs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for i, x in enumerate(xs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {x.dtype}; finite differences "
                            "need float64 inputs (x.double())")
    return xs


def _diff_indices(xs) -> list:
    return [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]


def gradcheck(fn: Callable, inputs, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, full_jacobian_max: int = 1024, n_directions: int = 4,
              seed: int = 0, raise_exception: bool = True) -> bool:
    """Compare autograd's first derivatives of `fn` with central differences (float64).

    `fn(*inputs)` returns a Tensor or a tuple of Tensors. Inputs that require grad are
    checked; they must be float64.
    """
    xs = _prep(inputs)
    idx = _diff_indices(xs)
    if not idx:
        raise ValueError("gradcheck: no input requires grad")
    rng = np.random.default_rng(seed)
    with autograd.enable_grad():
        outs = _outputs(fn, xs)
    outs = [o for o in outs if isinstance(o, Tensor) and is_float_dtype(o.dtype)]
    n_out = sum(o.numel() for o in outs)
    n_in = sum(xs[i].numel() for i in idx)
    try:
        if n_out * n_in <= full_jacobian_max:
            _check_full(fn, xs, idx, outs, eps, atol, rtol)
        else:
            _check_directions(fn, xs, idx, outs, eps, atol, rtol, n_directions, rng)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _float_outputs(fn, xs) -> list:
    with autograd.no_grad():
        return [np.asarray(o.numpy_host(), dtype=np.float64) for o in _outputs(fn, xs)
                if isinstance(o, Tensor) and is_float_dtype(o.dtype)]


def _weighted_output(fn, xs, vs) -> float:
    return float(sum(float((o * v).sum()) for o, v in zip(_float_outputs(fn, xs), vs)))


def _analytic(outs, xs, idx, vs) -> list:
    live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    if not live:
        return [np.zeros(xs[i].shape) for i in idx]
    grads = autograd.grad(
        [o for o, _ in live], [xs[i] for i in idx],
        grad_outputs=[Tensor._make(o.xp.asarray(v, dtype=o.dtype)) for o, v in live],
        retain_graph=True, allow_unused=True)
    return [np.zeros(xs[i].shape) if g is None else np.asarray(g.numpy_host(), np.float64)
            for g, i in zip(grads, idx)]


def _fail(msg: str):
    raise GradcheckError(msg)


def _check_full(fn, xs, idx, outs, eps, atol, rtol) -> None:
    """Whole Jacobians: analytic rows by backward, numerical columns by central differences;
    on a mismatch, the worst entry over all inputs is reported."""
    sizes = [o.numel() for o in outs]
    n_out = sum(sizes)
    analytic = {k: np.zeros((n_out, xs[k].numel())) for k in idx}
    row = 0
    for oi, o in enumerate(outs):
        for e in range(o.numel()):
            vs = [np.zeros(s) for s in sizes]
            vs[oi][e] = 1.0
            vs = [v.reshape(outs[j].shape) for j, v in enumerate(vs)]
            for k, g in zip(idx, _analytic(outs, xs, idx, vs)):
                analytic[k][row] = g.reshape(-1)
            row += 1
    worst = None   # (excess over tolerance, input, output row, input element, ana, num)
    for k in idx:
        x = xs[k]
        keep = x.array
        base = np.array(keep, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        numerical = np.zeros((n_out, x.numel()))
        try:
            for p in range(x.numel()):
                cols = []
                for delta in (eps, -eps):
                    pert = base.copy()
                    pert.reshape(-1)[p] += delta
                    x.array = pert
                    cols.append(np.concatenate([f.reshape(-1) for f in _float_outputs(fn, xs)]))
                numerical[:, p] = (cols[0] - cols[1]) / (2 * eps)
        finally:
            x.array = keep
        excess = np.abs(analytic[k] - numerical) - (atol + rtol * np.abs(numerical))
        if excess.size and excess.max() > 0:
            r, p = np.unravel_index(int(np.argmax(excess)), excess.shape)
            if worst is None or excess[r, p] > worst[0]:
                worst = (excess[r, p], k, int(r), int(p), analytic[k][r, p], numerical[r, p])
    if worst is not None:
        _, k, r, p, ana, num = worst
        oi = int(np.searchsorted(np.cumsum(sizes), r, side="right"))
        e = r - int(sum(sizes[:oi]))
        _fail(f"gradcheck: Jacobian mismatch for input {k} (shape {xs[k].shape}) at "
              f"element {tuple(int(i) for i in np.unravel_index(p, xs[k].shape))}, "
              f"output {oi} element "
              f"{tuple(int(i) for i in np.unravel_index(e, outs[oi].shape))}: "
              f"analytic {ana:.8g}, numerical {num:.8g}")


def _check_directions(fn, xs, idx, outs, eps, atol, rtol, n_directions, rng) -> None:
    """Random projections <d<v,f>/dx, u> against central differences along u; on a
    mismatch, the worst (input, direction) is reported."""
    worst = None
    for d in range(n_directions):
        vs = [rng.standard_normal(o.shape) for o in outs]
        grads = _analytic(outs, xs, idx, vs)
        for k, g in zip(idx, grads):
            x = xs[k]
            u = rng.standard_normal(x.shape)
            ana = float((g * u).sum())
            old = x.array.copy()
            try:
                x.array = np.asarray(old + eps * u)  # (0-d arithmetic gives a scalar)
                fp = _weighted_output(fn, xs, vs)
                x.array = np.asarray(old - eps * u)
                fm = _weighted_output(fn, xs, vs)
            finally:
                x.array = old
            num = (fp - fm) / (2 * eps)
            tol = atol * max(1.0, np.sqrt(x.numel())) + rtol * abs(num)
            excess = abs(ana - num) - tol
            if excess > 0 and (worst is None or excess > worst[0]):
                worst = (excess, k, d, ana, num)
    if worst is not None:
        _, k, d, ana, num = worst
        _fail(f"gradcheck: directional derivative mismatch for input {k} (shape "
              f"{xs[k].shape}), random direction {d}: analytic {ana:.8g}, numerical "
              f"{num:.8g}")


def gradgradcheck(fn: Callable, inputs, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, seed: int = 0, **kwargs) -> bool:
    """Check second derivatives: gradcheck applied to x -> d<v, fn(x)>/dx for a random v."""
    xs = _prep(inputs)
    idx = _diff_indices(xs)
    rng = np.random.default_rng(seed + 1)
    with autograd.enable_grad():
        outs = [o for o in _outputs(fn, xs) if isinstance(o, Tensor) and is_float_dtype(o.dtype)]
    vs = [Tensor._make(o.xp.asarray(rng.standard_normal(o.shape))) for o in outs]

    def first_derivative(*ys):
        with autograd.enable_grad():
            out = [o for o in _outputs(fn, ys) if isinstance(o, Tensor) and is_float_dtype(o.dtype)]
            gs = autograd.grad(out, [ys[i] for i in idx], grad_outputs=vs,
                               create_graph=True, allow_unused=True)
        # an input that enters linearly has a constant gradient; keep it in the graph
        return tuple(ys[i] * 0.0 if g is None else g if g.requires_grad else g + ys[i] * 0.0
                     for g, i in zip(gs, idx))

    return gradcheck(first_derivative, xs, eps=eps, atol=atol, rtol=rtol, seed=seed, **kwargs)

