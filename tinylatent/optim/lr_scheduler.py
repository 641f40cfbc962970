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
    CosineAnnealingWarmRestarts   the cosine restarted after T_0, T_0 T_mult, ... steps
    OneCycleLR         up to max_lr and down again over total_steps (Smith & Topin 2019)
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
           "LinearLR", "LambdaLR", "SequentialLR", "ReduceLROnPlateau", "linear_warmup",
           "CosineAnnealingWarmRestarts", "OneCycleLR"]


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


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR (Loshchilov & Hutter 2017, eq. 5) with restarts: period i lasts
    T_i = T_0 * T_mult**i steps, and within it
        lr = eta_min + (lr_0 - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2,
    T_cur the steps since the last restart. step(epoch) also takes a fractional epoch
    (`scheduler.step(epoch + i / iters_per_epoch)`, the paper's per-batch annealing)."""

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1,  # noqa: N803
                 eta_min: float = 0.0, last_epoch: int = -1):
        if not isinstance(T_0, int) or T_0 <= 0:
            raise ValueError(f"CosineAnnealingWarmRestarts: T_0 must be a positive integer, "
                             f"got {T_0}")
        if not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"CosineAnnealingWarmRestarts: T_mult must be an integer >= 1, "
                             f"got {T_mult}")
        self.T_0, self.T_mult, self.eta_min = T_0, T_mult, eta_min
        super().__init__(optimizer, last_epoch)

    def period(self, t: float) -> tuple[float, int]:
        """(T_cur, T_i) at step t: the periods T_0, T_0 T_mult, ... laid end to end."""
        if t < 0:
            raise ValueError(f"CosineAnnealingWarmRestarts: epoch must be >= 0, got {t}")
        start, length = 0, self.T_0
        if self.T_mult == 1:
            return t - length * (t // length), length
        while t >= start + length:
            start, length = start + length, length * self.T_mult
        return t - start, length

    def lr_at(self, t: float) -> list[float]:
        t_cur, t_i = self.period(t)
        c = (1 + math.cos(math.pi * t_cur / t_i)) / 2
        return [self.eta_min + (lr0 - self.eta_min) * c for lr0 in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        if epoch is None:
            super().step()
        else:
            self.last_epoch = epoch
            self._set(self.lr_at(epoch))


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2019), PyTorch's form: once per batch, the rate goes
    from max_lr / div_factor up to max_lr over the first pct_start of total_steps, then down
    to max_lr / (div_factor * final_div_factor); momentum (or Adam's beta1) moves the
    opposite way between max_momentum and base_momentum. Each phase anneals from a to b by
        cos:    b + (a - b) (1 + cos(pi p)) / 2,     linear:  a + (b - a) p,
    p the fraction of the phase done. three_phase: up, back down to the initial rate, then
    the final annealing."""

    def __init__(self, optimizer: Optimizer, max_lr, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1):
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if total_steps <= 0:
            raise ValueError(f"OneCycleLR: total_steps must be > 0, got {total_steps}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be in [0, 1], got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        self.total_steps, self.anneal_strategy = int(total_steps), anneal_strategy
        self.cycle_momentum = cycle_momentum
        groups = optimizer.param_groups
        n = len(groups)
        max_lrs = self._per_group("max_lr", max_lr, n)
        if last_epoch == -1:
            for group, top in zip(groups, max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"], group["min_lr"] = top, top / div_factor / final_div_factor
        self.max_lrs = [g["max_lr"] for g in groups]
        self.min_lrs = [g["min_lr"] for g in groups]
        up = float(pct_start * self.total_steps) - 1
        if three_phase:     # (end step, start, end) per phase; "initial", "max", "min"
            self.phases = [(up, "initial", "max"), (2 * up, "max", "initial"),
                           (self.total_steps - 1, "initial", "min")]
        else:
            self.phases = [(up, "initial", "max"), (self.total_steps - 1, "max", "min")]
        if cycle_momentum:
            self.use_beta1 = "betas" in optimizer.defaults
            if not self.use_beta1 and "momentum" not in optimizer.defaults:
                raise ValueError("OneCycleLR: the optimizer has neither momentum nor betas; "
                                 "pass cycle_momentum=False")
            self.base_momentums = self._per_group("base_momentum", base_momentum, n)
            self.max_momentums = self._per_group("max_momentum", max_momentum, n)
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _per_group(name: str, value, n: int) -> list:
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                raise ValueError(f"OneCycleLR: {name} has {len(value)} values for {n} "
                                 "param groups")
            return [float(v) for v in value]
        return [float(value)] * n

    def _anneal(self, a: float, b: float, p: float) -> float:
        if self.anneal_strategy == "cos":
            return b + (a - b) / 2.0 * (math.cos(math.pi * p) + 1)
        return (b - a) * p + a

    def _phase(self, t: int) -> tuple[int, float]:
        """(phase index, fraction of it done) at step t."""
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {t} times, beyond total_steps="
                             f"{self.total_steps}")
        start = 0.0
        for i, (end, _, _) in enumerate(self.phases):
            if t <= end or i == len(self.phases) - 1:
                return i, (t - start) / (end - start)
            start = end
        raise AssertionError("unreachable")

    def lr_at(self, t: int) -> list[float]:
        i, p = self._phase(t)
        _, a, b = self.phases[i]
        out = []
        for lr0, top, bottom in zip(self.base_lrs, self.max_lrs, self.min_lrs):
            level = {"initial": lr0, "max": top, "min": bottom}
            out.append(self._anneal(level[a], level[b], p))
        return out

    def step(self) -> None:
        super().step()
        if not self.cycle_momentum:
            return
        i, p = self._phase(self.last_epoch)
        _, a, b = self.phases[i]
        for group, low, high in zip(self.optimizer.param_groups, self.base_momentums,
                                    self.max_momentums):
            level = {"initial": high, "max": low, "min": high}    # momentum moves inversely
            m = self._anneal(level[a], level[b], p)
            if self.use_beta1:
                group["betas"] = (m,) + tuple(group["betas"][1:])
            else:
                group["momentum"] = m


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
