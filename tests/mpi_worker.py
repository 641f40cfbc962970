"""The program tests/test_distributed.py launches with `mpiexec -n 2` (not a test module).

    python tests/mpi_worker.py collectives [nccl]   # all_reduce/broadcast/all_gather vs NumPy
    python tests/mpi_worker.py train MODEL DTYPE DIR  # N ranks x batch B == 1 process x N*B
    python tests/mpi_worker.py resume DIR           # one process resumes DIR's 2-rank checkpoint
    python tests/mpi_worker.py unused               # parameters some/no rank uses
    python tests/mpi_worker.py mismatch             # ranks with different modules: an error
    python tests/mpi_worker.py fail                 # rank 1 raises: every rank must stop

Each mode prints "OK ..." on success; any failure raises, which (with a process group up)
names the rank and aborts the whole job.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinylatent as tl  # noqa: E402
import tinylatent.distributed as dist  # noqa: E402
from tinylatent import nn  # noqa: E402
from tinylatent.data import DataLoader, DistributedSampler, TensorDataset  # noqa: E402
from tinylatent.models.vae import VAE  # noqa: E402
from tinylatent.nn.parallel import DistributedDataParallel  # noqa: E402

B = 6                  # per-rank batch
STEPS_PER_EPOCH = 5
EPOCHS = 4             # 20 steps
TOL = {"float64": 1e-10, "float32": 1e-5}


# ----------------------------------------------------------------------------- collectives
def collectives(backend: str = "mpi") -> None:
    dist.init_process_group(backend)
    dev = "cuda" if backend == "nccl" else "cpu"
    rank, world = dist.get_rank(), dist.get_world_size()
    dtypes = ["float64", "float32", "int64", "int32"]
    for case in range(30):
        shape_rng = np.random.default_rng(case)        # the same shape on every rank
        shape = tuple(shape_rng.integers(1, 5, size=shape_rng.integers(0, 4)))
        dtype = dtypes[case % len(dtypes)]

        def data(r):                                   # rank r's array in this case
            g = np.random.default_rng(1000 * case + r)
            return (g.standard_normal(shape) * 10).astype(dtype)

        every = np.stack([data(r) for r in range(world)])          # (world, *shape)
        for op, expect in (("sum", every.sum(0)), ("max", every.max(0)),
                           ("mean", every.mean(0))):
            if op == "mean" and dtype.startswith("int"):
                continue
            t = tl.tensor(data(rank), device=dev)
            dist.all_reduce(t, op=op)
            assert t.dtype == np.dtype(dtype), (op, t.dtype)
            tol = 1e-5 if dtype == "float32" else 1e-12
            np.testing.assert_allclose(t.numpy_host(), expect.astype(dtype), rtol=tol,
                                       atol=tol, err_msg=f"all_reduce {op} {dtype}{shape}")
        src = case % world
        t = tl.tensor(data(rank), device=dev)
        dist.broadcast(t, src=src)
        np.testing.assert_array_equal(t.numpy_host(), data(src))
        outs = [tl.zeros(shape, dtype=dtype, device=dev) for _ in range(world)]
        dist.all_gather(outs, tl.tensor(data(rank), device=dev))
        for r in range(world):
            np.testing.assert_array_equal(outs[r].numpy_host(), data(r))
    # the differentiable all-reduce: its gradient is the all-reduce of the upstream grads
    x = tl.tensor(np.arange(3.0) + rank, device=dev, requires_grad=True)
    (dist.all_reduce_sum(x) * (rank + 1.0)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy_host(), np.full(3, sum(range(1, world + 1))))
    dist.barrier()
    print(f"OK collectives rank {rank}")
    dist.destroy_process_group()


# ----------------------------------------------------------------------------- training
class FixedNoiseVAE(VAE):
    """The VAE with its reparameterization noise given per image, so that a rank's images
    get exactly the noise one process with the whole batch gives them."""

    def reparameterize(self, mu, logvar, generator=None):
        return mu + tl.exp(0.5 * logvar) * self.__dict__["noise"]


def make_model(name: str, dtype: str):
    tl.manual_seed(0)
    if name in ("mlp", "mlp_accum"):
        model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 3))
    elif name == "conv":
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.SyncBatchNorm(4), nn.ReLU(),
                              nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    else:
        model = FixedNoiseVAE(in_features=12, hidden_features=16, latent_features=3)
    return model.to(dtype=dtype)


def make_data(name: str, dtype: str, world: int):
    n = world * B * STEPS_PER_EPOCH
    g = np.random.default_rng(7)
    if name == "conv":
        x = g.standard_normal((n, 1, 6, 6)) + 0.5
    elif name == "vae":
        x = g.uniform(size=(n, 12))
    else:
        x = g.standard_normal((n, 10))
    y = g.standard_normal((n, 3))
    return TensorDataset(tl.tensor(x.astype(dtype)), tl.tensor(y.astype(dtype)))


def batch_loss(model, name, x, y, step, rank, world):
    if name == "vae":
        # images at positions rank, rank + world, ... of the whole batch (DistributedSampler)
        noise = np.random.default_rng(100 + step).standard_normal((world * len(x), 3))
        getattr(model, "module", model).__dict__["noise"] = tl.tensor(
            noise[rank::world].astype(x.dtype))
        return model.loss(x)[0]
    return ((model(x) - y) ** 2).mean()


def train(name, dtype, model, optimizer, world, rank, epochs, on_epoch_end=None):
    """`epochs` epochs of 5 steps, per-rank batch = world-wide batch / world."""
    data = make_data(name, dtype, 2)                   # the same data whatever the world
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, seed=3)
    loader = DataLoader(data, 2 * B // world, sampler=sampler)
    for epoch in epochs:
        sampler.set_epoch(epoch)
        for i, (x, y) in enumerate(loader):
            step = epoch * STEPS_PER_EPOCH + i
            optimizer.zero_grad()
            if name == "mlp_accum":                    # two half-batches, one all-reduce
                half = len(x) // 2
                with model.no_sync():
                    (0.5 * batch_loss(model, name, x[:half], y[:half], step, rank,
                                      world)).backward()
                (0.5 * batch_loss(model, name, x[half:], y[half:], step, rank,
                                  world)).backward()
            else:
                batch_loss(model, name, x, y, step, rank, world).backward()
            optimizer.step()
        if on_epoch_end is not None:
            on_epoch_end(epoch)


def make_optimizer(name, model):
    if name == "vae":
        return tl.optim.Adam(model.parameters(), lr=1e-2)
    return tl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def state(model) -> dict:
    return {k: v.numpy_host().copy() for k, v in model.state_dict().items()}


def compare(got: dict, want: dict, tol: float, what: str) -> float:
    worst = 0.0
    for k in want:
        diff = float(np.max(np.abs(got[k].astype(np.float64) - want[k]), initial=0.0))
        assert diff <= tol, f"{what}: {k} differs by {diff:.3g} > {tol:g}"
        worst = max(worst, diff)
    return worst


def reference(name, dtype, epochs=range(EPOCHS)) -> dict:
    """One process, the whole batch 2B (no process group: SyncBatchNorm is BatchNorm)."""
    model = make_model(name, dtype)
    train(name.replace("_accum", ""), dtype, model, make_optimizer(name, model), 1, 0, epochs)
    return state(model)


def train_distributed(name: str, dtype: str, out: str) -> None:
    want = reference(name, dtype)                      # before the group exists
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == 2, world
    model = make_model(name, dtype)
    if rank == 1:                                      # DDP must broadcast rank 0's weights
        with tl.no_grad():
            for p in model.parameters():
                p.array[...] += 1.0
    ddp = DistributedDataParallel(model, bucket_cap_mb=0.001)   # ~1 KB: many buckets
    optimizer = make_optimizer(name, model)

    def checkpoint(epoch):
        if epoch == 1:                                 # after step 10: for the resume test
            dist.save_on_rank0({"model": model.state_dict(),
                                "optimizer": optimizer.state_dict(), "epoch": epoch},
                               os.path.join(out, f"{name}_{dtype}.npz"))

    train(name, dtype, ddp, optimizer, world, rank,
          range(EPOCHS), checkpoint)
    worst = compare(state(model), want, TOL[dtype], f"rank {rank} {name} {dtype}")
    print(f"OK train {name} {dtype} rank {rank}: max |difference| {worst:.2e}")
    dist.destroy_process_group()


def resume(out: str) -> None:
    """Continue the 2-rank run's checkpoint (after 10 steps) in one process with batch 2B."""
    name, dtype = "mlp", "float64"
    want = reference(name, dtype)
    model = make_model(name, dtype)
    optimizer = make_optimizer(name, model)
    ckpt = tl.load(os.path.join(out, f"{name}_{dtype}.npz"))
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    train(name, dtype, model, optimizer, 1, 0, range(int(ckpt["epoch"]) + 1, EPOCHS))
    worst = compare(state(model), want, TOL[dtype], "resumed on 1 rank")
    print(f"OK resume: max |difference| {worst:.2e}")


def unused() -> None:
    """A parameter only rank 0 uses gets the average (its gradient / 2) on both ranks; one no
    rank uses keeps .grad None on both, as in a single process."""
    dist.init_process_group("mpi")
    rank = dist.get_rank()
    net = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 1), "c": nn.Linear(2, 1)})
    ddp = DistributedDataParallel(net, bucket_cap_mb=1e-5)
    x = tl.ones(1, 2)
    y = net["a"](x) + (net["b"](x) if rank == 0 else 0.0)
    y.sum().backward()
    np.testing.assert_allclose(net["a"].weight.grad.numpy_host(), [[1.0, 1.0]])
    np.testing.assert_allclose(net["b"].weight.grad.numpy_host(), [[0.5, 0.5]])
    assert net["c"].weight.grad is None and net["c"].bias.grad is None
    assert "buckets" in repr(ddp)
    # overlap: with every parameter used, each bucket's all-reduce starts during backward,
    # before the end-of-pass callback
    mlp = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))
    ddp = DistributedDataParallel(mlp, bucket_cap_mb=1e-4)     # ~100 bytes: 4 buckets
    launched_before_end = []
    finish = ddp._finish
    ddp.__dict__["_finish"] = lambda: (launched_before_end.append(ddp._next), finish())[1]
    ddp(tl.randn(3, 4)).sum().backward()
    assert len(ddp._buckets) == 4 and launched_before_end == [4], launched_before_end
    print(f"OK unused rank {rank}")
    dist.destroy_process_group()


def mismatch() -> None:
    dist.init_process_group("mpi")
    DistributedDataParallel(nn.Linear(2, 2 + dist.get_rank()))


def fail() -> None:
    dist.init_process_group("mpi")
    if dist.get_rank() == 1:
        raise ValueError("deliberate failure on this rank")
    dist.barrier()                                     # would wait forever without the abort
    print("rank 0 passed the barrier (it should not have)")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "collectives":
        collectives(*sys.argv[2:3])
    elif mode == "train":
        train_distributed(*sys.argv[2:5])
    elif mode == "resume":
        resume(sys.argv[2])
    elif mode == "unused":
        unused()
    elif mode == "mismatch":
        mismatch()
    elif mode == "fail":
        fail()
    else:
        raise SystemExit(f"mpi_worker: unknown mode {mode!r}")
