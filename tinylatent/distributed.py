"""Data-parallel communication: PyTorch's `torch.distributed` shape on MPI and NCCL.

    # launched as: mpiexec -n 4 python train.py
    import tinylatent.distributed as dist
    dist.init_process_group("mpi")              # rank and world size from the MPI launcher
    dist.all_reduce(t, op="mean")               # in place on t's array, on every rank
    dist.destroy_process_group()

We do not write a communication engine: "mpi" runs on MPI through mpi4py (the route
ChainerMN took; install the `dist` extra: mpi4py and the MPICH wheel), "nccl" on NCCL
through CuPy (`cupy.cuda.nccl`, the `gpu` extra) with MPI only to hand every rank NCCL's
unique id, one GPU per rank (rank modulo the GPUs on the node).

Collectives act in place on a Tensor's array (or on a raw array) and record no graph;
`all_reduce_sum` is the one differentiable collective (SyncBatchNorm builds on it).

Failure: once a group is initialized, an exception that escapes on any rank prints
"rank R raised ..." and aborts the whole MPI job, so the other ranks stop at once instead of
waiting forever in their next collective.
"""
from __future__ import annotations

import sys
import traceback

import numpy as np

from .autograd import Function
from .tensor import Tensor

__all__ = ["init_process_group", "destroy_process_group", "is_initialized", "is_available",
           "is_nccl_available", "get_rank", "get_world_size", "get_backend", "barrier",
           "all_reduce", "broadcast", "all_gather", "all_reduce_sum", "save_on_rank0",
           "ReduceOp"]

_INSTALL_HINT = ("install the `dist` extra (pip install 'tinylatent[dist]': mpi4py and the "
                 "MPICH wheel) and launch with `mpiexec -n N python ...`")


class ReduceOp:
    """Reduction names accepted by `all_reduce` (plain strings work too)."""
    SUM = "sum"
    MEAN = "mean"
    MAX = "max"


_OPS = (ReduceOp.SUM, ReduceOp.MEAN, ReduceOp.MAX)


def _import_mpi():
    """mpi4py's MPI module, or an error naming the extra to install."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as e:  # no mpi4py, or no MPI library for it
        raise RuntimeError(f"tinylatent.distributed: MPI is not available ({e}); "
                           f"{_INSTALL_HINT}") from None
    return MPI


def is_available() -> bool:
    """True when mpi4py and an MPI library import (the `dist` extra is installed)."""
    try:
        _import_mpi()
    except RuntimeError:
        return False
    return True


def is_nccl_available() -> bool:
    """True when CuPy's NCCL bindings import and a GPU is visible."""
    try:
        import cupy
        from cupy.cuda import nccl  # noqa: F401
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no NCCL in this CuPy build, or no driver/GPU
        return False


# ----------------------------------------------------------------------------- backends
class _MPIBackend:
    """Collectives on host (NumPy) arrays through mpi4py's buffer interface (no pickling)."""

    name = "mpi"

    def __init__(self):
        self.MPI = _import_mpi()
        if not self.MPI.Is_initialized():  # pragma: no cover - mpi4py initializes on import
            self.MPI.Init()
        self.comm = self.MPI.COMM_WORLD.Dup()   # our own context: no clash with user MPI code
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def _op(self, op):
        return self.MPI.MAX if op == ReduceOp.MAX else self.MPI.SUM

    def all_reduce(self, a, op) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, a, op=self._op(op))

    def iall_reduce(self, a, op):
        """Start a sum/max all-reduce of `a` in place; returns a request with .wait()."""
        return self.comm.Iallreduce(self.MPI.IN_PLACE, a, op=self._op(op))

    def broadcast(self, a, src) -> None:
        self.comm.Bcast(a, root=src)

    def all_gather(self, a, out) -> None:
        self.comm.Allgather(a, out)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int) -> None:
        self.comm.Abort(code)

    def close(self) -> None:
        self.comm.Free()


class _NCCLBackend(_MPIBackend):
    """Collectives on CuPy arrays through NCCL; MPI starts the ranks and shares NCCL's id."""

    name = "nccl"

    def __init__(self):
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError as e:
            raise RuntimeError(f"init_process_group(backend='nccl'): CuPy with NCCL is not "
                               f"available ({e}); install the `gpu` extra") from None
        try:
            ndev = cupy.cuda.runtime.getDeviceCount()
        except cupy.cuda.runtime.CUDARuntimeError:
            ndev = 0
        if ndev == 0:
            raise RuntimeError("init_process_group(backend='nccl'): no GPU is visible")
        super().__init__()
        self.cupy, self.nccl = cupy, nccl
        cupy.cuda.Device(self.rank % ndev).use()
        uid = self.comm.bcast(nccl.get_unique_id() if self.rank == 0 else None, root=0)
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)

    _NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32",
                   "float64": "NCCL_FLOAT64", "int32": "NCCL_INT32", "int64": "NCCL_INT64",
                   "uint8": "NCCL_UINT8", "int8": "NCCL_INT8"}

    def _type(self, a):
        name = self._NCCL_TYPES.get(a.dtype.name)
        if name is None:
            raise TypeError(f"nccl backend: dtype {a.dtype} is not supported")
        return getattr(self.nccl, name)

    def _stream(self):
        return self.cupy.cuda.get_current_stream().ptr

    def all_reduce(self, a, op) -> None:
        nop = self.nccl.NCCL_MAX if op == ReduceOp.MAX else self.nccl.NCCL_SUM
        self.nccl_comm.allReduce(a.data.ptr, a.data.ptr, a.size, self._type(a), nop,
                                 self._stream())

    def iall_reduce(self, a, op):
        self.all_reduce(a, op)           # NCCL is asynchronous on the stream already
        return _Done()

    def broadcast(self, a, src) -> None:
        self.nccl_comm.bcast(a.data.ptr, a.size, self._type(a), src, self._stream())

    def all_gather(self, a, out) -> None:
        self.nccl_comm.allGather(a.data.ptr, out.data.ptr, a.size, self._type(a),
                                 self._stream())

    def barrier(self) -> None:
        self.cupy.cuda.get_current_stream().synchronize()
        super().barrier()

    def close(self) -> None:
        self.nccl_comm.destroy()
        super().close()


class _Done:
    def wait(self) -> None:
        pass

    def Test(self) -> bool:
        return True


# ----------------------------------------------------------------------------- the group
class _World:
    """The one process group of this process (PyTorch keeps the same default group)."""
    backend = None
    previous_excepthook = None


_world = _World()


def init_process_group(backend: str = "mpi", abort_on_exception: bool = True) -> None:
    """Join the job started by `mpiexec -n N`: backend "mpi" (CPU, NumPy arrays) or "nccl"
    (GPU, CuPy arrays). The rank and world size come from the MPI launcher.

    abort_on_exception: an exception that escapes on this rank prints the rank and the
    traceback and aborts every rank (MPI_Abort), so no rank waits in a collective forever.
    """
    if _world.backend is not None:
        raise RuntimeError("init_process_group: the default process group is already "
                           "initialized; call destroy_process_group() first")
    if backend == "mpi":
        _world.backend = _MPIBackend()
    elif backend == "nccl":
        _world.backend = _NCCLBackend()
    else:
        raise ValueError(f"init_process_group: unknown backend {backend!r}; expected 'mpi' "
                         "or 'nccl'")
    if abort_on_exception:
        _world.previous_excepthook = sys.excepthook
        sys.excepthook = _abort_all_ranks


def _abort_all_ranks(exc_type, exc, tb) -> None:
    """sys.excepthook while a group is up: name the rank, then take the whole job down."""
    b = _world.backend
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    sys.stderr.write(f"tinylatent.distributed: rank {b.rank} of {b.size} raised "
                     f"{exc_type.__name__}: {exc}; aborting all ranks\n{text}")
    sys.stderr.flush()
    b.abort(1)


def destroy_process_group() -> None:
    """Leave the group (a later init_process_group may start another)."""
    b = _require("destroy_process_group")
    b.close()
    _world.backend = None
    if _world.previous_excepthook is not None:
        sys.excepthook, _world.previous_excepthook = _world.previous_excepthook, None


def is_initialized() -> bool:
    return _world.backend is not None


def _require(what: str):
    if _world.backend is None:
        raise RuntimeError(f"{what}: the default process group is not initialized; call "
                           "tl.distributed.init_process_group() first (and launch with "
                           "mpiexec -n N)")
    return _world.backend


def get_rank() -> int:
    return _require("get_rank").rank


def get_world_size() -> int:
    return _require("get_world_size").size


def get_backend() -> str:
    return _require("get_backend").name


def barrier() -> None:
    _require("barrier").barrier()


# ----------------------------------------------------------------------------- collectives
def _array(t, what: str):
    a = t.array if isinstance(t, Tensor) else t
    if not hasattr(a, "dtype") or not hasattr(a, "shape"):
        raise TypeError(f"{what}: expected a Tensor or an array, got {type(t).__name__}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{what}: the array of shape {a.shape} is not C-contiguous; "
                         "collectives work in place on contiguous memory (call "
                         ".contiguous() first)")
    return a


def all_reduce(tensor, op: str = ReduceOp.SUM) -> None:
    """tensor <- op over ranks of tensor (sum, mean or max), in place on every rank."""
    b = _require("all_reduce")
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {_OPS}, got {op!r}")
    a = _array(tensor, "all_reduce")
    if op == ReduceOp.MEAN and a.dtype.kind not in "fc":
        raise TypeError(f"all_reduce: op='mean' needs a floating array, got {a.dtype}")
    b.all_reduce(a, op)
    if op == ReduceOp.MEAN:
        a /= b.size
    if isinstance(tensor, Tensor):
        tensor._version += 1


def broadcast(tensor, src: int = 0) -> None:
    """tensor <- rank `src`'s tensor, in place on every rank."""
    b = _require("broadcast")
    if not 0 <= src < b.size:
        raise ValueError(f"broadcast: src={src} is not a rank of a world of size {b.size}")
    b.broadcast(_array(tensor, "broadcast"), src)
    if isinstance(tensor, Tensor):
        tensor._version += 1


def all_gather(tensor_list: list, tensor) -> None:
    """tensor_list[r] <- rank r's tensor, for every r (PyTorch's signature: the list holds
    world-size tensors of the same shape and dtype, filled in place)."""
    b = _require("all_gather")
    a = _array(tensor, "all_gather")
    if len(tensor_list) != b.size:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} entries for a "
                         f"world of size {b.size}")
    outs = [_array(t, "all_gather") for t in tensor_list]
    for r, o in enumerate(outs):
        if o.shape != a.shape or o.dtype != a.dtype:
            raise ValueError(f"all_gather: tensor_list[{r}] is {o.dtype}{tuple(o.shape)}, "
                             f"expected {a.dtype}{tuple(a.shape)} like the input")
    xp = sys.modules["cupy"] if b.name == "nccl" else np
    gathered = xp.empty((b.size,) + a.shape, dtype=a.dtype)   # (world, *shape)
    b.all_gather(a, gathered)
    for r, (t, o) in enumerate(zip(tensor_list, outs)):
        o[...] = gathered[r]
        if isinstance(t, Tensor):
            t._version += 1


class _AllReduceSum(Function):
    """y = sum over ranks r of x_r (every rank gets y);
    dL/dx_s = sum over ranks r of dL/dy_r (the total loss is the sum of every rank's loss,
    and y_r depends on x_s through the identity), i.e. again an all-reduce sum."""

    @staticmethod
    def forward(ctx, x):
        y = x.copy()                      # C-contiguous, as MPI wants
        _world.backend.all_reduce(y, ReduceOp.SUM)
        return y

    @staticmethod
    def backward(ctx, grad):
        return all_reduce_sum(grad)


def all_reduce_sum(x: Tensor) -> Tensor:
    """Differentiable out-of-place all-reduce (sum); the identity without a process group
    (one process is a world of one)."""
    if _world.backend is None or _world.backend.size == 1:
        return x
    return _AllReduceSum.apply(x)


def save_on_rank0(obj, path: str) -> None:
    """Checkpoint from rank 0 only (every rank holds the same model), then wait, so that no
    rank reads the file before it is whole. Without a group it simply saves."""
    from .serialization import save
    if _world.backend is None or _world.backend.rank == 0:
        save(obj, path)
    if _world.backend is not None:
        _world.backend.barrier()

