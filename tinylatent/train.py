"""A training loop for the examples: progress bar, per-epoch metrics, atomic checkpoints with
exact resume, a loss-curve PNG and an evaluation hook.

    trainer = Trainer(model, optimizer, out="runs/my_example", config=vars(args),
                      evaluate=lambda model: {"test_loss": ...})
    history = trainer.fit(loader, epochs=args.epochs, resume=args.resume)

The model follows the model contract: `model.loss(batch) -> (loss, metrics)` with tensor
metrics; they are turned into Python numbers here, once per epoch (and for the progress bar
every `log_every` steps), never inside the model. After every epoch the trainer writes
OUT/checkpoint.npz (tl.save: temporary file then rename) holding the weights, the optimizer
(and scheduler) state, the global RNG state, the shuffling generator's state, the history,
the epoch and `config`, so that `fit(..., resume=True)` continues bit for bit where the run
stopped: 1 epoch + resume + 1 epoch gives the same weights as 2 epochs straight.
examples/vae_mnist.py writes the same loop out by hand, as the teaching version.

Several optimizers (adversarial models: GAN, DCGAN, WGANGP in models/gan.py and dcgan.py):
pass `optimizer` as a dict name -> optimizer (and `scheduler`, if any, as a dict with some of
the same names). The model then owns the update and defines

    model.training_step(batch, optimizers, step) -> metrics

which zeroes, backpropagates and steps the optimizers it needs (e.g. the discriminator on
every batch, the generator every n_critic-th; `step` is the trainer's global step count
before this batch, restored on resume) and returns detached metrics holding "loss". Every
optimizer's (and scheduler's) state is checkpointed under its name, so resume stays exact.

    trainer = Trainer(gan, gan.optimizers(), out="runs/gan")    # {"discriminator", "generator"}
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from typing import Callable, Iterable

from .random import get_rng_state, set_rng_state
from .tensor import Tensor

__all__ = ["Trainer", "fit", "config_differences", "CHECKPOINT", "DefaultsHelpFormatter"]

CHECKPOINT = "checkpoint.npz"
# keys of `config` a resumed run may change: where it runs and how long, not what it trains
RESUMABLE_KEYS = ("resume", "epochs", "out", "device", "limit_train_batches")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """The examples' --help formatter: every option shows its default.

    argparse's ArgumentDefaultsHelpFormatter appends "(default: ...)" only to options that
    have help text, and appends "(default: None)" where None means "chosen at run time"
    (the help then says how). This one also lists the options without help text, and says
    nothing for a None default or an off flag.

        argparse.ArgumentParser(description=..., formatter_class=DefaultsHelpFormatter)
    """

    @staticmethod
    def _worth_showing(action) -> bool:
        off_flag = action.default is False and action.nargs == 0 and action.const is True
        return action.default is not None and not off_flag     # (off_flag: store_true)

    def _get_help_string(self, action):
        return super()._get_help_string(action) if self._worth_showing(action) \
            else action.help

    def _format_action(self, action):
        if not (action.help or "").strip() and action.option_strings \
                and self._worth_showing(action) and action.default != argparse.SUPPRESS:
            action = copy.copy(action)          # the parser's own action stays as it was
            action.help = "(default: %(default)s)"
        return super()._format_action(action)


def config_differences(saved: dict, current: dict,
                       ignore: Iterable[str] = RESUMABLE_KEYS) -> list[str]:
    """Human-readable differences "key: saved -> current" between two configs."""
    skip = set(ignore)
    out = []
    for key in sorted(set(saved) | set(current), key=str):
        if key in skip:
            continue
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            a, b = list(a), list(b)  # a checkpoint gives tuples back as saved; be lenient
        if a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def _batch_size(batch) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    if isinstance(batch, dict):
        first = next(iter(batch.values()))
    return len(first)


def _to_device(batch, device):
    if device is None:
        return batch
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _states(obj):
    """state_dict() of an optimizer / scheduler, or {name: state_dict()} of a dict of them."""
    if isinstance(obj, dict):
        return {name: o.state_dict() for name, o in obj.items()}
    return obj.state_dict()


def _load_states(obj, state) -> None:
    if isinstance(obj, dict):
        for name, o in obj.items():
            o.load_state_dict(state[name])
    else:
        obj.load_state_dict(state)


def _number(value) -> float:
    return float(value.item()) if isinstance(value, Tensor) else float(value)


class Trainer:
    """Train `model` with `optimizer`, one epoch at a time, writing under `out`.

    optimizer: one optimizer (the step is loss(batch) -> backward -> step), or a dict
      name -> optimizer handed to `model.training_step(batch, optimizers, step)`.

    config: the run's settings (e.g. vars(args)); saved in the checkpoint, and on resume any
      difference outside `resumable_keys` raises a ValueError that lists them.
    evaluate: called as evaluate(model) after each epoch (the model in eval mode); returns a
      dict of numbers merged into that epoch's history entry (e.g. {"test_loss": 91.2}).
    scheduler: an lr scheduler (state checkpointed), stepped once per epoch, or after every
      optimizer update with scheduler_interval="step" (warm-ups, per-update decays).
    progress: show a tqdm bar; default: only when stdout is a terminal.
    """

    def __init__(self, model, optimizer, out: str, config: dict | None = None,
                 evaluate: Callable | None = None, scheduler=None, device=None,
                 progress: bool | None = None, log_every: int = 20,
                 resumable_keys: Iterable[str] = RESUMABLE_KEYS, plot: bool = True,
                 scheduler_interval: str = "epoch"):
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Trainer: scheduler_interval must be 'epoch' or 'step', got "
                             f"{scheduler_interval!r}")
        if isinstance(optimizer, dict):
            if not optimizer:
                raise ValueError("Trainer: the optimizer dict is empty")
            if not callable(getattr(model, "training_step", None)):
                raise TypeError(f"Trainer: with several optimizers ({sorted(optimizer)}) the "
                                f"model must define training_step(batch, optimizers, step); "
                                f"{type(model).__name__} does not")
            if scheduler is not None and (not isinstance(scheduler, dict)
                                          or not set(scheduler) <= set(optimizer)):
                raise ValueError("Trainer: with a dict of optimizers, scheduler must be a "
                                 f"dict with some of their names {sorted(optimizer)}")
        elif isinstance(scheduler, dict):
            raise ValueError("Trainer: a dict of schedulers needs a dict of optimizers")
        self.model, self.optimizer, self.out = model, optimizer, out
        self.config = dict(config or {})
        self.evaluate, self.scheduler, self.device = evaluate, scheduler, device
        self.scheduler_interval = scheduler_interval
        self.progress = sys.stdout.isatty() if progress is None else progress
        self.log_every, self.resumable_keys, self.plot = log_every, tuple(resumable_keys), plot
        self.history: list[dict] = []
        self.epoch = 0
        self.step = 0

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.out, CHECKPOINT)

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self, loader=None) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": _states(self.optimizer),
                 "epoch": self.epoch, "step": self.step, "rng": get_rng_state(),
                 "history": self.history, "config": self.config}
        if self.scheduler is not None:
            state["scheduler"] = _states(self.scheduler)
        generator = getattr(loader, "generator", None)
        if generator is not None:
            state["shuffle_rng"] = generator.get_state()
        return state

    def save_checkpoint(self, loader=None) -> None:
        from .serialization import save
        save(self.state_dict(loader), self.checkpoint_path)  # temp file + rename: atomic

    def load_checkpoint(self, loader=None, path: str | None = None) -> None:
        """Restore everything `state_dict` saved; first checks the config (nothing changes
        if it differs)."""
        from .serialization import load
        path = path or self.checkpoint_path
        ckpt = load(path)
        diff = config_differences(dict(ckpt.get("config", {})), self.config,
                                  self.resumable_keys)
        if diff:
            raise ValueError(f"Trainer: cannot resume from {path}: the run's settings differ "
                             "from the checkpoint's (saved -> now): " + "; ".join(diff))
        generator = getattr(loader, "generator", None)
        if (generator is not None) != ("shuffle_rng" in ckpt):
            raise ValueError(f"Trainer: cannot resume from {path}: the checkpoint "
                             f"{'has' if 'shuffle_rng' in ckpt else 'lacks'} a shuffling "
                             "generator state, the loader "
                             f"{'has' if generator is not None else 'has no'} generator")
        for what in ("optimizer", "scheduler"):
            mine = getattr(self, what)
            if isinstance(mine, dict) and set(ckpt.get(what, {})) != set(mine):
                raise ValueError(f"Trainer: cannot resume from {path}: the checkpoint's "
                                 f"{what}s {sorted(ckpt.get(what, {}))} are not this run's "
                                 f"{sorted(mine)}")
        self.model.load_state_dict(ckpt["model"])
        _load_states(self.optimizer, ckpt["optimizer"])
        if self.scheduler is not None:
            _load_states(self.scheduler, ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        if generator is not None:
            generator.set_state(ckpt["shuffle_rng"])
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self.history = [dict(h) for h in ckpt["history"]]

    # ---------------------------------------------------------------- training
    def train_epoch(self, loader, max_steps: int | None = None) -> dict:
        """One pass over `loader`; returns the per-item mean of every metric (over the
        batches that reported it: a GAN's generator loss only comes every n_critic steps)."""
        from tqdm import tqdm
        self.model.train()
        total = min(len(loader), max_steps or len(loader))
        sums: dict = {}
        counts: dict = {}
        n = 0
        bar = tqdm(loader, total=total, desc=f"epoch {self.epoch + 1}", leave=False,
                   mininterval=0.5, disable=not self.progress)
        for i, batch in enumerate(bar):
            if i == total:
                break
            batch = _to_device(batch, self.device)
            if isinstance(self.optimizer, dict):     # the model owns the update
                metrics = self.model.training_step(batch, self.optimizer, self.step)
                if "loss" not in metrics:
                    raise KeyError(f"Trainer: {type(self.model).__name__}.training_step "
                                   f"returned metrics without 'loss': {sorted(metrics)}")
                loss = metrics["loss"]
            else:
                loss, metrics = self.model.loss(batch)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            self.step += 1
            if self.scheduler_interval == "step":
                self._step_schedulers()
            size = _batch_size(batch)
            n += size
            for key, value in metrics.items():  # tensors stay on the device: no sync here
                value = value.detach() if isinstance(value, Tensor) else value
                sums[key] = sums[key] + value * size if key in sums else value * size
                counts[key] = counts.get(key, 0) + size
            if self.progress and i % self.log_every == 0:
                bar.set_postfix(loss=f"{_number(loss):.4g}")
        bar.close()
        if n == 0:
            raise ValueError("Trainer.train_epoch: the loader gave no batches")
        return {key: _number(value) / counts[key] for key, value in sums.items()}

    def _step_schedulers(self) -> None:
        if self.scheduler is not None:
            for scheduler in (self.scheduler.values() if isinstance(self.scheduler, dict)
                              else [self.scheduler]):
                scheduler.step()

    def fit(self, loader, epochs: int, resume: bool = False,
            max_steps_per_epoch: int | None = None) -> list[dict]:
        """Train until `epochs` epochs are done in all (counting those before a resume).
        Returns the history: one dict per epoch with "epoch", the training metrics and what
        `evaluate` returned."""
        os.makedirs(self.out, exist_ok=True)
        if resume and os.path.exists(self.checkpoint_path):
            self.load_checkpoint(loader)
            print(f"resumed from {self.checkpoint_path} after epoch {self.epoch}")
        elif resume:
            print(f"no checkpoint at {self.checkpoint_path}: starting from scratch")
        while self.epoch < epochs:
            record = {"epoch": self.epoch + 1, **self.train_epoch(loader, max_steps_per_epoch)}
            if self.evaluate is not None:
                self.model.eval()
                extra = self.evaluate(self.model) or {}
                clash = set(extra) & set(record)
                if clash:
                    raise ValueError(f"Trainer: evaluate returned keys {sorted(clash)} that "
                                     "the training metrics already use; rename them")
                record.update({k: _number(v) for k, v in extra.items()})
            if self.scheduler_interval == "epoch":
                self._step_schedulers()
            self.epoch += 1
            self.history.append(record)
            print(f"epoch {self.epoch:3d}  " + "  ".join(
                f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"), flush=True)
            self.save_checkpoint(loader)
            if self.plot:
                plot_history(self.history, os.path.join(self.out, "loss_curve.png"))
        return self.history


def plot_history(history: list[dict], path: str, ylabel: str = "loss") -> None:
    """Every metric whose name contains "loss" (else every metric) against the epoch, one PNG.
    Drawn on an Agg canvas without pyplot, so the caller's matplotlib backend is left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    keys = [k for k in history[0] if "loss" in k] or [k for k in history[0] if k != "epoch"]
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(5, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key in keys:
        ax.plot(epochs, [h.get(key, float("nan")) for h in history], "o-", label=key, ms=3)
    ax.set(xlabel="epoch", ylabel=ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def fit(model, optimizer, loader, epochs: int, out: str, resume: bool = False,
        **kwargs) -> list[dict]:
    """Trainer(model, optimizer, out, **kwargs).fit(loader, epochs, resume): the history."""
    return Trainer(model, optimizer, out, **kwargs).fit(loader, epochs, resume)
