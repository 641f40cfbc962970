"""Sharpness-aware minimization (Foret et al. 2021, "SAM", eq. 2-3).

SAM minimises max_{||e|| <= rho} L(w + e). To first order the worst perturbation is

    e(w) = rho * g / ||g||_2                      (adaptive SAM, Kwon et al. 2021:
                                                   e = rho * |w|^2 g / || |w| g ||_2)

and the update uses the gradient taken at the perturbed weights:

    w <- w - lr * grad L(w + e(w))                (through any base optimizer)

So each step costs two forward/backward passes:

    opt = SAM(model.parameters(), tl.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    loss_fn().backward(); opt.first_step(zero_grad=True)    # climb to w + e
    loss_fn().backward(); opt.second_step(zero_grad=True)   # back to w, base step
or `opt.step(closure)` with a closure that zeroes grads, computes the loss and backwards.
"""
from __future__ import annotations

from typing import Callable

from ..autograd import enable_grad, no_grad
from .optimizer import Optimizer

__all__ = ["SAM"]


class SAM(Optimizer):
    """SAM(params, base_optimizer, rho=0.05, adaptive=False, **base_kwargs)."""

    def __init__(self, params, base_optimizer: Callable[..., Optimizer], rho: float = 0.05,
                 adaptive: bool = False, **kwargs):
        if not rho >= 0.0:
            raise ValueError(f"SAM: invalid rho={rho}")
        super().__init__(params, dict(rho=rho, adaptive=adaptive, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        # one list of groups for both, so lr schedulers and add_param_group reach the base
        self.param_groups = self.base_optimizer.param_groups

    def _grad_norm(self):
        total = 0.0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.array * abs(p.array) if group["adaptive"] else p.grad.array
                total += float((g * g).sum())
        return total ** 0.5

    def first_step(self, zero_grad: bool = False) -> None:
        """w <- w + e(w), remembering e to undo it in second_step."""
        norm = self._grad_norm()
        with no_grad():
            for group in self.param_groups:
                scale = group["rho"] / (norm + 1e-12)
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    e = p.grad.array * scale
                    if group["adaptive"]:
                        e = e * (p.array * p.array)
                    p.array += e
                    p._version += 1
                    self.state.setdefault(p, {})["e_w"] = e
        if zero_grad:
            self.zero_grad()

    def second_step(self, zero_grad: bool = False) -> None:
        """w <- w - e(w), then the base optimizer's step with the gradient taken at w + e."""
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    e = self.state.get(p, {}).pop("e_w", None)
                    if e is not None:
                        p.array -= e
                        p._version += 1
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure=None):
        """Both half-steps; `closure` must zero the grads, compute the loss and backward."""
        if closure is None:
            raise ValueError("SAM.step needs a closure (it evaluates the loss twice); or call "
                             "first_step() and second_step() yourself")
        with enable_grad():
            loss = closure()
        self.first_step(zero_grad=True)
        with enable_grad():
            closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
