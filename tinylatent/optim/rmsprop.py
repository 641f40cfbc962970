"""RMSprop (Hinton, lecture 6e; centered form: Graves 2013, eq. 38-45), PyTorch semantics.

    g    = grad + weight_decay * p
    s    = alpha * s + (1 - alpha) * g^2                     running mean of squares
    gbar = alpha * gbar + (1 - alpha) * g                    (centered only)
    d    = sqrt(s - gbar^2) + eps   (centered)   or   sqrt(s) + eps
    buf  = momentum * buf + g / d;  p <- p - lr * buf        (momentum > 0)
    p   <- p - lr * g / d                                    (otherwise)
"""
from __future__ import annotations

from ..autograd import no_grad
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
    centered=False, maximize=False)."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 maximize: bool = False):
        for key, value in dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                               momentum=momentum).items():
            if not value >= 0.0:
                raise ValueError(f"RMSprop: invalid {key}={value}")
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
                momentum = group["momentum"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    xp = p.xp
                    g = self._grad(p, group)
                    state = self.state.get(p)
                    if state is None:
                        state = self.state[p] = {"step": 0,
                                                 "square_avg": xp.zeros_like(p.array)}
                    state["step"] += 1
                    square_avg = state["square_avg"]
                    square_avg *= alpha
                    square_avg += (1 - alpha) * g * g
                    if group["centered"]:
                        grad_avg = state.get("grad_avg")
                        if grad_avg is None:
                            grad_avg = state["grad_avg"] = xp.zeros_like(p.array)
                        grad_avg += (1 - alpha) * (g - grad_avg)      # lerp, as PyTorch
                        avg = xp.sqrt(square_avg - grad_avg * grad_avg) + eps
                    else:
                        avg = xp.sqrt(square_avg) + eps
                    if momentum > 0:
                        buf = state.get("momentum_buffer")
                        if buf is None:
                            buf = state["momentum_buffer"] = xp.zeros_like(p.array)
                        buf *= momentum
                        buf += g / avg
                        p.array -= lr * buf
                    else:
                        p.array -= lr * (g / avg)
                    p._version += 1
        return loss
