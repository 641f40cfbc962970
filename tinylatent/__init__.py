"""tinylatent: a small, readable reverse-mode autodiff library on NumPy / CuPy, and the
unsupervised deep-learning models of the course notes built on it.

    import tinylatent as tl
    x = tl.randn(3, 4, requires_grad=True)
    (x.exp() * x).sum().backward()      # x.grad == exp(x) * (1 + x)

Read in this order: tensor.py (the Tensor), autograd.py (the engine), ops/ (every op with
its derivative), then nn/, optim.py and models/.
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import autograd, backend, ops, random
from .autograd import enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .backends.malloc import retain_freed_memory as _retain_freed_memory
from .backend import Device, device
from .gradcheck import gradcheck, gradgradcheck
from .ops import *  # noqa: F401,F403  (every op is also tl.<name>)
# tl.linalg is torch.linalg's namespace (tinylatent/linalg.py), not the ops.linalg module the
# star import above bound to that name: importing the submodule rebinds it
linalg = __import__("importlib").import_module(f"{__name__}.linalg")
from .random import (Generator, bernoulli, get_rng_state, manual_seed, multinomial, normal, rand,
                     rand_like, randint, randn, randn_like, randperm, set_rng_state, uniform)
from .tensor import (BoolTensor, ByteTensor, DoubleTensor, FloatTensor, HalfTensor, IntTensor,
                     LongTensor)
from .tensor import (Tensor, arange, as_tensor, bool_, empty, eye, float16, float32, float64,
                     from_dlpack, from_numpy, full, full_like, get_default_dtype, int32, int64,
                     is_floating_point, linspace, ones, ones_like, set_default_dtype, tensor, uint8,
                     zeros, zeros_like)

# glibc keeps freed large blocks for the next step instead of unmapping them, so a step's
# temporaries are not faulted in afresh every step (tinylatent/backends/malloc.py);
# TINYLATENT_MALLOC=system keeps glibc's defaults
_retain_freed_memory()

# PyTorch's dtype names (tl.float is float32 as torch.float is; they shadow the builtins only
# as attributes of this module)
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001
bool = bool_  # noqa: A001

# Submodules load on first use (tl.nn, tl.optim, ...): `import tinylatent` stays fast, and
# Numba/CuPy are only imported by code that needs them.
_LAZY_MODULES = {"nn", "optim", "data", "distributions", "losses", "models", "cuda",
                 "serialization", "utils", "kernels", "eval", "train", "distributed",
                 "accelerator", "backends",
                 "vi", "hessian"}  # issue 22: variational inference, Hessian spectra
_LAZY_ATTRS = {"save": "serialization", "load": "serialization"}


def __getattr__(name: str):
    import importlib
    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "bfloat16":     # ml_dtypes' dtype, imported only when asked for
        from .tensor import bfloat16_dtype
        return bfloat16_dtype()
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY_ATTRS[name]}"), name)
    raise AttributeError(f"module 'tinylatent' has no attribute '{name}'")


def __dir__():
    """The lazy submodules too, so dir(tl) / help(tl) list tl.vi, tl.hessian, tl.nn ..."""
    return sorted(set(globals()) | _LAZY_MODULES | set(_LAZY_ATTRS) | {"bfloat16"})
