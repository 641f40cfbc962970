"""Parametrizations (PyTorch's torch.nn.utils.parametrize): a tensor of a module computed
from other tensors on every access, `module.weight = f(module.parametrizations.weight.
original)`. Weight normalization and spectral normalization (parametrizations.py) are
written on it; so can a user's own (a symmetric matrix, an orthogonal one, ...).

    register_parametrization(layer, "weight", Symmetric())
    layer.weight                      # Symmetric()(layer.parametrizations.weight.original)

How: the module's class is swapped for a subclass (created once per module, as PyTorch
does) with a property named after the tensor, so every `module.weight` runs the chain and
gradients reach the originals. The originals are Parameters of a ParametrizationList held
in `module.parametrizations`, which gives the state-dict names PyTorch uses
("parametrizations.weight.original", or original0, original1, ... when the first
parametrization's right_inverse returns several tensors).
"""
from __future__ import annotations

from ...tensor import Tensor
from ..module import Module, ModuleDict, ModuleList, Parameter

__all__ = ["register_parametrization", "remove_parametrizations", "is_parametrized",
           "ParametrizationList"]


class ParametrizationList(ModuleList):
    """The chain of parametrizations of one tensor and its original(s)."""

    def __init__(self, modules, original: Tensor, unsafe: bool = False) -> None:
        super().__init__(modules)
        self.unsafe = unsafe
        first = modules[0]
        # the originals are what makes the current value come out: right_inverse(value)
        new = first.right_inverse(original) if hasattr(first, "right_inverse") \
            else original
        requires_grad = original.requires_grad
        if isinstance(new, Tensor):
            self.is_tensor, self.ntensors = True, 1
            if isinstance(original, Parameter):
                self.original = Parameter(new.detach(), requires_grad)
            else:
                self.register_buffer("original", new.detach())
        else:
            self.is_tensor, self.ntensors = False, len(new)
            for i, t in enumerate(new):
                setattr(self, f"original{i}", Parameter(t.detach(), requires_grad))
        if not unsafe:
            value = self()
            if tuple(value.shape) != tuple(original.shape) or value.dtype != original.dtype:
                raise ValueError(
                    f"register_parametrization: the parametrization changes the tensor from "
                    f"{tuple(original.shape)} {original.dtype} to {tuple(value.shape)} "
                    f"{value.dtype}; pass unsafe=True if that is intended")

    def right_inverse(self, value: Tensor) -> None:
        """Set the originals so that the chain returns `value` (module.weight = value)."""
        from ...autograd import no_grad
        with no_grad():
            for module in reversed(list(self)[1:]):
                value = module.right_inverse(value) if hasattr(module, "right_inverse") \
                    else value
            first = self[0]
            new = first.right_inverse(value) if hasattr(first, "right_inverse") else value
            olds = [self.original] if self.is_tensor else \
                [getattr(self, f"original{i}") for i in range(self.ntensors)]
            news = [new] if self.is_tensor else list(new)
            for old, n in zip(olds, news):
                old.array[...] = n.array
                old._version += 1

    def forward(self) -> Tensor:
        x = self[0](self.original) if self.is_tensor else \
            self[0](*[getattr(self, f"original{i}") for i in range(self.ntensors)])
        for module in list(self)[1:]:
            x = module(x)
        return x


def _inject_property(module: Module, name: str) -> None:
    def getter(self):
        return self.parametrizations[name]()

    def setter(self, value):
        self.parametrizations[name].right_inverse(value)
    setattr(type(module), name, property(getter, setter))


def is_parametrized(module: Module, tensor_name: str | None = None) -> bool:
    params = module.__dict__.get("_modules", {}).get("parametrizations")
    if params is None or not isinstance(params, ModuleDict):
        return False
    return tensor_name is None or tensor_name in params


def register_parametrization(module: Module, tensor_name: str, parametrization: Module, *,
                             unsafe: bool = False) -> Module:
    """Make `module.<tensor_name>` be `parametrization(original)`; registering a second one
    on the same tensor chains it after the first. Returns the module."""
    if not isinstance(parametrization, Module):
        raise TypeError(f"register_parametrization: the parametrization must be a Module, "
                        f"got {type(parametrization).__name__}")
    if is_parametrized(module, tensor_name):
        plist = module.parametrizations[tensor_name]
        plist.append(parametrization)
        if not unsafe:
            plist()
        return module
    if tensor_name in module._parameters:
        original = module._parameters[tensor_name]
    elif tensor_name in module._buffers:
        original = module._buffers[tensor_name]
    else:
        raise ValueError(f"register_parametrization: {type(module).__name__} has no "
                         f"parameter or buffer named '{tensor_name}'")
    if original is None:
        raise ValueError(f"register_parametrization: '{tensor_name}' of "
                         f"{type(module).__name__} is None")
    plist = ParametrizationList([parametrization], original, unsafe=unsafe)
    delattr(module, tensor_name)
    if not is_parametrized(module):
        # a class of its own, so the property does not reach other instances
        cls = type(module)
        module.__class__ = type(f"Parametrized{cls.__name__}", (cls,), {})
        module.parametrizations = ModuleDict()
    module.parametrizations[tensor_name] = plist
    _inject_property(module, tensor_name)
    return module


def remove_parametrizations(module: Module, tensor_name: str,
                            leave_parametrized: bool = True) -> Module:
    """Undo register_parametrization: `tensor_name` becomes a plain Parameter again, holding
    the parametrized value (leave_parametrized) or the original."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"remove_parametrizations: {type(module).__name__} has no "
                         f"parametrization on '{tensor_name}'")
    plist = module.parametrizations[tensor_name]
    if leave_parametrized:
        from ...autograd import no_grad
        with no_grad():
            value = plist()
    elif plist.is_tensor:
        value = plist.original
    else:
        raise ValueError("remove_parametrizations: leave_parametrized=False needs a single "
                         "original tensor")
    del module.parametrizations[tensor_name]
    delattr(type(module), tensor_name)
    module.register_parameter(tensor_name, Parameter(value.detach()))
    if not len(module.parametrizations):
        del module._modules["parametrizations"]
        module.__class__ = type(module).__mro__[1]
    return module
