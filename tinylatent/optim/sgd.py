"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

PyTorch's formulation (Sutskever et al. 2013 for Nesterov in this form):

    g   = grad + weight_decay * p
    buf = g                                       on the first step
    buf = momentum * buf + (1 - dampening) * g    afterwards
    g   = g + momentum * buf   (nesterov)   or   g = buf
    p  <- p - lr * g
"""
from __future__ import annotations

from ..autograd import no_grad
from .optimizer import Optimizer, required

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
    maximize=False)."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 maximize: bool = False):
        if lr is not required and not lr >= 0.0:
            raise ValueError(f"SGD: invalid learning rate lr={lr}")
        if not momentum >= 0.0:
            raise ValueError(f"SGD: invalid momentum={momentum}")
        if not weight_decay >= 0.0:
            raise ValueError(f"SGD: invalid weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and dampening = 0 "
                             f"(got momentum={momentum}, dampening={dampening})")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                lr, momentum = group["lr"], group["momentum"]
                dampening = group["dampening"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = self._grad(p, group)
                    if momentum != 0:
                        state = self.state.setdefault(p, {})
                        buf = state.get("momentum_buffer")
                        if buf is None:
                            buf = state["momentum_buffer"] = g.copy()
                        else:
                            buf *= momentum
                            buf += (1 - dampening) * g
                        g = g + momentum * buf if group["nesterov"] else buf
                    p.array -= lr * g
                    p._version += 1
        return loss
