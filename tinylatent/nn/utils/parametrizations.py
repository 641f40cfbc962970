"""Weight normalization and spectral normalization as parametrizations (PyTorch's
torch.nn.utils.parametrizations): `module.weight` is recomputed from the originals on every
access, and the state dict holds "parametrizations.weight.original0/1" (weight_norm) or
"parametrizations.weight.original" with the power-iteration vectors "..._u", "..._v"
(spectral_norm), PyTorch's names, so checkpoints exchange values with it."""
from __future__ import annotations

from ... import autograd, ops, random
from ...tensor import Tensor
from ..module import Module
from .parametrize import register_parametrization

__all__ = ["weight_norm", "spectral_norm"]


def _norm_except_dim(v: Tensor, dim: int | None) -> Tensor:
    """||v||_2 over every axis but `dim` (all axes when dim is None), kept for broadcasting."""
    if dim is None:
        return (v * v).sum().sqrt()
    dim = dim % v.ndim
    axes = tuple(a for a in range(v.ndim) if a != dim)
    return (v * v).sum(axis=axes, keepdims=True).sqrt() if axes else v.abs()


class _WeightNorm(Module):
    """w = g * v / ||v|| (Salimans & Kingma 2016, Eq. 2), the norm over all axes but dim."""

    def __init__(self, dim: int | None = 0) -> None:
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g: Tensor, weight_v: Tensor) -> Tensor:
        dim = None if self.dim == -1 else self.dim
        return weight_v * (weight_g / _norm_except_dim(weight_v, dim))

    def right_inverse(self, weight: Tensor):
        return _norm_except_dim(weight, None if self.dim == -1 else self.dim), weight


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """Reparametrize `module.<name>` as g * v / ||v||: the direction and the length of each
    output unit's weight vector are learned separately (Salimans & Kingma 2016)."""
    return register_parametrization(module, name, _WeightNorm(dim), unsafe=True)


class _SpectralNorm(Module):
    """W / sigma(W), sigma the largest singular value, estimated by power iteration with
    u, v kept from step to step (Miyato et al. 2018, Algorithm 1): in training mode each
    access runs n_power_iterations of
        u <- normalize(W v),   v <- normalize(W^T u),
    then sigma = u^T W v with u, v held fixed (no gradient through the iteration)."""

    def __init__(self, weight: Tensor, n_power_iterations: int = 1, dim: int = 0,
                 eps: float = 1e-12) -> None:
        super().__init__()
        ndim = weight.ndim
        if n_power_iterations <= 0:
            raise ValueError(f"spectral_norm: n_power_iterations must be positive, got "
                             f"{n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps, self.n_power_iterations = eps, n_power_iterations
        if ndim > 1:
            w = self._reshape_weight_to_matrix(weight.detach())            # (h, w)
            h, wd = w.shape
            kw = dict(dtype=weight.dtype, device=weight.device)
            self.register_buffer("_u", ops.normalize(random.randn(h, **kw), dim=0, eps=eps))
            self.register_buffer("_v", ops.normalize(random.randn(wd, **kw), dim=0, eps=eps))
            self._power_method(w, 15)       # start close to the top singular vectors

    def _reshape_weight_to_matrix(self, weight: Tensor) -> Tensor:
        if self.dim != 0:            # the output axis first
            weight = weight.permute(self.dim, *[d for d in range(weight.ndim) if d != self.dim])
        return weight.reshape(weight.shape[0], -1)                          # (h, w)

    def _power_method(self, weight_mat: Tensor, n_power_iterations: int) -> None:
        with autograd.no_grad():
            for _ in range(n_power_iterations):
                u = ops.normalize(weight_mat @ self._v, dim=0, eps=self.eps)
                self._u.array[...] = u.array
                v = ops.normalize(weight_mat.T @ self._u, dim=0, eps=self.eps)
                self._v.array[...] = v.array
            self._u._version += 1
            self._v._version += 1

    def forward(self, weight: Tensor) -> Tensor:
        if weight.ndim == 1:          # a vector's spectral norm is its length
            return ops.normalize(weight, dim=0, eps=self.eps)
        weight_mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            self._power_method(weight_mat.detach(), self.n_power_iterations)
        u, v = self._u.clone(), self._v.clone()     # fixed: sigma's gradient is u v^T
        sigma = (u * (weight_mat @ v)).sum()
        return weight / sigma

    def right_inverse(self, value: Tensor) -> Tensor:
        return value


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12, dim: int | None = None) -> Module:
    """Reparametrize `module.<name>` as W / sigma(W) (Miyato et al. 2018), the Lipschitz
    constraint of spectrally normalized GAN discriminators. dim defaults to 0, or 1 for the
    transposed convolutions (their output axis)."""
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"spectral_norm: {type(module).__name__} has no tensor named "
                         f"'{name}'")
    if dim is None:
        dim = 1 if type(module).__name__.startswith("ConvTranspose") else 0
    return register_parametrization(module, name,
                                    _SpectralNorm(weight, n_power_iterations, dim, eps))
