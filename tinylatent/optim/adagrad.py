"""Adagrad (Duchi et al. 2011) and Adadelta (Zeiler 2012), PyTorch semantics.

Adagrad, step t = 1, 2, ...:
    g    = grad + weight_decay * p
    s    = s + g^2                  sum of squares, from s = initial_accumulator_value
    p   <- p - lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)

Adadelta (Zeiler 2012, Algorithm 1): the unit-free step
sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) times g:
    g    = grad + weight_decay * p
    v    = rho v + (1 - rho) g^2                     E[g^2]
    dx   = sqrt(u + eps) / sqrt(v + eps) * g
    u    = rho u + (1 - rho) dx^2                    E[dx^2]
    p   <- p - lr * dx                               (lr = 1 in the paper)
"""
from __future__ import annotations

from ..autograd import no_grad
from .optimizer import Optimizer

__all__ = ["Adagrad", "Adadelta"]


def _check(name: str, **values) -> None:
    for key, value in values.items():
        if not value >= 0.0:
            raise ValueError(f"{name}: invalid {key}={value}")


class Adagrad(Optimizer):
    """Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
    eps=1e-10, maximize=False)."""

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, maximize: bool = False):
        _check("Adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
               initial_accumulator_value=initial_accumulator_value, eps=eps)
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    xp = p.xp
                    g = self._grad(p, group)
                    state = self.state.get(p)
                    if state is None:
                        state = self.state[p] = {
                            "step": 0, "sum": xp.full_like(
                                p.array, group["initial_accumulator_value"])}
                    state["step"] += 1
                    state["sum"] += g * g
                    clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
                    p.array -= clr * (g / (xp.sqrt(state["sum"]) + group["eps"]))
                    p._version += 1
        return loss


class Adadelta(Optimizer):
    """Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False)."""

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, maximize: bool = False):
        _check("Adadelta", lr=lr, eps=eps, weight_decay=weight_decay)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta: invalid rho={rho} (must be in [0, 1])")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                lr, rho, eps = group["lr"], group["rho"], group["eps"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    xp = p.xp
                    g = self._grad(p, group)
                    state = self.state.get(p)
                    if state is None:
                        state = self.state[p] = {"step": 0,
                                                 "square_avg": xp.zeros_like(p.array),
                                                 "acc_delta": xp.zeros_like(p.array)}
                    state["step"] += 1
                    square_avg, acc_delta = state["square_avg"], state["acc_delta"]
                    square_avg *= rho
                    square_avg += (1 - rho) * g * g
                    delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * g
                    acc_delta *= rho
                    acc_delta += (1 - rho) * delta * delta
                    p.array -= lr * delta
                    p._version += 1
        return loss
