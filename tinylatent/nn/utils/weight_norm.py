"""The hook-based weight_norm and spectral_norm (PyTorch's torch.nn.utils.weight_norm /
spectral_norm, which older code and most GAN repositories call): the weight is replaced by
Parameters `<name>_g`, `<name>_v` (weight norm) or `<name>_orig` plus buffers `<name>_u`,
`<name>_v` (spectral norm), and a forward pre-hook recomputes `module.<name>` before every
forward. The same state-dict names as PyTorch. parametrizations.py has the newer form."""
from __future__ import annotations

from ... import autograd, ops, random
from ..module import Module, Parameter
from .parametrizations import _norm_except_dim

__all__ = ["weight_norm", "remove_weight_norm", "spectral_norm", "remove_spectral_norm"]


class _WeightNormHook:
    """w = g * v / ||v|| (Salimans & Kingma 2016, Eq. 2)."""

    def __init__(self, name: str, dim: int | None) -> None:
        self.name, self.dim = name, dim

    def compute_weight(self, module: Module):
        v, g = getattr(module, self.name + "_v"), getattr(module, self.name + "_g")
        return v * (g / _norm_except_dim(v, self.dim))

    def __call__(self, module: Module, args) -> None:
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """Split `module.<name>` into a length `<name>_g` (the norm over every axis but `dim`;
    over all axes when dim is None) and a direction `<name>_v`, both trained."""
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, _WeightNormHook) and hook.name == name:
            raise RuntimeError(f"weight_norm: '{name}' of {type(module).__name__} already "
                               "has weight norm")
    weight = module._parameters.get(name)
    if weight is None:
        raise ValueError(f"weight_norm: {type(module).__name__} has no parameter '{name}'")
    hook = _WeightNormHook(name, None if dim == -1 else dim)
    del module._parameters[name]
    module.register_parameter(name + "_g", Parameter(
        _norm_except_dim(weight.detach(), hook.dim)))
    module.register_parameter(name + "_v", Parameter(weight.detach()))
    setattr(module, name, hook.compute_weight(module))
    module.register_forward_pre_hook(hook)
    return module


def _remove(module: Module, name: str, kind: type, what: str):
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, kind) and hook.name == name:
            del module._forward_pre_hooks[key]
            return hook
    raise ValueError(f"remove_{what}: {what} of '{name}' not found in "
                     f"{type(module).__name__}")


def remove_weight_norm(module: Module, name: str = "weight") -> Module:
    """Fold g and v back into one Parameter `<name>`."""
    hook = _remove(module, name, _WeightNormHook, "weight_norm")
    with autograd.no_grad():
        weight = hook.compute_weight(module)
    module.__dict__.pop(name, None)
    del module._parameters[name + "_g"], module._parameters[name + "_v"]
    module.register_parameter(name, Parameter(weight.detach()))
    return module


class _SpectralNormHook:
    """W / sigma(W) (Miyato et al. 2018, Algorithm 1); in training mode each forward first
    runs n_power_iterations of v <- normalize(W^T u), u <- normalize(W v) (this order, as
    PyTorch's hook form does), then sigma = u^T W v with u, v held fixed."""

    def __init__(self, name: str, n_power_iterations: int, dim: int, eps: float) -> None:
        self.name, self.n_power_iterations, self.dim, self.eps = \
            name, n_power_iterations, dim, eps

    def matrix(self, weight):
        if self.dim != 0:
            weight = weight.permute(self.dim, *[d for d in range(weight.ndim) if d != self.dim])
        return weight.reshape(weight.shape[0], -1)                          # (h, w)

    def compute_weight(self, module: Module, do_power_iteration: bool):
        weight = getattr(module, self.name + "_orig")
        u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        weight_mat = self.matrix(weight)
        if do_power_iteration:
            with autograd.no_grad():
                w = weight_mat.detach()
                for _ in range(self.n_power_iterations):
                    v.array[...] = ops.normalize(w.T @ u, dim=0, eps=self.eps).array
                    u.array[...] = ops.normalize(w @ v, dim=0, eps=self.eps).array
                u._version += 1
                v._version += 1
            u, v = u.clone(), v.clone()
        sigma = (u * (weight_mat @ v)).sum()
        return weight / sigma

    def __call__(self, module: Module, args) -> None:
        setattr(module, self.name, self.compute_weight(module, module.training))


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12, dim: int | None = None) -> Module:
    """Divide `module.<name>` by its largest singular value before every forward (Miyato
    et al. 2018): the Lipschitz constraint of spectrally normalized GAN discriminators."""
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, _SpectralNormHook) and hook.name == name:
            raise RuntimeError(f"spectral_norm: '{name}' of {type(module).__name__} already "
                               "has spectral norm")
    weight = module._parameters.get(name)
    if weight is None:
        raise ValueError(f"spectral_norm: {type(module).__name__} has no parameter '{name}'")
    if n_power_iterations <= 0:
        raise ValueError(f"spectral_norm: n_power_iterations must be positive, got "
                         f"{n_power_iterations}")
    if dim is None:
        dim = 1 if type(module).__name__.startswith("ConvTranspose") else 0
    hook = _SpectralNormHook(name, n_power_iterations, dim % weight.ndim, eps)
    h, w = hook.matrix(weight.detach()).shape
    kw = dict(dtype=weight.dtype, device=weight.device)
    del module._parameters[name]
    module.register_parameter(name + "_orig", weight)
    setattr(module, name, weight.detach())       # as PyTorch: the first forward normalizes
    module.register_buffer(name + "_u", ops.normalize(random.randn(h, **kw), dim=0, eps=eps))
    module.register_buffer(name + "_v", ops.normalize(random.randn(w, **kw), dim=0, eps=eps))
    module.register_forward_pre_hook(hook)
    return module


def remove_spectral_norm(module: Module, name: str = "weight") -> Module:
    """Make `<name>` a plain Parameter again, holding the normalized weight."""
    hook = _remove(module, name, _SpectralNormHook, "spectral_norm")
    with autograd.no_grad():
        weight = hook.compute_weight(module, do_power_iteration=False)
    module.__dict__.pop(name, None)
    del module._parameters[name + "_orig"]
    del module._buffers[name + "_u"], module._buffers[name + "_v"]
    module.register_parameter(name, Parameter(weight.detach()))
    return module
