"""Learning-rate schedules, PyTorch's names and semantics (`scheduler.step()` once an epoch,
or once a batch for warm-ups, after `optimizer.step()`).

Each scheduler is a closed-form function of the step count `t = last_epoch` and the base
rate `lr_0` of each parameter group (its `initial_lr`, recorded by the first scheduler):

    StepLR             lr_0 * gamma ** (t // step_size)
    MultiStepLR        lr_0 * gamma ** (number of milestones <= t)
    ExponentialLR      lr_0 * gamma ** t
    CosineAnnealingLR  eta_min + (lr_0 - eta_min) * (1 + cos(pi * t / T_max)) / 2
                       (Loshchilov & Hutter 2017, SGDR eq. 5, without restarts)
    LinearLR           lr_0 * (start + (end - start) * min(t, total_iters) / total_iters)
    LambdaLR           lr_0 * lr_lambda(t)
    SequentialLR       schedulers[i] on its own clock from milestones[i - 1] on
    ReduceLROnPlateau  lr * factor once a metric stopped improving for `patience` steps

`linear_warmup(optimizer, warmup_steps, after)` is LinearLR from ~0 to lr_0 followed by
`after` (e.g. a cosine decay), the usual recipe for transformers and contrastive models.
Closed forms (rather than PyTorch's multiplicative updates) keep every schedule a plain
formula; the price is that two schedulers stepping the same optimizer do not compose:
use SequentialLR to chain them.
"""
from __future__ import annotations

import bisect
import math
from typing import Callable, Sequence

from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "LinearLR", "LambdaLR", "SequentialLR", "ReduceLROnPlateau", "linear_warmup"]


class LRScheduler:
    """Base class: subclasses define `lr_at(t) -> list of rates, one per parameter group`."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a tl.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{type(self).__name__}: last_epoch={last_epoch} resumes a "
                               f"schedule, but param group {i} has no 'initial_lr'")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, t: int) -> list[float]:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and write the new rates into the optimizer's groups."""
        self.last_epoch += 1
        self._set(self.lr_at(self.last_epoch))

    def _set(self, lrs: Sequence[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = float(lr)
        self._last_lr = [float(lr) for lr in lrs]

    def get_last_lr(self) -> list[float]:
        """The rates set by the last step, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Plain data (the optimizer and any functions are left out)."""
        return {k: v for k, v in self.__dict__.items()
                if k not in ("optimizer", "lr_lambdas", "schedulers")}

    def load_state_dict(self, state_dict: dict) -> None:
        for key, value in state_dict.items():
            setattr(self, key, list(value) if isinstance(value, tuple) else value)


class StepLR(LRScheduler):
    """lr = lr_0 * gamma ** (t // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        if int(step_size) < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int) -> list[float]:
        return [lr0 * self.gamma ** (t // self.step_size) for lr0 in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr = lr_0 * gamma ** (number of milestones <= t)."""

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 last_epoch: int = -1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int) -> list[float]:
        return [lr0 * self.gamma ** bisect.bisect_right(self.milestones, t)
                for lr0 in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr = lr_0 * gamma ** t."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int) -> list[float]:
        return [lr0 * self.gamma ** t for lr0 in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (lr_0 - eta_min) * (1 + cos(pi * t / T_max)) / 2 (SGDR eq. 5)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,  # noqa: N803
                 last_epoch: int = -1):
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be > 0, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int) -> list[float]:
        c = (1 + math.cos(math.pi * t / self.T_max)) / 2
        return [self.eta_min + (lr0 - self.eta_min) * c for lr0 in self.base_lrs]


class LinearLR(LRScheduler):
    """lr = lr_0 * (start_factor + (end_factor - start_factor) * min(t, total_iters) /
    total_iters): a linear ramp (warm-up when start_factor < end_factor), then constant."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1):
        if not (0 < start_factor <= 1) or not (0 <= end_factor <= 1):
            raise ValueError(f"LinearLR: need 0 < start_factor <= 1 and 0 <= end_factor <= 1, "
                             f"got {start_factor}, {end_factor}")
        if total_iters < 1:
            raise ValueError(f"LinearLR: total_iters must be >= 1, got {total_iters}")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int) -> list[float]:
        frac = min(t, self.total_iters) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * frac
        return [lr0 * factor for lr0 in self.base_lrs]


class LambdaLR(LRScheduler):
    """lr = lr_0 * lr_lambda(t); one function, or one per parameter group."""

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable | Sequence[Callable],
                 last_epoch: int = -1):
        n = len(optimizer.param_groups)
        if callable(lr_lambda):
            self.lr_lambdas = [lr_lambda] * n
        else:
            self.lr_lambdas = list(lr_lambda)
            if len(self.lr_lambdas) != n:
                raise ValueError(f"LambdaLR: got {len(self.lr_lambdas)} lr_lambdas for {n} "
                                 "parameter groups")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int) -> list[float]:
        return [lr0 * f(t) for lr0, f in zip(self.base_lrs, self.lr_lambdas)]


class SequentialLR(LRScheduler):
    """schedulers[i] runs from milestones[i - 1] (its clock restarted at 0) to milestones[i]."""

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler],
                 milestones: Sequence[int], last_epoch: int = -1):
        if len(schedulers) < 1 or len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: expected len(milestones) == len(schedulers) - 1, "
                             f"got {len(milestones)} milestones, {len(schedulers)} schedulers")
        for i, s in enumerate(schedulers):
            if s.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: scheduler {i} steps a different optimizer")
        if list(milestones) != sorted(milestones):
            raise ValueError(f"SequentialLR: milestones must increase, got {milestones}")
        self.schedulers = list(schedulers)
        self.milestones = [int(m) for m in milestones]
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int) -> list[float]:
        i = bisect.bisect_right(self.milestones, t)
        start = self.milestones[i - 1] if i > 0 else 0
        return self.schedulers[i].lr_at(t - start)

    def step(self) -> None:
        super().step()
        i = bisect.bisect_right(self.milestones, self.last_epoch)
        start = self.milestones[i - 1] if i > 0 else 0
        self.schedulers[i].last_epoch = self.last_epoch - start

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["schedulers"] = [s.state_dict() for s in self.schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        for s, sd in zip(self.schedulers, state.pop("schedulers", [])):
            s.load_state_dict(sd)
        super().load_state_dict(state)


def linear_warmup(optimizer: Optimizer, warmup_steps: int, after: LRScheduler | None = None,
                  start_factor: float = 1e-3) -> LRScheduler:
    """Ramp the rate linearly from start_factor * lr_0 to lr_0 over `warmup_steps` steps,
    then hand over to `after` (its clock starting at 0), or stay at lr_0.

        sched = linear_warmup(opt, 500, CosineAnnealingLR(opt, T_max=total - 500))
    """
    warm = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0,
                    total_iters=warmup_steps)
    if after is None:
        return warm
    return SequentialLR(optimizer, [warm, after], milestones=[warmup_steps])


class ReduceLROnPlateau:
    """Multiply each group's lr by `factor` (not below `min_lr`) when the metric passed to
    `step(metric)` has not improved for more than `patience` calls; then wait `cooldown`
    calls. Improvement (mode "min"): metric < best * (1 - threshold) ("rel") or
    metric < best - threshold ("abs"); mode "max" mirrors it. PyTorch's semantics."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | Sequence[float] = 0.0,
                 eps: float = 1e-8):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ReduceLROnPlateau: expected a tl.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1, got {factor}")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min'|'max' and threshold_mode "
                             f"'rel'|'abs', got {mode!r}, {threshold_mode!r}")
        n = len(optimizer.param_groups)
        self.min_lrs = [float(min_lr)] * n if isinstance(min_lr, (int, float)) \
            else [float(m) for m in min_lr]
        if len(self.min_lrs) != n:
            raise ValueError(f"ReduceLROnPlateau: {len(self.min_lrs)} min_lr values for {n} "
                             "parameter groups")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def _is_better(self, a: float) -> bool:
        if self.mode == "min":
            bound = self.best * (1 - self.threshold) if self.threshold_mode == "rel" \
                else self.best - self.threshold
            return a < bound
        bound = self.best * (1 + self.threshold) if self.threshold_mode == "rel" \
            else self.best + self.threshold
        return a > bound

    def step(self, metric) -> None:
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        for key, value in state_dict.items():
            setattr(self, key, list(value) if isinstance(value, tuple) else value)
