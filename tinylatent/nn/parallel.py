"""Data-parallel training across processes: DistributedDataParallel and SyncBatchNorm.

    dist.init_process_group("mpi")                    # launched by mpiexec -n N
    model = DistributedDataParallel(Net())            # rank 0's weights on every rank
    for x in DataLoader(data, B, sampler=DistributedSampler(data)):
        loss = model(x).mean()
        optimizer.zero_grad()
        loss.backward()       # gradients averaged over ranks: as one process with batch N*B
        optimizer.step()

Every rank keeps a full replica; after backward each parameter's .grad is the average of
the ranks' gradients, so the replicas take identical steps (Li et al. 2020, "PyTorch
Distributed: Experiences on Accelerating Data Parallel Training", Sec. 3). Gradients are
copied into a few flat buffers ("buckets", in reverse parameter order, the order backward
tends to produce them) and a bucket's all-reduce starts as soon as its last gradient is
final (a post-accumulate-grad hook), while backward continues on the rest of the graph.
"""
from __future__ import annotations

import contextlib
import zlib

import numpy as np

from .. import autograd
from .. import distributed as dist
from ..autograd import no_grad
from ..ops.normalization import _channel_affine, _update_running_stats
from ..tensor import Tensor
from .module import Module
from .normalization import _BatchNorm

__all__ = ["DistributedDataParallel", "SyncBatchNorm", "sync_batch_norm", "DataParallel",
           "data_parallel"]


class DataParallel(Module):
    """PyTorch's single-process DataParallel, on one device: tinylatent does not split a
    batch over several GPUs in threads (use DistributedDataParallel, one process per GPU),
    so this runs `module` on the whole batch, which is what PyTorch's does with one device
    or none. It keeps the wrapper's shape, `.module` and the "module." prefix of state-dict
    keys, so code and checkpoints written for DataParallel load unchanged."""

    def __init__(self, module: Module, device_ids=None, output_device=None,
                 dim: int = 0) -> None:
        super().__init__()
        self.module = module
        self.device_ids, self.output_device, self.dim = device_ids, output_device, dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module: Module, inputs, device_ids=None, output_device=None, dim: int = 0,
                  module_kwargs=None):
    """The functional DataParallel: module(*inputs) on one device (see DataParallel)."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    return module(*inputs, **(module_kwargs or {}))


class _Bucket:
    """A flat buffer holding some parameters' gradients, plus one "used" flag per parameter
    (summed over ranks with the gradients: a parameter no rank used keeps .grad None)."""

    def __init__(self, params: list, xp):
        self.params = params
        self.offsets = np.cumsum([0] + [p.numel() for p in params])
        self.numel = int(self.offsets[-1])
        self.flat = xp.zeros(self.numel + len(params), dtype=params[0].dtype)
        self.ready = 0
        self.request = None

    def reset(self) -> None:
        self.flat[...] = 0
        self.ready = 0
        self.request = None


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training on the default process group.

    At construction rank 0's parameters and buffers are broadcast to every rank (and the
    ranks check they hold the same architecture). In each backward pass every parameter's
    gradient is averaged over the ranks, bucketed into flat buffers of at most
    `bucket_cap_mb` MB. Inside `no_sync()` gradients only accumulate locally; the first
    backward after it averages the accumulated sum (gradient accumulation).
    broadcast_buffers: copy rank 0's buffers (e.g. BatchNorm running statistics) to every
    rank before each forward, as PyTorch does; use SyncBatchNorm to share batch statistics.
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0,
                 broadcast_buffers: bool = True) -> None:
        super().__init__()
        backend = dist._require("DistributedDataParallel")
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a Module, got "
                            f"{type(module).__name__}")
        self.module = module
        object.__setattr__(self, "broadcast_buffers", broadcast_buffers)
        object.__setattr__(self, "require_backward_grad_sync", True)
        object.__setattr__(self, "_world_size", backend.size)
        object.__setattr__(self, "_pass", None)      # the backward pass being reduced
        self._check_same_module()
        with no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t, src=0)
        params = []
        for p in module.parameters():
            if p.requires_grad and all(p is not q for q in params):
                params.append(p)
        object.__setattr__(self, "_buckets", self._make_buckets(params[::-1], bucket_cap_mb))
        object.__setattr__(self, "_where", {id(p): (b, i) for b in self._buckets
                                            for i, p in enumerate(b.params)})
        object.__setattr__(self, "_hook_handles", [
            autograd.register_post_accumulate_grad_hook(p, self._grad_ready) for p in params])

    # ------------------------------------------------------------------ set-up
    def _check_same_module(self) -> None:
        """Every rank must hold the same parameter and buffer shapes, or the collectives
        would mix unrelated memory: compare a checksum of names, shapes and dtypes."""
        desc = ";".join(f"{n}:{tuple(t.shape)}:{t.dtype}" for n, t in
                        list(self.module.named_parameters()) + list(self.module.named_buffers()))
        mine = np.array([zlib.crc32(desc.encode())], dtype=np.int64)
        sums = [np.zeros(1, dtype=np.int64) for _ in range(self._world_size)]
        dist.all_gather(sums, mine)
        differ = [r for r, s in enumerate(sums) if s[0] != mine[0]]
        if differ:
            raise ValueError(f"DistributedDataParallel: rank {dist.get_rank()} holds a module "
                             f"whose parameters/buffers (names, shapes, dtypes) differ from "
                             f"those of rank(s) {differ}")

    @staticmethod
    def _make_buckets(params: list, cap_mb: float) -> list:
        if cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {cap_mb}")
        cap = cap_mb * 2 ** 20
        buckets, group, nbytes = [], [], 0
        for p in params:
            if group and (nbytes + p.array.nbytes > cap or p.dtype != group[0].dtype
                          or p.xp is not group[0].xp):
                buckets.append(_Bucket(group, group[0].xp))
                group, nbytes = [], 0
            group.append(p)
            nbytes += p.array.nbytes
        if group:
            buckets.append(_Bucket(group, group[0].xp))
        return buckets

    # ------------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        self._sync_buffers()
        return self.module(*args, **kwargs)

    def loss(self, *args, **kwargs):
        """The wrapped model's `loss(batch)` (the model contract's training entry point)."""
        self._sync_buffers()
        return self.module.loss(*args, **kwargs)

    def _sync_buffers(self) -> None:
        if self.broadcast_buffers and self._world_size > 1:
            with no_grad():
                for b in self.module.buffers():
                    dist.broadcast(b, src=0)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside accumulate gradients locally, without communicating."""
        old = self.require_backward_grad_sync
        object.__setattr__(self, "require_backward_grad_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "require_backward_grad_sync", old)

    # ------------------------------------------------------------------ backward
    def _grad_ready(self, p: Tensor) -> None:
        """Post-accumulate-grad hook: p.grad is final for this pass; copy it into its bucket
        and start the bucket's all-reduce once the bucket is full."""
        if not self.require_backward_grad_sync:
            return
        if self._pass is not autograd._pass.callbacks:    # the first hook of a new pass
            # (compared by identity, so a pass that raised half-way cannot leave us stuck)
            object.__setattr__(self, "_pass", autograd._pass.callbacks)
            for b in self._buckets:
                b.reset()
            object.__setattr__(self, "_next", 0)
            autograd.queue_callback(self._finish)
        bucket, i = self._where[id(p)]
        lo, hi = bucket.offsets[i], bucket.offsets[i + 1]
        bucket.flat[lo:hi] = p.grad.array.reshape(-1)
        bucket.flat[bucket.numel + i] = 1
        bucket.ready += 1
        self._launch_ready()

    def _launch_ready(self) -> None:
        """Start the all-reduce of full buckets in bucket order: MPI needs every rank to
        start its collectives in the same order."""
        while self._next < len(self._buckets) and \
                self._buckets[self._next].ready == len(self._buckets[self._next].params):
            b = self._buckets[self._next]
            b.request = dist._world.backend.iall_reduce(b.flat, dist.ReduceOp.SUM)
            object.__setattr__(self, "_next", self._next + 1)
        for b in self._buckets[:self._next]:   # let MPI progress the ones in flight
            if b.request is not None and b.request.Test():
                b.request = None

    def _finish(self) -> None:
        """End of backward: reduce buckets holding parameters this rank did not use (their
        gradients count as zero here), wait for all, write the averages into .grad."""
        object.__setattr__(self, "_pass", None)
        for b in self._buckets:
            b.ready = len(b.params)
        self._launch_ready()
        for b in self._buckets:
            if b.request is not None:
                b.request.wait()
            for i, p in enumerate(b.params):
                if not b.flat[b.numel + i]:
                    continue                   # no rank has a gradient for p
                avg = b.flat[b.offsets[i]:b.offsets[i + 1]].reshape(p.shape) / self._world_size
                if p.grad is None or p.grad.requires_grad:
                    p.grad = Tensor._make(avg)
                else:
                    p.grad.array[...] = avg

    def extra_repr(self) -> str:
        sizes = ", ".join(f"{b.numel:,}" for b in self._buckets)
        return f"world_size={self._world_size}, buckets of {sizes} elements"


# ----------------------------------------------------------------------------- SyncBatchNorm
def sync_batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                    weight: Tensor | None, bias: Tensor | None, momentum: float = 0.1,
                    eps: float = 1e-5) -> Tensor:
    """Batch normalization (training mode) with the batch moments of all ranks together:
        mean = sum_r sum_i x / N,   var = sum_r sum_i (x - mean)^2 / N,   N = sum_r n_r,
    so N ranks with batch B normalize as one process with batch N*B. Written from
    primitives and the differentiable all-reduce, whose backward is again an all-reduce:
    the gradient flows through the other ranks' statistics too. Two passes over x (mean,
    then centred squares) rather than sum(x^2) - mean^2, which cancels catastrophically."""
    if x.ndim < 2:
        raise ValueError(f"sync_batch_norm: input must be (N, C, ...), got shape "
                         f"{tuple(x.shape)}")
    axes = (0,) + tuple(range(2, x.ndim))
    count = x.xp.asarray([x.numel() // x.shape[1]], dtype=np.int64)
    if dist.is_initialized():
        dist.all_reduce(count)
    n = int(count[0])
    if n <= 1:
        raise ValueError(f"sync_batch_norm: expected more than 1 value per channel over all "
                         f"ranks, got {n} (input shape {tuple(x.shape)} on this rank)")
    mean = dist.all_reduce_sum(x.sum(axis=axes, keepdims=True)) / n         # (1, C, 1...)
    d = x - mean
    var = dist.all_reduce_sum((d * d).sum(axis=axes, keepdims=True)) / n    # biased
    y = d * (var + eps).rsqrt()
    if running_mean is not None:
        _update_running_stats(running_mean, running_var, mean.array.reshape(-1),
                              var.array.reshape(-1), n, momentum)                 # (C,)
    return _channel_affine(y, weight, bias)


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C, ...) inputs whose training statistics are those of the whole
    batch across ranks (PyTorch's nn.SyncBatchNorm). Without a process group it is the
    ordinary BatchNorm; in eval mode it uses the running statistics, like BatchNorm."""

    _dims = (2, 3, 4, 5)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        if x.ndim not in self._dims or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: expected input (N, {self.num_features}, ...) "
                             f"with 2 to 5 dimensions, got shape {tuple(x.shape)}")
        momentum = self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.array[...] += 1
            if momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.item())
        return sync_batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                               momentum or 0.0, self.eps)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """Replace every BatchNorm layer in `module` (or `module` itself) by a SyncBatchNorm
        holding the same parameters and buffers."""
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            new = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats)
            new.train(module.training)
            # the very Parameter and buffer objects (an optimizer may hold the parameters)
            for name, param in module._parameters.items():
                new.register_parameter(name, param)
            for name, buf in module._buffers.items():
                new.register_buffer(name, buf)
            return new
        for name, child in list(module.named_children()):
            setattr(module, name, cls.convert_sync_batchnorm(child))
        return module
