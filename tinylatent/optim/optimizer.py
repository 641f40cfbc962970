"""The optimizer base class: parameter groups, per-parameter state, state dicts.

An optimizer holds `param_groups`, a list of dicts, each with its own `params` (a list of
Tensors) and hyper-parameters (`lr`, ...). `state[p]` holds the per-parameter buffers
(momentum, moment estimates) as raw arrays of the parameter's array module (numpy / cupy),
allocated once and updated in place every step: re-allocating ~MB-sized temporaries every
step costs page faults (~5 ms per 13 MB on a laptop CPU).

`state_dict()` returns only plain data (int, float, bool, str, tuples, numpy arrays), with
parameters named by their position across groups, as in PyTorch, so `tl.save` can store it
without pickle and `load_state_dict` can restore it into a freshly built optimizer.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable

import numpy as np

from ..autograd import enable_grad
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _Required:
    """Sentinel for a hyper-parameter without a default (SGD's lr in old PyTorch)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


def _to_host(value):
    """A copy of a state value as plain host data (numpy array or Python scalar)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if hasattr(value, "get") and hasattr(value, "__cuda_array_interface__"):  # cupy
        return value.get()  # pragma: no cover - GPU
    if isinstance(value, Tensor):
        return value.numpy_host().copy()
    if isinstance(value, np.generic):
        return value.item()
    return copy.deepcopy(value)


class Optimizer:
    """Base class. Subclasses implement `step()` using `self.param_groups` and `self.state`.

    Optimizer(params, defaults): `params` is an iterable of Tensors or of dicts (parameter
    groups) with a "params" entry and per-group overrides of `defaults`.
    """

    def __init__(self, params: Iterable, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors "
                            "or dicts, got a single Tensor; wrap it in a list")
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters, filling unspecified hyper-parameters from defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{type(self).__name__}.add_param_group: expected a dict, got "
                            f"{type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a "
                                f"{type(p).__name__}, not a Tensor")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: parameter {i} (shape {p.shape}) is "
                                 "not a leaf tensor; optimize leaves (e.g. .detach())")
        group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{type(self).__name__}: parameter group didn't specify a "
                                 f"value of required hyper-parameter '{key}'")
            group.setdefault(key, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than "
                             "one parameter group (or twice in one)")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset gradients: to None (the default, frees memory) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.array[...] = 0

    def step(self, closure=None):
        raise NotImplementedError

    @staticmethod
    def _grad(p, group):
        """The gradient array a step follows: -grad when group["maximize"], plus the L2 term
        weight_decay * p (PyTorch's coupled weight decay) when group["weight_decay"] != 0.
        A new array whenever it differs from p.grad's, never p.grad's modified in place."""
        g = p.grad.array
        if group["maximize"]:
            g = -g
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p.array
        return g

    @staticmethod
    def _evaluate(closure):
        """closure() with grad recording on (step() itself runs under no_grad), or None."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # ------------------------------------------------------------------ state dicts
    def state_dict(self) -> dict:
        """{"state": {index: {name: array|number}}, "param_groups": [{..., "params": [idx]}]}.

        Arrays are host copies, so the dict can be saved and is not changed by later steps.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: _to_host(v) for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: _to_host(v) for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and buffers saved by `state_dict()` (a deep copy)."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"param_groups", "state"} <= state_dict.keys():
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys "
                             "'param_groups' and 'state' (from Optimizer.state_dict())")
        # Everything is checked and converted before anything is assigned: a state dict
        # rejected halfway must leave this optimizer as it was.
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(groups)} "
                             f"parameter groups, this optimizer {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {i} has "
                                 f"{len(saved['params'])} parameters in the state dict, "
                                 f"{len(group['params'])} here")
        by_index = {}
        for saved, group in zip(groups, self.param_groups):
            for idx, p in zip(saved["params"], group["params"]):
                by_index[int(idx)] = p
        state = {}
        for idx, saved_state in state_dict["state"].items():
            p = by_index.get(int(idx))
            if p is None:
                raise ValueError(f"{name}.load_state_dict: state for parameter {idx}, "
                                 "which no parameter group lists")
            try:
                state[p] = {k: self._load_value(p, k, v) for k, v in saved_state.items()}
            except ValueError as e:
                raise ValueError(f"{name}.load_state_dict: parameter {idx}: {e}") from None
        hyper = [{key: tuple(value) if isinstance(value, list) else copy.deepcopy(value)
                  for key, value in saved.items() if key != "params"} for saved in groups]
        self.state = state
        for group, values in zip(self.param_groups, hyper):
            group.update(values)

    @staticmethod
    def _load_value(p: Tensor, key: str, value):
        if isinstance(value, Tensor):
            value = value.array
        if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
            if tuple(value.shape) != tuple(p.shape):
                raise ValueError(f"load_state_dict: state '{key}' has shape "
                                 f"{tuple(value.shape)}, the parameter {tuple(p.shape)}")
            arr = p.xp.asarray(value, dtype=p.dtype)
            return arr.copy() if arr is value else arr
        if isinstance(value, np.generic) or (hasattr(value, "shape") and value.ndim == 0):
            return value.item()
        return copy.deepcopy(value)
