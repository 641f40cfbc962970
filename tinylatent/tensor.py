"""Tensor: one array (numpy or cupy) plus what autograd needs.

Dtype rules (stated once, applied by every op):
  * Python floats and float lists become float32 (the default); integers become int64,
    booleans bool. A numpy/cupy array keeps its dtype.
  * float32 with float64 gives float64 (NumPy's rule). A Python scalar never widens a tensor:
    `x32 * 2.5` stays float32.
  * An integer or bool tensor combined with a float tensor takes the float tensor's dtype;
    combined with a Python float, or divided (true division), it gives the default dtype.
  * Only floating tensors can require grad.
"""
from __future__ import annotations

import numpy as np

from . import autograd
from .backend import CPU, Device, array_module, device_of_array

__all__ = ["Tensor", "tensor", "as_tensor", "from_numpy", "from_dlpack", "zeros", "ones", "full",
           "empty", "zeros_like", "ones_like", "full_like", "arange", "linspace", "eye",
           "float32", "float64", "float16", "int32", "int64", "bool_", "get_default_dtype",
           "set_default_dtype", "is_floating_point"]

float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

_default_dtype = [float32]


def is_float_dtype(dtype) -> bool:
    """float16/32/64, and bfloat16: ml_dtypes' NumPy dtype (CuPy's bfloat16 too), which NumPy
    reports as kind 'V', so a plain `dtype.kind == "f"` would take it for a non-number."""
    return dtype.kind == "f" or dtype.name == "bfloat16"


def is_floating_point(input) -> bool:
    """True when `input` (a Tensor) holds float16/32/64 or bfloat16 (torch.is_floating_point)."""
    return is_float_dtype(input.dtype)


def bfloat16_dtype() -> np.dtype:
    """tl.bfloat16: ml_dtypes' bfloat16 (8 exponent bits as float32, 7 mantissa bits), the
    dtype CuPy's bfloat16 arrays use. NumPy has none of its own, hence the optional package."""
    try:
        import ml_dtypes
    except ImportError:
        raise AttributeError("tinylatent.bfloat16 needs the ml_dtypes package (pip install "
                             "ml_dtypes; NumPy has no bfloat16 of its own)") from None
    return np.dtype(ml_dtypes.bfloat16)


def get_default_dtype():
    return _default_dtype[0]


def set_default_dtype(dtype) -> None:
    dtype = np.dtype(dtype)
    if not is_float_dtype(dtype):
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype}")
    _default_dtype[0] = dtype


def _to_array(data, dtype=None, device=None):
    """Build an array on `device` from Python data, numpy or cupy arrays, or a Tensor."""
    if isinstance(data, Tensor):
        data = data.array
    dev = Device(device) if device is not None else None
    if dev is not None and dev.type == "cuda":
        xp = dev.xp
        with xp.cuda.Device(dev.index):
            arr = xp.asarray(data, dtype=dtype)
    elif hasattr(data, "__cuda_array_interface__") and dev is None:
        arr = array_module(data).asarray(data, dtype=dtype)
    else:
        if hasattr(data, "__cuda_array_interface__"):
            raise RuntimeError(f"tensor: data lives on {device_of_array(data)} but device="
                               f"'{dev}' was asked for; use .to('{dev}') to copy explicitly")
        arr = np.asarray(data, dtype=dtype)
    if dtype is None and not isinstance(data, (np.ndarray, np.generic)) \
            and not hasattr(data, "__cuda_array_interface__") and arr.dtype == float64:
        arr = arr.astype(_default_dtype[0])
    return arr


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Tensor(data, dtype=None, device=None, requires_grad=False)
    """

    # `array` is the raw numpy/cupy array (what every op computes on); `data` is PyTorch's
    # detached Tensor view of it (see below). _version counts in-place changes; _base is the
    # tensor whose memory this one views (None if it owns its array): views share their
    # base's count (see _check_inplace).
    __slots__ = ("array", "requires_grad", "grad", "_ctx", "_version", "_base", "__weakref__")
    __array_priority__ = 1000  # numpy defers `ndarray + Tensor` to Tensor.__radd__

    def __init__(self, data, dtype=None, device=None, requires_grad: bool = False):
        self.array = _to_array(data, dtype, device)
        self.grad = None
        self._ctx = None
        self._version = 0
        self._base = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _make(array, requires_grad: bool = False, ctx=None) -> "Tensor":
        """Wrap an array without any checks (the fast path every op uses)."""
        t = Tensor.__new__(Tensor)
        t.array = array
        t.requires_grad = requires_grad
        t.grad = None
        t._ctx = ctx
        t._version = 0
        t._base = None
        return t

    # ------------------------------------------------------------------ .data (PyTorch's)
    @property
    def data(self) -> "Tensor":
        """A Tensor sharing this one's memory, cut from the graph (PyTorch's `.data`):
        `p.data.mul_(m).add_(q.data, alpha=1 - m)` updates p in place without autograd
        seeing it. As in PyTorch its in-place changes are not counted on this tensor's version
        (unlike .detach()'s), so they go unnoticed by a graph that saved it: the caller's
        responsibility. The raw numpy/cupy array is `.array`."""
        return Tensor._make(self.array)

    @data.setter
    def data(self, value) -> None:
        """`p.data = t` rebinds p to t's memory (shape and dtype may change, as in PyTorch);
        the graph is not told."""
        self.array = value.array if isinstance(value, Tensor) else _to_array(value)

    # ------------------------------------------------------------------ basic properties
    @property
    def shape(self) -> tuple:
        return self.array.shape

    @property
    def ndim(self) -> int:
        return self.array.ndim

    def size(self, dim: int | None = None):
        """The shape (a tuple), or the length of one dim: PyTorch's size(). The number of
        elements is numel()."""
        shape = self.array.shape
        if dim is None:
            return shape
        if not -len(shape) <= dim < max(len(shape), 1):
            raise IndexError(f"size: dim {dim} is out of range for a tensor of "
                             f"{len(shape)} dimensions")
        return shape[dim]

    def numel(self) -> int:
        return self.array.size

    def dim(self) -> int:
        return self.array.ndim

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def device(self) -> Device:
        return CPU if type(self.array) is np.ndarray else device_of_array(self.array)

    @property
    def xp(self):
        return np if type(self.array) is np.ndarray else array_module(self.array)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def T(self) -> "Tensor":
        return ops.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        body = np.array2string(self.numpy_host(), separator=", ", precision=4,
                               prefix="tensor(")
        extra = []
        if self.dtype != _default_dtype[0]:
            extra.append(f"dtype={self.dtype}")
        if self.device != CPU:
            extra.append(f"device='{self.device}'")
        if self._ctx is not None:
            extra.append(f"grad_fn={self._ctx.fn.__name__}")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extra) + ")"

    # ------------------------------------------------------------------ conversion
    def numpy_host(self) -> np.ndarray:
        d = self.array
        return d if isinstance(d, np.ndarray) else d.get()

    def numpy(self, force: bool = False) -> np.ndarray:
        """The array on the host (a copy for GPU tensors; shares memory on CPU). As in
        PyTorch, a tensor that requires grad must be detached first (`x.detach().numpy()`):
        the array would be outside the graph, so changes to it would go unseen by autograd.
        force=True detaches (and copies a GPU tensor) for you."""
        if self.requires_grad and not force:
            raise RuntimeError(f"numpy: can't call numpy() on a Tensor of shape {self.shape} "
                               "that requires grad; use tensor.detach().numpy() instead")
        return self.numpy_host()

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape "
                             f"{self.shape}")
        return self.numpy_host().reshape(()).item()

    def tolist(self):
        return self.numpy_host().tolist()

    def __array__(self, dtype=None, copy=None):
        a = self.numpy_host()
        return a if dtype is None else a.astype(dtype)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError(f"bool: the truth value of a tensor with {self.numel()} elements "
                               "is ambiguous; use .any() or .all()")
        return bool(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iu" or self.numel() != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    def __dlpack__(self, *args, **kwargs):
        return self.array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()

    @property
    def __cuda_array_interface__(self):
        d = self.array
        if not hasattr(d, "__cuda_array_interface__"):
            raise AttributeError("__cuda_array_interface__: tensor is on the CPU")
        return d.__cuda_array_interface__

    # ------------------------------------------------------------------ grad bookkeeping
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and not is_float_dtype(self.dtype):
            raise RuntimeError(f"requires_grad_: only floating tensors can require grad, got "
                               f"dtype {self.dtype}")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad_(False): only leaf tensors can stop requiring "
                               "grad; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> "Tensor":
        """Same data, cut from the graph."""
        t = Tensor._make(self.array)
        t._base = autograd._version_owner(self)   # same memory; holds no graph node
        return t

    def detach_(self) -> "Tensor":
        self._ctx = None
        self.requires_grad = False
        return self

    def clone(self) -> "Tensor":
        return ops.clone(self)

    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the `.grad` of every leaf that requires grad."""
        autograd.backward(self, gradient, retain_graph, create_graph)

    def register_hook(self, hook):
        """Call `hook(grad)` with this tensor's whole gradient whenever backward() or tl.grad
        computes it; a returned Tensor replaces it (PyTorch's Tensor.register_hook). Returns
        a handle with `remove()`."""
        return autograd.register_hook(self, hook)

    def zero_grad_(self) -> None:
        self.grad = None

    # ------------------------------------------------------------------ devices and dtypes
    def to(self, *args, dtype=None, device=None, copy: bool = False) -> "Tensor":
        """`to(dtype)`, `to(device)` or `to(device, dtype)`; differentiable."""
        for a in args:
            if isinstance(a, (str, Device)):
                device = a
            else:
                dtype = a
        out = self
        if device is not None and Device(device) != self.device:
            out = ops.to_device(out, Device(device))
        if dtype is not None and np.dtype(dtype) != out.dtype:
            out = ops.cast(out, np.dtype(dtype))
        if copy and out is self:
            out = ops.clone(self)
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        return self.to(f"cuda:{index}")

    def float(self) -> "Tensor":
        return self.to(float32)

    def double(self) -> "Tensor":
        return self.to(float64)

    def bfloat16(self) -> "Tensor":
        return self.to(bfloat16_dtype())

    def is_floating_point(self) -> bool:
        """True for float16/32/64 and bfloat16 tensors (torch.Tensor.is_floating_point)."""
        return is_float_dtype(self.dtype)

    def long(self) -> "Tensor":
        return self.to(int64)

    def int(self) -> "Tensor":
        return self.to(int32)

    def bool(self) -> "Tensor":
        return self.to(bool_)

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.to(other.dtype)

    def contiguous(self) -> "Tensor":
        return self if self.array.flags.c_contiguous else ops.contiguous(self)

    def is_contiguous(self) -> bool:
        return bool(self.array.flags.c_contiguous)

    # ------------------------------------------------------------------ in-place updates
    def _check_inplace(self, name: str) -> None:
        if self.requires_grad and autograd.is_grad_enabled():
            kind = "a leaf tensor that requires grad" if self._ctx is None else \
                "a tensor that is part of a graph"
            raise RuntimeError(f"{name}: in-place change of {kind} (shape {self.shape}); "
                               "do it under tl.no_grad() or on a .detach()ed copy")
        # count it on the tensor owning the memory, so a graph that saved this tensor, its
        # base or another view of it notices the change
        autograd._root(self)._version += 1

    def _other(self, value):
        return value.array if isinstance(value, Tensor) else value

    def add_(self, other, alpha: float = 1.0) -> "Tensor":
        self._check_inplace("add_")
        o = self._other(other)
        self.array += o if alpha == 1.0 else alpha * o
        return self

    def sub_(self, other, alpha: float = 1.0) -> "Tensor":
        return self.add_(other, -alpha)

    def mul_(self, other) -> "Tensor":
        self._check_inplace("mul_")
        self.array *= self._other(other)
        return self

    def div_(self, other) -> "Tensor":
        self._check_inplace("div_")
        self.array /= self._other(other)
        return self

    def copy_(self, src) -> "Tensor":
        self._check_inplace("copy_")
        s = self._other(src)
        if hasattr(s, "shape") and type(s) is not type(self.array) and not np.isscalar(s):
            raise RuntimeError(f"copy_: source is on {device_of_array(s)}, destination on "
                               f"{self.device}; use .to() first")
        self.xp.copyto(self.array, s, casting="unsafe")
        return self

    def fill_(self, value) -> "Tensor":
        self._check_inplace("fill_")
        self.array.fill(value)
        return self

    def zero_(self) -> "Tensor":
        return self.fill_(0)

    def clamp_(self, min=None, max=None) -> "Tensor":  # noqa: A002 - PyTorch's names
        self._check_inplace("clamp_")
        self.xp.clip(self.array, min, max, out=self.array)
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0, generator=None) -> "Tensor":
        from . import random
        return self.copy_(random.normal(mean, std, self.shape, dtype=self.dtype,
                                        device=self.device, generator=generator))

    def uniform_(self, low: float = 0.0, high: float = 1.0, generator=None) -> "Tensor":
        from . import random
        return self.copy_(random.uniform(low, high, self.shape, dtype=self.dtype,
                                         device=self.device, generator=generator))

    def __setitem__(self, index, value) -> None:
        self._check_inplace("__setitem__")
        self.array[ops.indexing.normalize_index(index)] = self._other(value)

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __iadd__(self, other):
        return self.add_(other) if not self.requires_grad else ops.add(self, other)

    def __isub__(self, other):
        return self.sub_(other) if not self.requires_grad else ops.sub(self, other)

    def __imul__(self, other):
        return self.mul_(other) if not self.requires_grad else ops.mul(self, other)

    def __itruediv__(self, other):
        return self.div_(other) if not self.requires_grad else ops.div(self, other)

    # comparisons: no gradient, boolean result
    def __lt__(self, other):
        return ops.compare(self, other, "less")

    def __le__(self, other):
        return ops.compare(self, other, "less_equal")

    def __gt__(self, other):
        return ops.compare(self, other, "greater")

    def __ge__(self, other):
        return ops.compare(self, other, "greater_equal")

    def __eq__(self, other):
        return ops.compare(self, other, "equal")

    def __ne__(self, other):
        return ops.compare(self, other, "not_equal")

    def __invert__(self):
        return ops.logical_not(self)

    def __and__(self, other):
        return ops.compare(self, other, "logical_and")

    def __or__(self, other):
        return ops.compare(self, other, "logical_or")

    def __xor__(self, other):
        return ops.compare(self, other, "logical_xor")

    __hash__ = object.__hash__

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # ------------------------------------------------------------------ math methods
    # x.exp(), x.sum(axis=1), ...: each is the function of the same name in tinylatent.ops
    # (its docstring has the formula), so x.sum(1) is exactly tl.sum(x, 1).
    def abs(self):
        return ops.abs(self)

    def all(self, axis=None):
        return ops.all(self, axis)

    def amax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.amax(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def amin(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.amin(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def any(self, axis=None):
        return ops.any(self, axis)

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.argmax(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def argmin(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.argmin(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def argsort(self, axis=-1, descending=False):
        return ops.argsort(self, axis, descending)

    def chunk(self, chunks, axis=0, *, dim=None):
        return ops.chunk(self, chunks, axis, dim=dim)

    def clamp(self, min=None, max=None):
        return ops.clamp(self, min, max)

    def clip(self, min=None, max=None):
        return ops.clip(self, min, max)

    def cos(self):
        return ops.cos(self)

    def cumsum(self, axis=0, *, dim=None):
        return ops.cumsum(self, axis, dim=dim)

    def elu(self, alpha=1.0):
        return ops.elu(self, alpha)

    def erf(self):
        return ops.erf(self)

    def exp(self):
        return ops.exp(self)

    def expand(self, *shape):
        return ops.expand(self, *shape)

    def expm1(self):
        return ops.expm1(self)

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def flip(self, axis=None, *, dims=None):
        return ops.flip(self, axis, dims=dims)

    def gather(self, axis, index, *, dim=None):
        return ops.gather(self, axis, index, dim=dim)

    def index_add(self, axis, index, src):
        return ops.index_add(self, axis, index, src)

    def index_select(self, axis, index):
        return ops.index_select(self, axis, index)

    def isfinite(self):
        return ops.isfinite(self)

    def isnan(self):
        return ops.isnan(self)

    def leaky_relu(self, negative_slope=0.01):
        return ops.leaky_relu(self, negative_slope)

    def log(self):
        return ops.log(self)

    def log1p(self):
        return ops.log1p(self)

    def log_softmax(self, axis=-1, *, dim=None):
        return ops.log_softmax(self, axis, dim=dim)

    def logsigmoid(self):
        return ops.logsigmoid(self)

    def logsumexp(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.logsumexp(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def matmul(self, b):
        return ops.matmul(self, b)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.max(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def maximum(self, b):
        return ops.maximum(self, b)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.mean(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.min(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def minimum(self, b):
        return ops.minimum(self, b)

    def permute(self, *perm):
        return ops.permute(self, *perm)

    def pow(self, b):
        return ops.pow(self, b)

    def relu(self):
        return ops.relu(self)

    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    def roll(self, shifts, axis=None, *, dims=None):
        return ops.roll(self, shifts, axis, dims=dims)

    def rsqrt(self):
        return ops.rsqrt(self)

    def scatter_add(self, axis, index, src):
        return ops.scatter_add(self, axis, index, src)

    def sigmoid(self):
        return ops.sigmoid(self)

    def sign(self):
        return ops.sign(self)

    def silu(self):
        return ops.silu(self)

    def sin(self):
        return ops.sin(self)

    def softmax(self, axis=-1, *, dim=None):
        return ops.softmax(self, axis, dim=dim)

    def softplus(self, beta=1.0):
        return ops.softplus(self, beta)

    def sort(self, axis=-1, descending=False, *, dim=None):
        return ops.sort(self, axis, descending, dim=dim)

    def split(self, split_size_or_sections, axis=0, *, dim=None):
        return ops.split(self, split_size_or_sections, axis, dim=dim)

    def sqrt(self):
        return ops.sqrt(self)

    def squeeze(self, axis=None, *, dim=None):
        return ops.squeeze(self, axis, dim=dim)

    def std(self, axis=None, keepdims=False, correction=1, *, dim=None, keepdim=None,
            unbiased=None):
        return ops.std(self, axis, keepdims, correction, dim=dim, keepdim=keepdim,
                       unbiased=unbiased)

    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.sum(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def swapaxes(self, dim0=-2, dim1=-1):
        return ops.swapaxes(self, dim0, dim1)

    def take_along_axis(self, indices, axis):
        return ops.take_along_axis(self, indices, axis)

    def tanh(self):
        return ops.tanh(self)

    def topk(self, k, axis=-1, largest=True, *, dim=None):
        return ops.topk(self, k, axis, largest, dim=dim)

    def transpose(self, dim0=-2, dim1=-1):
        return ops.transpose(self, dim0, dim1)

    def tril(self, k=0, *, diagonal=None):
        return ops.tril(self, k, diagonal=diagonal)

    def triu(self, k=0, *, diagonal=None):
        return ops.triu(self, k, diagonal=diagonal)

    def unsqueeze(self, axis, *, dim=None):
        return ops.unsqueeze(self, axis, dim=dim)

    def var(self, axis=None, keepdims=False, correction=1, *, dim=None, keepdim=None,
            unbiased=None):
        return ops.var(self, axis, keepdims, correction, dim=dim, keepdim=keepdim,
                       unbiased=unbiased)

    def view(self, *shape):
        return ops.view(self, *shape)

    def gelu(self, approximate='none'):
        return ops.gelu(self, approximate)

    def square(self):
        return ops.mul(self, self)

    def broadcast_to(self, shape):
        return ops.broadcast_to(self, shape)

    def expand_as(self, other):
        return ops.expand(self, other.shape)

    def view_as(self, other):
        return ops.reshape(self, other.shape)

    def reshape_as(self, other):
        return ops.reshape(self, other.shape)

    # ------------------------------------------------------------------ PyTorch's other spellings
    # Methods ported PyTorch code calls, each the tinylatent op of the same meaning.
    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_xpu(self) -> bool:
        """Intel GPUs (PyTorch's XPU): tinylatent has no such backend, so always False."""
        return False

    @property
    def is_mps(self) -> bool:
        """Apple GPUs (PyTorch's MPS): tinylatent has no such backend, so always False."""
        return False

    def half(self) -> "Tensor":
        return self.to(float16)

    def type(self, dtype=None):
        """type() -> the dtype's name ('float32'); type(dtype) -> self.to(dtype); dtype may
        also be a legacy constructor such as tl.FloatTensor (its .dtype is used)."""
        if dtype is None:
            return str(self.dtype)
        return self.to(getattr(dtype, "dtype", dtype))

    # ------------------------------------------------------------------ more PyTorch names
    def diag(self, diagonal: int = 0) -> "Tensor":
        return ops.diag(self, diagonal)

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1) -> "Tensor":
        return ops.diagonal(self, offset, dim1, dim2)

    def prod(self, axis=None, keepdims=False, *, dim=None, keepdim=None, dtype=None):
        return ops.prod(self, axis, keepdims, dim=dim, keepdim=keepdim, dtype=dtype)

    def median(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.median(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def unique(self, sorted=True, return_inverse=False, return_counts=False,  # noqa: A002
               dim=None):
        return ops.unique(self, sorted, return_inverse, return_counts, dim)

    def unique_consecutive(self, return_inverse=False, return_counts=False, dim=None):
        return ops.unique_consecutive(self, return_inverse, return_counts, dim)

    def unbind(self, dim: int = 0) -> tuple:
        return ops.unbind(self, dim)

    def dot(self, other: "Tensor") -> "Tensor":
        return ops.dot(self, other)

    def where(self, condition, other) -> "Tensor":
        """PyTorch's x.where(condition, y) = where(condition, x, y)."""
        return ops.where(condition, self, other)

    def ravel(self) -> "Tensor":
        return self.reshape(-1)

    @property
    def mT(self) -> "Tensor":   # noqa: N802 - PyTorch's name
        """The last two axes swapped (a batch of transposed matrices)."""
        return ops.transpose(self, -2, -1)

    def fliplr(self) -> "Tensor":
        return ops.flip(self, 1)

    def flipud(self) -> "Tensor":
        return ops.flip(self, 0)

    def clamp_min(self, min) -> "Tensor":  # noqa: A002 - PyTorch's name
        return ops.clamp(self, min=min)

    def clamp_max(self, max) -> "Tensor":  # noqa: A002 - PyTorch's name
        return ops.clamp(self, max=max)

    def pin_memory(self) -> "Tensor":
        """Page-locked host memory speeds host-to-GPU copies in PyTorch; tinylatent copies
        through CuPy without it, so this returns the tensor itself."""
        return self

    # in-place elementwise maps: no graph (as every in-place change here; see
    # _check_inplace), on the array itself
    def _map_(self, name: str, fn) -> "Tensor":
        self._check_inplace(name)
        fn(self.array, out=self.array)
        return self

    def exp_(self) -> "Tensor":
        return self._map_("exp_", self.xp.exp)

    def log_(self) -> "Tensor":
        return self._map_("log_", self.xp.log)

    def sqrt_(self) -> "Tensor":
        return self._map_("sqrt_", self.xp.sqrt)

    def abs_(self) -> "Tensor":
        return self._map_("abs_", self.xp.abs)

    def neg_(self) -> "Tensor":
        return self._map_("neg_", self.xp.negative)

    def floor_(self) -> "Tensor":
        return self._map_("floor_", self.xp.floor)

    def sigmoid_(self) -> "Tensor":
        self._check_inplace("sigmoid_")
        self.array[...] = ops.sigmoid(self.detach()).array
        return self

    def erfinv_(self) -> "Tensor":
        """erf^-1 in place (truncated-normal initialisers use it: DINO's trunc_normal_)."""
        from .ops.unary import _special
        return self._map_("erfinv_", _special(self.xp).erfinv)

    def scatter_(self, dim: int, index, src=None, *, value=None) -> "Tensor":
        """self[..., index[i][j], ...] = src[i][j] along dim (or = value): PyTorch's in-place
        scatter, e.g. one-hot rows by zeros(n, k).scatter_(1, labels[:, None], 1)."""
        self._check_inplace("scatter_")
        if src is None and value is None:
            raise TypeError("scatter_: give src (a tensor or a number) or value=")
        src = value if src is None else src
        idx = index.array if isinstance(index, Tensor) else self.xp.asarray(index)
        dim = ops.axis_check.check_axis("scatter_", dim, self.ndim)
        if idx.ndim != self.ndim:
            raise ValueError(f"scatter_: index of shape {idx.shape} must have as many "
                             f"dimensions as self {self.shape}")
        grid = list(self.xp.indices(idx.shape, sparse=True))
        grid[dim] = idx
        s = self._other(src)
        if hasattr(s, "shape") and s.ndim:
            s = s[tuple(slice(0, n) for n in idx.shape)]
        self.array[tuple(grid)] = s
        return self

    def index_copy_(self, dim: int, index, source) -> "Tensor":
        """self[..., index[i], ...] = source[..., i, ...] along dim, in place."""
        self._check_inplace("index_copy_")
        dim = ops.axis_check.check_axis("index_copy_", dim, self.ndim)
        idx = index.array if isinstance(index, Tensor) else self.xp.asarray(index)
        self.array[(slice(None),) * dim + (idx,)] = self._other(source)
        return self

    def t(self) -> "Tensor":
        """Transpose of a matrix (0-D and 1-D tensors are returned as they are)."""
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor of at most 2 dimensions, got shape "
                             f"{self.shape}; use transpose(dim0, dim1)")
        return self if self.ndim < 2 else ops.transpose(self, 0, 1)

    def add(self, other, alpha=1):
        return ops.add(self, other if alpha == 1 else other * alpha)

    def sub(self, other, alpha=1):
        return ops.sub(self, other if alpha == 1 else other * alpha)

    def mul(self, other):
        return ops.mul(self, other)

    def div(self, other):
        return ops.div(self, other)

    def eq(self, other):
        return ops.compare(self, other, "equal")

    def ne(self, other):
        return ops.compare(self, other, "not_equal")

    def gt(self, other):
        return ops.compare(self, other, "greater")

    def ge(self, other):
        return ops.compare(self, other, "greater_equal")

    def lt(self, other):
        return ops.compare(self, other, "less")

    def le(self, other):
        return ops.compare(self, other, "less_equal")

    def masked_fill(self, mask, value):
        return ops.masked_fill(self, mask, value)

    def masked_fill_(self, mask, value) -> "Tensor":
        self._check_inplace("masked_fill_")
        m = mask.array if isinstance(mask, Tensor) else mask
        self.xp.copyto(self.array, self._other(value), where=self.xp.broadcast_to(
            m, self.shape), casting="unsafe")
        return self

    def mm(self, other):
        return ops.mm(self, other)

    def bmm(self, other):
        return ops.bmm(self, other)

    def narrow(self, dim, start, length):
        return ops.narrow(self, dim, start, length)

    def repeat(self, *sizes):
        return ops.repeat(self, *sizes)

    def repeat_interleave(self, repeats, dim=None):
        return ops.repeat_interleave(self, repeats, dim)

    def norm(self, p="fro", dim=None, keepdim=False):
        return ops.norm(self, p, dim, keepdim)

    def multinomial(self, num_samples, replacement=False, generator=None):
        from . import random
        return random.multinomial(self, num_samples, replacement, generator)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False) -> "Tensor":
        return zeros(*size, dtype=dtype or self.dtype, device=device or self.device,
                     requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False) -> "Tensor":
        return ones(*size, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None,
                 requires_grad=False) -> "Tensor":
        return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None) -> "Tensor":
        return empty(*size, dtype=dtype or self.dtype, device=device or self.device)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False) -> "Tensor":
        return tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                      requires_grad=requires_grad)



# ---------------------------------------------------------------------- factories
def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor copying `data` (Python numbers, lists, numpy/cupy arrays)."""
    if isinstance(data, Tensor):
        data = data.array
    t = Tensor(data, dtype=dtype, device=device, requires_grad=False)
    if t.array is data or (isinstance(data, np.ndarray) and np.shares_memory(t.array, data)):
        t.array = t.array.copy()
    return t.requires_grad_(requires_grad) if requires_grad else t


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like `tensor` but shares memory with an array when it can."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return Tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    return Tensor._make(np.asarray(array))


def from_dlpack(ext) -> Tensor:
    """A Tensor sharing memory with any DLPack producer (a NumPy or CuPy array, a PyTorch or
    JAX tensor) on the CPU or a CUDA GPU: zero-copy exchange between libraries. Like
    torch.from_dlpack the result does not require grad."""
    if isinstance(ext, Tensor):
        return Tensor._make(ext.array)
    if not hasattr(ext, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ and "
                        f"__dlpack_device__ (an array or tensor), got {type(ext).__name__}")
    device_type, _ = ext.__dlpack_device__()
    if int(device_type) == 1:                 # kDLCPU
        return Tensor._make(np.from_dlpack(ext))
    if int(device_type) == 2:                 # kDLCUDA
        import cupy
        return Tensor._make(cupy.from_dlpack(ext))
    raise RuntimeError(f"from_dlpack: DLPack device type {int(device_type)} is neither the "
                       "CPU (1) nor CUDA (2)")


def _xp_dtype(dtype, device):
    dev = Device(device) if device is not None else CPU
    return dev.xp, (np.dtype(dtype) if dtype is not None else _default_dtype[0]), dev


def _on(dev, fn, *args, **kwargs):
    if dev.type == "cuda":
        with dev.xp.cuda.Device(dev.index):
            return fn(*args, **kwargs)
    return fn(*args, **kwargs)


def _shape(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    xp, dtype, dev = _xp_dtype(dtype, device)
    return Tensor._make(_on(dev, xp.zeros, _shape(size), dtype)).requires_grad_(requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    xp, dtype, dev = _xp_dtype(dtype, device)
    return Tensor._make(_on(dev, xp.ones, _shape(size), dtype)).requires_grad_(requires_grad)


def empty(*size, dtype=None, device=None) -> Tensor:
    xp, dtype, dev = _xp_dtype(dtype, device)
    return Tensor._make(_on(dev, xp.empty, _shape(size), dtype))


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    xp, dtype, dev = _xp_dtype(dtype, device)
    size = (size,) if isinstance(size, int) else tuple(size)
    t = Tensor._make(_on(dev, xp.full, size, fill_value, dtype))
    return t.requires_grad_(requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, dtype=None) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=t.device)


def arange(start, stop=None, step=1, dtype=None, device=None) -> Tensor:
    dev = Device(device) if device is not None else CPU
    if stop is None:
        start, stop = 0, start
    is_float = any(isinstance(v, float) for v in (start, stop, step))
    dtype = np.dtype(dtype) if dtype is not None else (_default_dtype[0] if is_float
                                                       else int64)
    return Tensor._make(_on(dev, dev.xp.arange, start, stop, step, dtype=dtype))


def linspace(start: float, stop: float, steps: int, dtype=None, device=None) -> Tensor:
    xp, dtype, dev = _xp_dtype(dtype, device)
    return Tensor._make(_on(dev, xp.linspace, start, stop, steps, dtype=dtype))


def eye(n: int, m: int | None = None, dtype=None, device=None) -> Tensor:
    xp, dtype, dev = _xp_dtype(dtype, device)
    return Tensor._make(_on(dev, xp.eye, n, m, dtype=dtype))


def _legacy_constructor(dtype, name: str, device=None):
    """PyTorch's legacy typed constructors (torch.FloatTensor(2, 3), torch.LongTensor([1,
    2])): sizes give a zero-filled tensor (PyTorch leaves it uninitialized), data a copy.
    Their `.dtype` lets x.type(tl.FloatTensor) work."""
    def make(*args, device=device):
        if not args:
            return zeros(0, dtype=dtype, device=device)
        if all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            return zeros(*args, dtype=dtype, device=device)
        if len(args) > 1:
            raise TypeError(f"{name}: expected sizes (ints) or one sequence of data")
        return tensor(args[0], dtype=dtype, device=device)
    make.__name__ = make.__qualname__ = name
    make.dtype = np.dtype(dtype)
    make.__doc__ = _legacy_constructor.__doc__
    return make


FloatTensor = _legacy_constructor(float32, "FloatTensor")
DoubleTensor = _legacy_constructor(float64, "DoubleTensor")
HalfTensor = _legacy_constructor(float16, "HalfTensor")
LongTensor = _legacy_constructor(int64, "LongTensor")
IntTensor = _legacy_constructor(int32, "IntTensor")
BoolTensor = _legacy_constructor(bool_, "BoolTensor")
ByteTensor = _legacy_constructor(uint8, "ByteTensor")


from . import ops  # noqa: E402  (ops import Tensor; bound here to break the cycle)
