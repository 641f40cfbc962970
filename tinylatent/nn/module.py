"""Module and Parameter: the containers every layer and model is built from.

A Module owns three ordered dictionaries: `_parameters` (trainable Parameters), `_buffers`
(Tensors that are state but not trained, e.g. batch-norm running statistics) and `_modules`
(child Modules). Assigning an attribute routes it into the right dictionary, exactly as in
PyTorch, so `self.fc = Linear(3, 4)` registers a child and `self.w = Parameter(...)` a
parameter. Everything else (named_parameters, state_dict, train/eval, to) walks that tree.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Callable, Iterator

import numpy as np

from .. import autograd
from ..backend import Device
from ..tensor import Tensor, is_float_dtype

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict"]


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable. `Parameter(data, requires_grad=True)`.

    It shares memory with `data` when `data` is a Tensor or an array (as PyTorch does), so an
    initializer can fill a tensor and wrap it without a copy.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        if isinstance(data, Tensor):
            data = data.array
        super().__init__(data)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo: dict) -> "Parameter":
        """copy.deepcopy(model) (target networks, EMA teachers) copies the values."""
        if id(self) in memo:
            return memo[id(self)]
        out = Parameter(Tensor._make(self.array.copy()), self.requires_grad)
        if self.grad is not None:
            out.grad = Tensor._make(self.grad.array.copy())
        memo[id(self)] = out
        return out


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _host(value):
    """The raw array of a Tensor / numpy / cupy value (no copy)."""
    if isinstance(value, Tensor):
        return value.array
    if hasattr(value, "__cuda_array_interface__") or isinstance(value, np.ndarray):
        return value
    return np.asarray(value)


class _HookHandle:
    _next_id = 0

    def __init__(self, registry: dict, hook: Callable) -> None:
        self.registry, self.id = registry, _HookHandle._next_id
        _HookHandle._next_id += 1
        registry[self.id] = hook

    def remove(self) -> None:
        self.registry.pop(self.id, None)


class _BackwardHookIdentity(autograd.Function):
    """y_i = x_i for several tensors at once; dL/dx_i = on_grad(dL/dy)_i. Placed around a
    module's inputs and outputs, its backward is where the module's backward hooks see (and
    may replace) the gradients, as PyTorch's BackwardHookFunction."""

    @staticmethod
    def forward(ctx, *xs, on_grad):
        ctx.on_grad = on_grad
        outs = tuple(x.view() for x in xs)        # views: no copy, in-place changes shared
        return outs if len(outs) > 1 else outs[0]

    @staticmethod
    def backward(ctx, *grads):
        return tuple(ctx.on_grad(tuple(grads)))


class _ModuleBackwardHooks:
    """One module call's backward hooks: grad_output is captured by the identity on the
    outputs (pre-hooks run there) and handed to the full hooks by the one on the inputs."""

    def __init__(self, module: "Module", args: tuple) -> None:
        self.module = module
        self.tensor_positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.wrapped = [i for i in self.tensor_positions if args[i].requires_grad]
        self.grad_output = None

    def wrap_inputs(self, args: tuple) -> tuple:
        if not self.wrapped:
            return args
        outs = _BackwardHookIdentity.apply(*[args[i] for i in self.wrapped],
                                           on_grad=self._input_grads)
        outs = outs if isinstance(outs, tuple) else (outs,)
        args = list(args)
        for i, t in zip(self.wrapped, outs):
            args[i] = t
        return tuple(args)

    def wrap_outputs(self, out):
        single = isinstance(out, Tensor)
        items = [out] if single else list(out) if isinstance(out, (tuple, list)) else None
        if items is None:
            return out
        live = [i for i, t in enumerate(items) if isinstance(t, Tensor) and t.requires_grad]
        if not live:
            return out
        new = _BackwardHookIdentity.apply(*[items[i] for i in live],
                                          on_grad=self._output_grads)
        new = new if isinstance(new, tuple) else (new,)
        for i, t in zip(live, new):
            items[i] = t
        return items[0] if single else type(out)(items)

    def _output_grads(self, grads: tuple) -> tuple:
        for hook in list(self.module._backward_pre_hooks.values()):
            new = hook(self.module, grads)
            if new is not None:
                grads = tuple(new) if isinstance(new, (tuple, list)) else (new,)
        self.grad_output = grads
        if not self.wrapped:       # no input needs a gradient: the hooks run now (PyTorch)
            self._run_full_hooks((None,) * len(self.tensor_positions))
        return grads

    def _input_grads(self, grads: tuple) -> tuple:
        by_position = dict(zip(self.wrapped, grads))
        grad_input = tuple(by_position.get(i) for i in self.tensor_positions)
        grad_input = self._run_full_hooks(grad_input)
        return tuple(grad_input[self.tensor_positions.index(i)] for i in self.wrapped)

    def _run_full_hooks(self, grad_input: tuple) -> tuple:
        for hook in list(self.module._backward_hooks.values()):
            new = hook(self.module, grad_input, self.grad_output)
            if new is not None:
                new = tuple(new) if isinstance(new, (tuple, list)) else (new,)
                if len(new) != len(grad_input):
                    raise RuntimeError(
                        f"{type(self.module).__name__} backward hook returned {len(new)} "
                        f"gradient(s) for {len(grad_input)} Tensor input(s)")
                grad_input = new
        return grad_input


class Module:
    """Base class of layers and models: subclass, build children in `__init__`, write
    `forward`, call the module like a function."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_pre_hooks", OrderedDict())

    # ------------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}: forward() is not implemented")

    def __call__(self, *args, **kwargs):
        d = self.__dict__
        backward_hooks = (d.get("_backward_hooks") or d.get("_backward_pre_hooks")) and \
            autograd.is_grad_enabled()
        if not (d.get("_forward_pre_hooks") or d.get("_forward_hooks") or backward_hooks):
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks.values()):
            new = hook(self, args)
            if new is not None:
                args = new if isinstance(new, tuple) else (new,)
        if backward_hooks:
            hooks = _ModuleBackwardHooks(self, args)
            args = hooks.wrap_inputs(args)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            new = hook(self, args, out)
            if new is not None:
                out = new
        if backward_hooks:
            out = hooks.wrap_outputs(out)
        return out

    def register_forward_pre_hook(self, hook: Callable) -> "_HookHandle":
        """hook(module, args) runs before forward; a non-None result replaces args."""
        return _HookHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook: Callable) -> "_HookHandle":
        """hook(module, args, output) runs after forward (e.g. to grab features); a non-None
        result replaces the output. `handle.remove()` unregisters it."""
        return _HookHandle(self._forward_hooks, hook)

    def register_full_backward_hook(self, hook: Callable) -> "_HookHandle":
        """hook(module, grad_input, grad_output) runs once the gradients with respect to the
        module's Tensor inputs are computed (grad_input: one entry per Tensor positional
        argument, None where it does not require grad; grad_output: one per output Tensor
        that requires grad). A non-None result replaces grad_input."""
        return _HookHandle(self._backward_hooks, hook)

    def register_full_backward_pre_hook(self, hook: Callable) -> "_HookHandle":
        """hook(module, grad_output) runs when the gradients with respect to the module's
        outputs are computed, before they flow into it; a non-None result replaces them."""
        return _HookHandle(self._backward_pre_hooks, hook)

    # ------------------------------------------------------------------ registration
    def _check_init(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call "
                                 f"(in {type(self).__name__}.__init__, call super().__init__() "
                                 "first)")

    @staticmethod
    def _check_name(name: str, kind: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{kind} name must be a non-empty string without '.', got {name!r}")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        self._check_init("parameters")
        self._check_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, got "
                            f"{type(param).__name__} (wrap it: nn.Parameter(t))")
        self._discard(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A Tensor that is part of the state (state_dict, .to()) but is not trained."""
        self._check_init("buffers")
        self._check_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: '{name}' must be a Tensor or None, got "
                            f"{type(tensor).__name__}")
        self._discard(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        self._check_init("submodules")
        self._check_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module or None, got "
                            f"{type(module).__name__}")
        self._discard(name)
        self._modules[name] = module

    register_module = add_module

    def _discard(self, name: str) -> None:
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self._non_persistent.discard(name)
        self.__dict__.pop(name, None)

    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            self._check_init("parameters")
            self.register_parameter(name, value)
        elif "_parameters" in d and name in d["_parameters"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter '{name}' "
                                f"of {type(self).__name__} (a Parameter or None is expected)")
            self._parameters[name] = None
        elif isinstance(value, Module):
            self._check_init("submodules")
            self.add_module(name, value)
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module "
                                f"'{name}' (a Module or None is expected)")
            self._modules[name] = None
        elif "_buffers" in d and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer '{name}' "
                                "(a Tensor or None is expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        # only called when normal lookup fails: look in the three registries
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            reg = d.get(key)
            if reg is not None and name in reg:
                return reg[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for key in ("_parameters", "_buffers", "_modules"):
            reg = self.__dict__[key]
            if name in reg:
                del reg[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name,
                                       remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, key: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if recurse else [(prefix, self)]
        for mod_prefix, m in mods:
            for name, v in m.__dict__[key].items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield mod_prefix + ("." if mod_prefix else "") + name, v

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs; a parameter shared by two modules appears once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> "Module":
        m = self
        for part in target.split(".") if target else []:
            if part not in m._modules or m._modules[part] is None:
                raise AttributeError(f"get_submodule: {type(m).__name__} has no submodule "
                                     f"'{part}' (looking up '{target}')")
            m = m._modules[part]
        return m

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active, batch-norm uses batch statistics) for the tree."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                g = p.grad
                if g._ctx is not None or g.requires_grad:
                    g = g.detach()
                    p.grad = g
                g.array[...] = 0

    # ------------------------------------------------------------------ functions on the tree
    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call fn on every submodule (children first) and then on self, e.g. for init."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _apply_arrays(self, fn: Callable) -> "Module":
        """Replace the array of every parameter, gradient and buffer by fn(array), in place,
        so the Parameter objects an optimizer holds stay the same objects."""
        seen = set()
        for m in self.modules():
            for t in list(m._parameters.values()) + list(m._buffers.values()):
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                t.array = fn(t.array)
                if t.grad is not None:
                    t.grad = Tensor._make(fn(t.grad.array))
        return self

    def to(self, *args, dtype=None, device=None) -> "Module":
        """`to(device)`, `to(dtype)` or both. Dtype changes apply to floating tensors only
        (an integer counter stays an integer), as in PyTorch."""
        for a in args:
            if isinstance(a, (str, Device)):
                device = a
            elif isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            else:
                dtype = a
        if dtype is not None:
            dtype = np.dtype(dtype)
            if not is_float_dtype(dtype):
                raise TypeError(f"Module.to: only floating dtypes are allowed, got {dtype}")
        dev = Device(device) if device is not None else None

        def convert(a):
            t = Tensor._make(a)
            with autograd.no_grad():
                if dev is not None:
                    t = t.to(dev)
                if dtype is not None and is_float_dtype(t.dtype):
                    t = t.to(dtype)
            return t.array

        return self._apply_arrays(convert)

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Module":
        return self.to(f"cuda:{index}")

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    # ------------------------------------------------------------------ state dicts
    def state_dict(self, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """name -> Tensor for every parameter and persistent buffer. The tensors are
        detached but share memory with the module (copy them to snapshot)."""
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def _state_targets(self) -> "OrderedDict[str, Tensor]":
        return self.state_dict(keep_vars=True)

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values into parameters and buffers (in place, keeping the objects).

        Raises a RuntimeError naming every missing key (strict), unexpected key (strict) and
        key whose shape differs (always). Returns (missing_keys, unexpected_keys).
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict: expected a dict of name -> tensor, got "
                            f"{type(state_dict).__name__}")
        targets = self._state_targets()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        mismatched = []
        for k, t in targets.items():
            if k in state_dict:
                shape = tuple(np.shape(_host(state_dict[k])))
                if shape != tuple(t.shape):
                    mismatched.append(f"'{k}': checkpoint has shape {shape}, the model "
                                      f"{tuple(t.shape)}")
        errors = []
        if strict and missing:
            errors.append("missing keys: " + ", ".join(f"'{k}'" for k in missing))
        if strict and unexpected:
            errors.append("unexpected keys: " + ", ".join(f"'{k}'" for k in unexpected))
        if mismatched:
            errors.append("size mismatch for " + "; ".join(mismatched))
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
                               + "\n  ".join(errors))
        # Convert every value first, then copy: a value rejected at the last key must not
        # leave the first keys overwritten.
        sources = []
        for k, t in targets.items():
            if k not in state_dict:
                continue
            src = _host(state_dict[k])
            if type(src) is not type(t.array):
                # a checkpoint read on the host, loaded into a GPU model (or back)
                src = src.get() if hasattr(src, "get") and not isinstance(src, np.ndarray) \
                    else src
                src = t.xp.asarray(src)
            if src.dtype.kind not in "biuf" and not is_float_dtype(src.dtype):
                raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:"
                                   f"\n  '{k}': expected numbers, got an array of dtype "
                                   f"{src.dtype}")
            sources.append((t, src))
        for t, src in sources:
            t.xp.copyto(t.array, src, casting="unsafe")
            t._version += 1
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's line in repr()."""
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, m in self._modules.items():
            text = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {text}")
        head = type(self).__name__ + "("
        if not lines:
            return head + ")"
        if len(lines) == 1 and not self._modules:
            return head + lines[0] + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


# ---------------------------------------------------------------------- containers
class Sequential(Module):
    """Modules applied in order: Sequential(a, b, c)(x) == c(b(a(x))).
    Also Sequential(OrderedDict(name=module, ...)) for named children."""

    def __init__(self, *args) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], (dict, OrderedDict)):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        if isinstance(idx, str):
            return self._modules[idx]
        if not -len(items) <= idx < len(items):
            raise IndexError(f"Sequential: index {idx} is out of range for {len(items)} "
                             "modules")
        return items[idx][1]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[idx]
        self.add_module(key, module)

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain list would hide them)."""

    def __init__(self, modules=None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _key(self, idx: int) -> str:
        n = len(self._modules)
        if not -n <= idx < n:
            raise IndexError(f"ModuleList: index {idx} is out of range for {n} modules")
        return str(idx % n)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[self._key(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(self._key(idx), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList is a container; iterate over it in forward()")


class ModuleDict(Module):
    """A dict of modules whose parameters are registered."""

    def __init__(self, modules=None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict: no module named '{key}' (have {list(self._modules)})")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key: str) -> Module:
        m = self[key]
        del self._modules[key]
        return m

    def update(self, modules) -> None:
        items = modules.items() if hasattr(modules, "items") else modules
        for k, m in items:
            self.add_module(k, m)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict is a container; index it in forward()")
