"""tl.autograd.functional: PyTorch's higher-level derivative functions (torch.autograd.
functional), built on tl.grad.

For f: inputs -> outputs with Jacobian J = d f / d inputs:

    vjp(f, x, v)  = (f(x), v^T J)              one backward pass
    jvp(f, x, v)  = (f(x), J v)                two backward passes (the double-vjp trick)
    hvp(f, x, v)  = (f(x), H v)                scalar f; Pearlmutter 1994, double backward
    vhp(f, x, v)  = (f(x), v^T H)
    jacobian(f, x)                             one backward pass per output entry
    hessian(f, x)                              one backward pass per input entry, on df/dx

`inputs` is one Tensor or a tuple (or list) of Tensors, and results come back in the same
form (PyTorch's convention, including the nesting J[i][j] = d out_i / d in_j for tuples).
With create_graph=False (the default) the inputs are detached first and every result is
detached, so nothing leaks into the caller's graph; with create_graph=True inputs that
require grad are used as they are and the results are differentiable with respect to them.
strict=True raises where an output does not depend on an input, instead of returning
zeros. `vectorize` and `strategy` are accepted for PyTorch's signature: tinylatent has no
vmap or forward mode, so the computation is the same reverse-mode loop either way.
"""
from __future__ import annotations

from typing import Callable

from .autograd import enable_grad, grad

__all__ = ["jacobian", "hessian", "vjp", "jvp", "hvp", "vhp"]


# ----------------------------------------------------------------------------- helpers
def _as_tuple(name: str, arg: str, value) -> tuple[bool, tuple]:
    """(was a single Tensor, the values as a tuple), checking each is a Tensor."""
    single = isinstance(value, Tensor)
    values = (value,) if single else tuple(value) if isinstance(value, (tuple, list)) \
        else None
    if values is None or not all(isinstance(t, Tensor) for t in values):
        raise TypeError(f"{name}: {arg} must be a Tensor or a tuple of Tensors, got "
                        f"{type(value).__name__}")
    return single, values


def _prepare(name: str, inputs, create_graph: bool) -> tuple[bool, tuple]:
    """Inputs the function will be traced from: detached leaves that require grad, except
    that with create_graph an input that already requires grad stays in its graph (so the
    results can be differentiated with respect to it)."""
    single, xs = _as_tuple(name, "inputs", inputs)
    for i, x in enumerate(xs):
        if not is_float_dtype(x.dtype):
            raise TypeError(f"{name}: input {i} has dtype {x.dtype}; derivatives need a "
                            "floating-point dtype")
    xs = tuple(x.view_as(x) if (create_graph and x.requires_grad)
               else x.detach().requires_grad_() for x in xs)
    return single, xs


def _check_v(name: str, v, like: tuple, what: str) -> tuple:
    """v as a tuple matching `like` (the inputs or the outputs) in number and shapes."""
    single_like = len(like) == 1
    if v is None:
        if single_like and like[0].numel() == 1:
            return (like[0].detach() * 0 + 1,)
        raise RuntimeError(f"{name}: v can be omitted only when the {what} is a single "
                           f"Tensor with one element; got {what} shapes "
                           f"{[tuple(t.shape) for t in like]}")
    _, vs = _as_tuple(name, "v", v)
    if len(vs) != len(like):
        raise RuntimeError(f"{name}: v has {len(vs)} Tensor(s) but the {what} has "
                           f"{len(like)}")
    for i, (vi, t) in enumerate(zip(vs, like)):
        if tuple(vi.shape) != tuple(t.shape):
            raise RuntimeError(f"{name}: v[{i}] has shape {tuple(vi.shape)} but the {what} "
                               f"entry {i} has shape {tuple(t.shape)}")
    return tuple(vi.detach() for vi in vs)


def _call(name: str, func: Callable, xs: tuple) -> tuple[bool, tuple]:
    out = func(*xs)
    single, outs = _as_tuple(name, "the output of func", out)
    return single, outs


def _grads(name, outputs, inputs, grad_outputs, create_graph, strict, what="output"):
    """d<outputs, grad_outputs>/d inputs with zeros (never None) for inputs not reached;
    with strict an input not reached is an error."""
    live = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if live:
        gs = grad([o for o, _ in live], inputs, [g for _, g in live], retain_graph=True,
                  create_graph=create_graph, allow_unused=True)
    else:
        gs = (None,) * len(inputs)
    res = []
    for i, (g, x) in enumerate(zip(gs, inputs)):
        if g is None:
            if strict:
                raise RuntimeError(f"{name}: the {what} is independent of input {i} "
                                   "(strict=True)")
            g = x.detach() * 0
        res.append(g)
    return tuple(res)


def _finish(t: Tensor, create_graph: bool) -> Tensor:
    return t if create_graph else t.detach()


def _strict_create_graph(name: str, strict: bool, create_graph: bool) -> None:
    # As in PyTorch: with create_graph a zero result may still carry a graph, so "does not
    # depend" cannot be told apart from "depends with a zero derivative".
    if strict and create_graph:
        raise RuntimeError(f"{name}: strict=True and create_graph=True cannot be used "
                           "together")


# ----------------------------------------------------------------------------- functions
def vjp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T J): the vector-Jacobian product, one backward pass.
    v has the outputs' shapes (may be omitted for a one-element output)."""
    single_in, xs = _prepare("vjp", inputs, create_graph)
    with enable_grad():
        single_out, outs = _call("vjp", func, xs)
        vs = _check_v("vjp", v, outs, "output")
        gs = _grads("vjp", outs, xs, vs, create_graph, strict)
    outs = tuple(_finish(o, create_graph) for o in outs)
    gs = tuple(_finish(g, create_graph) for g in gs)
    return (outs[0] if single_out else outs), (gs[0] if single_in else gs)


def jvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), J v): the Jacobian-vector product. v has the inputs' shapes (may be
    omitted for a one-element input).

    Reverse mode only, so by the double-vjp trick: g(u) = J^T u is linear in u, and
    d/du <g(u), v> = J v for any u (we take u = 0)."""
    _strict_create_graph("jvp", strict, create_graph)
    _, xs = _prepare("jvp", inputs, create_graph)
    vs = _check_v("jvp", v, xs, "input")
    with enable_grad():
        single_out, outs = _call("jvp", func, xs)
        us = tuple((o.detach() * 0).requires_grad_() for o in outs)
        gs = _grads("jvp", outs, xs, us, True, strict)
        dot = sum((g * vi).sum() for g, vi in zip(gs, vs))
        if dot.requires_grad:
            jv = _grads("jvp", [dot], us, [None], create_graph, False)
        else:   # J^T u does not depend on u: every output is constant in the inputs
            jv = tuple(u.detach() * 0 for u in us)
    outs = tuple(_finish(o, create_graph) for o in outs)
    jv = tuple(_finish(j, create_graph) for j in jv)
    return (outs[0] if single_out else outs), (jv[0] if single_out else jv)


def _scalar_output(name: str, func: Callable, xs: tuple) -> Tensor:
    single, outs = _call(name, func, xs)
    if not single or outs[0].numel() != 1:
        raise RuntimeError(f"{name}: func must return a single Tensor with one element, got "
                           f"shapes {[tuple(o.shape) for o in outs]}")
    return outs[0]


def hvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), H v) for a scalar func, H = d^2 func / d inputs^2.

    Pearlmutter 1994: H v = d/dx <df/dx, v>, two backward passes and no H."""
    single_in, xs = _prepare("hvp", inputs, create_graph)
    vs = _check_v("hvp", v, xs, "input")
    with enable_grad():
        y = _scalar_output("hvp", func, xs)
        gs = _grads("hvp", [y], xs, [None], True, strict)
        dot = sum((g * vi).sum() for g, vi in zip(gs, vs))
        if dot.requires_grad:
            hv = _grads("hvp", [dot], xs, [None], create_graph, strict, "gradient")
        elif strict:
            raise RuntimeError("hvp: the gradient is independent of the inputs (strict=True)")
        else:   # f is linear in the inputs: H = 0
            hv = tuple(x.detach() * 0 for x in xs)
    hv = tuple(_finish(h, create_graph) for h in hv)
    return _finish(y, create_graph), (hv[0] if single_in else hv)


def vhp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T H). H is symmetric (Schwarz), so v^T H = (H v)^T and this is hvp;
    PyTorch computes the two in different orders but they agree."""
    return hvp(func, inputs, v, create_graph=create_graph, strict=strict)


def jacobian(func: Callable, inputs, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode"):
    """d func / d inputs, one backward pass per output entry. For one input and one output
    a Tensor of shape out.shape + in.shape; J[j] over inputs or J[i] over outputs when one
    side is a tuple; J[i][j] = d out_i / d in_j when both are."""
    from . import ops
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f"jacobian: strategy must be 'reverse-mode' or 'forward-mode', got "
                         f"{strategy!r}")
    single_in, xs = _prepare("jacobian", inputs, create_graph)
    with enable_grad():
        single_out, outs = _call("jacobian", func, xs)
        jac = []
        for i, out in enumerate(outs):
            flat = out.reshape(-1)                    # (n_out_i,)
            rows = [[] for _ in xs]
            for k in range(flat.shape[0]):
                gs = _grads("jacobian", [flat[k]], xs, [None], create_graph, strict,
                            f"output {i}")
                for j, g in enumerate(gs):
                    rows[j].append(g)
            jac.append(tuple(
                _finish(ops.stack(r, axis=0).reshape(tuple(out.shape) + tuple(x.shape)),
                        create_graph) if r else       # (*out_i.shape, *in_j.shape)
                x.new_zeros(tuple(out.shape) + tuple(x.shape))   # an empty output
                for r, x in zip(rows, xs)))
    if single_out:
        return jac[0][0] if single_in else jac[0]
    return tuple(row[0] for row in jac) if single_in else tuple(jac)


def hessian(func: Callable, inputs, create_graph: bool = False, strict: bool = False,
            vectorize: bool = False, outer_jacobian_strategy: str = "reverse-mode"):
    """d^2 func / d inputs^2 of a scalar func: shape in.shape + in.shape for one input, a
    tuple of tuples H[i][j] = d^2 f / dx_i dx_j for several. The Jacobian of the gradient,
    one backward pass per input entry."""
    from . import ops
    single_in, xs = _prepare("hessian", inputs, create_graph)
    with enable_grad():
        y = _scalar_output("hessian", func, xs)
        gs = _grads("hessian", [y], xs, [None], True, strict)
        hess = []
        for i, g in enumerate(gs):
            flat = g.reshape(-1)                      # (n_i,)
            rows = [[] for _ in xs]
            for k in range(flat.shape[0]):
                if flat.requires_grad:
                    hk = _grads("hessian", [flat[k]], xs, [None], create_graph, strict,
                                f"gradient of input {i}")
                elif strict:
                    raise RuntimeError(f"hessian: the gradient of input {i} is independent "
                                       "of the inputs (strict=True)")
                else:     # f is linear in input i: those rows of H are 0
                    hk = tuple(x.detach() * 0 for x in xs)
                for j, h in enumerate(hk):
                    rows[j].append(h)
            hess.append(tuple(
                _finish(ops.stack(r, axis=0).reshape(tuple(xs[i].shape) + tuple(x.shape)),
                        create_graph) if r else   # (*in_i.shape, *in_j.shape)
                x.new_zeros(tuple(xs[i].shape) + tuple(x.shape))  # an empty input
                for r, x in zip(rows, xs)))
    return hess[0][0] if single_in else tuple(hess)


from .tensor import Tensor, is_float_dtype  # noqa: E402  (tensor.py imports autograd, which imports us)
