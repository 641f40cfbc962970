"""tinylatent.distributed, DistributedDataParallel, SyncBatchNorm, DistributedSampler.

The multi-process tests launch `mpiexec -n 2 python tests/mpi_worker.py ...` (the `dist`
extra: mpi4py and the MPICH wheel) with a timeout, so a hang fails instead of blocking CI;
without the extra they skip, saying so.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylatent as tl
import tinylatent.distributed as dist
from tinylatent import nn
from tinylatent.data import DataLoader, DistributedSampler, TensorDataset
from tinylatent.nn.parallel import DistributedDataParallel, SyncBatchNorm, sync_batch_norm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "mpi_worker.py")


def _mpiexec():
    """The launcher next to this Python (the mpich wheel puts it there), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(
    not dist.is_available() or _mpiexec() is None,
    reason="needs the `dist` extra (pip install -e '.[dist]': mpi4py + mpich, gives mpiexec)")


def launch(*args, ranks=2, timeout=120):
    """Run the worker on `ranks` processes; a hang past `timeout` seconds fails the test."""
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, WORKER, *map(str, args)]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd[3:])} did not finish in {timeout} s (hung?):\n"
                    f"{e.stdout}\n{e.stderr}")


def assert_fails(proc, message: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert message in out, out
    return out


def assert_ok(proc, expected_ok_lines):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert out.count("OK ") == expected_ok_lines, out


# ----------------------------------------------------------------------------- 2 processes
@needs_mpi
def test_collectives_match_numpy_on_two_ranks():
    """all_reduce (sum/mean/max) / broadcast / all_gather on 30 random shapes and dtypes."""
    assert_ok(launch("collectives"), 2)


@needs_mpi
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("model", ["mlp", "mlp_accum", "conv", "vae"])
def test_two_ranks_batch_b_match_one_process_batch_2b(model, dtype, tmp_path):
    """20 steps: DDP on 2 ranks x batch B gives the parameters (and SyncBatchNorm running
    statistics) of 1 process x batch 2B, to 1e-10 (float64) / 1e-5 (float32). mlp_accum
    takes each step as two half-batches, the first inside no_sync(); conv has SyncBatchNorm;
    vae is tinylatent.models.vae with the same noise per image in both runs."""
    assert_ok(launch("train", model, dtype, tmp_path), 2)


@needs_mpi
def test_checkpoint_of_two_ranks_resumes_on_one(tmp_path):
    """Rank 0 alone writes the checkpoint; one process resumes it (batch 2B) and ends where
    the uninterrupted single-process run ends."""
    assert_ok(launch("train", "mlp", "float64", tmp_path), 2)
    assert sorted(os.listdir(tmp_path)) == ["mlp_float64.npz"]
    proc = subprocess.run([sys.executable, WORKER, "resume", str(tmp_path)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT)
    assert_ok(proc, 1)


@needs_mpi
def test_parameters_used_on_some_ranks_or_none():
    assert_ok(launch("unused"), 2)


@needs_mpi
def test_ranks_with_different_modules_are_refused():
    assert_fails(launch("mismatch", timeout=60), "differ from those of rank(s)")


@needs_mpi
def test_a_rank_that_raises_stops_every_rank_naming_it():
    out = assert_fails(launch("fail", timeout=60),
                       "rank 1 of 2 raised ValueError: deliberate failure")
    assert "passed the barrier" not in out, out


@pytest.mark.skipif(not dist.is_nccl_available(),
                    reason="NCCL needs CuPy with NCCL and a GPU; none here")
def test_nccl_backend_all_reduce_on_one_gpu():  # pragma: no cover - GPU machines only
    proc = launch("collectives", "nccl", ranks=1)
    assert_ok(proc, 1)


# ----------------------------------------------------------------------------- one process
def test_nccl_path_imports_without_a_gpu():
    import tinylatent.distributed  # noqa: F401  (no CuPy import at module level)
    assert dist.is_nccl_available() in (True, False)
    if not dist.is_nccl_available():
        with pytest.raises(RuntimeError, match="nccl"):
            dist.init_process_group("nccl")
        assert not dist.is_initialized()


def test_missing_mpi_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)      # makes `import mpi4py` fail
    assert not dist.is_available()
    with pytest.raises(RuntimeError, match=r"tinylatent\[dist\]"):
        dist.init_process_group("mpi")
    assert not dist.is_initialized()


def test_without_a_group_collectives_raise_and_checkpoints_save(tmp_path):
    for call in (dist.get_rank, dist.get_world_size, dist.barrier,
                 lambda: dist.all_reduce(tl.ones(3)), lambda: dist.broadcast(tl.ones(3)),
                 lambda: DistributedDataParallel(nn.Linear(2, 2))):
        with pytest.raises(RuntimeError, match="init_process_group"):
            call()
    with pytest.raises(ValueError, match="unknown backend 'gloo'"):
        dist.init_process_group("gloo")
    x = tl.randn(3, requires_grad=True)
    assert dist.all_reduce_sum(x) is x                    # a world of one
    dist.save_on_rank0({"w": tl.ones(2)}, tmp_path / "c.npz")
    np.testing.assert_array_equal(tl.load(tmp_path / "c.npz")["w"].numpy_host(), 1.0)


@given(n=st.integers(2, 5), c=st.integers(1, 3), spatial=st.sampled_from([(), (3,), (2, 3)]))
def test_sync_batch_norm_gradients(n, c, spatial):
    """In a world of one sync_batch_norm is batch norm: same values, same gradients, and
    its own gradient (through the all-reduce's backward) passes gradcheck/gradgradcheck."""
    g = np.random.default_rng(n * 10 + c)
    x = tl.tensor(g.standard_normal((n, c) + spatial), requires_grad=True)
    w = tl.tensor(g.standard_normal(c) + 1, requires_grad=True)
    b = tl.tensor(g.standard_normal(c), requires_grad=True)
    y = sync_batch_norm(x, None, None, w, b)
    y_ref = nn.normalization.batch_norm(x, None, None, w, b, training=True)
    np.testing.assert_allclose(y.numpy_host(), y_ref.numpy_host(), rtol=1e-10, atol=1e-12)
    up = tl.tensor(g.standard_normal(y.shape))
    grads = tl.grad((y * up).sum(), [x, w, b])
    grads_ref = tl.grad((y_ref * up).sum(), [x, w, b])
    for got, want in zip(grads, grads_ref):
        np.testing.assert_allclose(got.numpy_host(), want.numpy_host(), rtol=1e-9, atol=1e-10)
    f = lambda x, w, b: sync_batch_norm(x, None, None, w, b)  # noqa: E731
    assert tl.gradcheck(f, (x, w, b))
    assert tl.gradgradcheck(f, (x, w, b))


def test_sync_batch_norm_layer_and_conversion():
    tl.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, momentum=0.3))
    weight = net[1].weight
    net = SyncBatchNorm.convert_sync_batchnorm(net)
    assert type(net[1]) is SyncBatchNorm and net[1].weight is weight
    ref = nn.BatchNorm1d(3, momentum=0.3)
    x = tl.randn(8, 3)
    np.testing.assert_allclose(net[1](x).numpy_host(), ref(x).numpy_host(), rtol=1e-5,
                               atol=1e-6)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(net[1], name).numpy_host(),
                                   getattr(ref, name).numpy_host(), rtol=1e-6)
    net.eval()
    ref.eval()
    np.testing.assert_allclose(net[1](x).numpy_host(), ref(x).numpy_host(), rtol=1e-5)
    with pytest.raises(ValueError, match="SyncBatchNorm: expected input"):
        net.train()[1](tl.randn(8, 4))


@given(n=st.integers(1, 40), world=st.integers(1, 5), drop_last=st.booleans())
def test_distributed_sampler_shards(n, world, drop_last):
    data = TensorDataset(tl.arange(n))
    if drop_last and n < world:
        with pytest.raises(ValueError, match="DistributedSampler"):
            DistributedSampler(data, world, 0, drop_last=True)
        return
    shards = [DistributedSampler(data, world, r, seed=5, drop_last=drop_last)
              for r in range(world)]
    idx = [s.indices() for s in shards]
    assert len({len(i) for i in idx}) == 1 and len(idx[0]) == len(shards[0])
    every = np.concatenate(idx)
    if drop_last:
        assert len(set(every)) == len(every) == n - n % world           # disjoint
    else:
        assert set(every) == set(range(n)) and len(every) < n + world   # covers, pads < world
        assert len(set(every)) == n                                      # distinct up to pads
    again = [s.indices() for s in shards]
    assert all(np.array_equal(a, b) for a, b in zip(idx, again))        # same epoch, same
    for s in shards:
        s.set_epoch(1)
    if n >= 4:
        assert any(not np.array_equal(a, s.indices()) for a, s in zip(idx, shards))


def test_loader_with_sampler_reads_the_shard():
    data = TensorDataset(tl.arange(10))
    sampler = DistributedSampler(data, 2, 1, shuffle=False)
    batches = [x.numpy_host().tolist() for (x,) in DataLoader(data, 2, sampler=sampler)]
    assert batches == [[1, 3], [5, 7], [9]]
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(data, 2, shuffle=True, sampler=sampler)
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(data, 2, 2)


@needs_mpi
@pytest.mark.slow
def test_vae_example_distributed_resumes_exactly_and_on_one_rank(tmp_path):
    """examples/vae_mnist.py --distributed: 2 ranks for 2 epochs == 2 ranks for 1 epoch then
    --resume (rank 0's checkpoint, per-rank noise reseeded per epoch); the same checkpoint
    also resumes on a single rank."""
    def run(out, epochs, ranks=2, resume=False):
        cmd = ["examples/vae_mnist.py", "--distributed", "--epochs", str(epochs),
               "--limit-train-batches", "3", "--batch-size", "32", "--out", str(out)]
        cmd = [_mpiexec(), "-n", str(ranks), sys.executable] + cmd + ["--resume"] * resume
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return tl.load(out / "checkpoint.npz")

    straight = run(tmp_path / "a", 2)
    run(tmp_path / "b", 1)
    shutil.copytree(tmp_path / "b", tmp_path / "c")
    resumed = run(tmp_path / "b", 2, resume=True)
    assert int(resumed["epoch"]) == 2
    for k, v in straight["model"].items():
        np.testing.assert_array_equal(resumed["model"][k].numpy_host(), v.numpy_host(), k)
    on_one = run(tmp_path / "c", 2, ranks=1, resume=True)
    assert int(on_one["epoch"]) == 2 and len(on_one["history"]) == 2
