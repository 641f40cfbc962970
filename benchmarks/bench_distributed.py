"""Data-parallel scaling on this machine: 1 -> 2 process throughput of a training step, and
all-reduce bandwidth for 1-64 MB buffers, tl.distributed next to MPI's own figure.

    python benchmarks/bench_distributed.py            # launches mpiexec -n 1 and -n 2 itself
    python benchmarks/bench_distributed.py --quick    # fewer steps and sizes (CI: checks only)

Training step: the VAE of examples/vae_mnist.py (784-400-20, Adam), batch B per process
(weak scaling, as DistributedDataParallel is used): throughput = N * B / step time, and the
headline is throughput(2) / throughput(1); on 2 cores expect at most ~1.8x (the two ranks
share memory bandwidth, and the all-reduce of 2.6 MB of gradients is not free).
All-reduce: float32 buffers of 1-64 MB, in place, timed as the OSU micro-benchmarks time
osu_allreduce (warm-up, then the mean over iterations, the slowest rank's time). "MPI" is
mpi4py's Allreduce on the raw buffer: the MPI library's own speed (the MPICH wheel ships no
osu binaries); "tl" is tl.distributed.all_reduce on a Tensor, i.e. MPI plus our overhead.
Bandwidth is algorithm bandwidth (bytes / time) and bus bandwidth (x 2 (N - 1) / N, the
nccl-tests convention: the bytes each rank must send and receive in a ring all-reduce).

Correctness is checked on every run and fails the run: every all-reduce result against the
known sum, and the ranks' parameters identical after the timed training steps. Timings are
printed (and written with --json), never asserted; do not commit figures taken on a loaded
machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


# ----------------------------------------------------------------------------- rank side
def _step_time(quick: bool) -> dict:
    import tinylatent as tl
    import tinylatent.distributed as dist
    from tinylatent.models.vae import VAE
    from tinylatent.nn.parallel import DistributedDataParallel

    rank, world = dist.get_rank(), dist.get_world_size()
    batch, steps, warmup = 128, (5 if quick else 30), (2 if quick else 5)
    tl.manual_seed(0)
    model = VAE(in_features=784, hidden_features=400, latent_features=20)
    ddp = DistributedDataParallel(model)
    optimizer = tl.optim.Adam(model.parameters(), lr=1e-3)
    x = tl.tensor(np.random.default_rng(rank).uniform(size=(batch, 784)).astype("float32"))
    tl.manual_seed(1 + rank)
    times = []
    for i in range(warmup + steps):
        dist.barrier()
        t0 = time.perf_counter()
        loss, _ = ddp.loss(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    # check: the replicas took identical steps
    flat = np.concatenate([p.numpy_host().ravel() for p in model.parameters()])
    sums = [tl.zeros(2, dtype="float64") for _ in range(world)]
    dist.all_gather(sums, tl.tensor([flat.sum(), (flat * flat).sum()], dtype="float64"))
    ref = sums[0].numpy_host()
    for r, s in enumerate(sums):
        if not np.array_equal(s.numpy_host(), ref):
            raise AssertionError(f"rank {r}'s parameters differ from rank 0's after "
                                 f"{warmup + steps} DDP steps")
    t = float(np.median(times))
    return {"batch_per_rank": batch, "step_s": t, "samples_per_s": world * batch / t}


def _all_reduce_bandwidth(quick: bool) -> list:
    import tinylatent as tl
    import tinylatent.distributed as dist
    from mpi4py import MPI

    rank, world = dist.get_rank(), dist.get_world_size()
    comm = MPI.COMM_WORLD
    sizes_mb = [1, 4] if quick else [1, 2, 4, 8, 16, 32, 64]
    iters, warmup = (3, 1) if quick else (20, 3)
    rows = []
    for mb in sizes_mb:
        n = mb * 2 ** 20 // 4
        row = {"MB": mb}
        for how in ("mpi", "tl"):
            buf = np.empty(n, dtype=np.float32)
            t = tl.Tensor._make(buf)
            expect = np.float32(world * (world + 1) / 2)
            elapsed = []
            for i in range(warmup + iters):
                buf[...] = rank + 1
                comm.Barrier()
                t0 = time.perf_counter()
                if how == "mpi":
                    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                else:
                    dist.all_reduce(t, op="sum")
                dt = time.perf_counter() - t0
                if buf[0] != expect or buf[-1] != expect or not np.all(buf[::4099] == expect):
                    raise AssertionError(f"{how} all-reduce of {mb} MB gave {buf[0]}, "
                                         f"expected {expect}")
                if i >= warmup:
                    elapsed.append(dt)
            slowest = comm.allreduce(float(np.mean(elapsed)), op=MPI.MAX)
            nbytes = n * 4
            row[how] = {"s": slowest, "algbw_GBps": nbytes / slowest / 1e9,
                        "busbw_GBps": nbytes / slowest / 1e9 * 2 * (world - 1) / world}
        rows.append(row)
    return rows


def worker(quick: bool, out: str) -> None:
    import tinylatent.distributed as dist
    dist.init_process_group("mpi")
    result = {"world": dist.get_world_size(), "step": _step_time(quick)}
    if dist.get_world_size() > 1:
        result["all_reduce"] = _all_reduce_bandwidth(quick)
    if dist.get_rank() == 0:
        with open(out, "w") as f:
            json.dump(result, f)
    dist.destroy_process_group()


# ----------------------------------------------------------------------------- launcher
def mpiexec() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else "mpiexec"


def run(quick: bool, timeout: float = 900) -> dict:
    import tempfile
    results = {}
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2):
            out = os.path.join(tmp, f"n{n}.json")
            cmd = [mpiexec(), "-n", str(n), sys.executable, os.path.abspath(__file__),
                   "--worker", "--out", out] + (["--quick"] if quick else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
            with open(out) as f:
                results[n] = json.load(f)
    one, two = results[1]["step"], results[2]["step"]
    return {"step": {"1": one, "2": two,
                     "throughput_ratio": two["samples_per_s"] / one["samples_per_s"]},
            "all_reduce": results[2]["all_reduce"], "load_average": os.getloadavg()[0],
            "cores": os.cpu_count()}


def report(r: dict) -> str:
    s = r["step"]
    lines = [f"VAE training step, batch {s['1']['batch_per_rank']} per process, 1 thread each "
             f"(1-min load {r['load_average']:.1f} on {r['cores']} cores):",
             f"  1 process : {s['1']['step_s'] * 1e3:7.1f} ms/step "
             f"{s['1']['samples_per_s']:8.0f} samples/s",
             f"  2 processes: {s['2']['step_s'] * 1e3:7.1f} ms/step "
             f"{s['2']['samples_per_s']:8.0f} samples/s   ratio {s['throughput_ratio']:.2f}x",
             "all-reduce, float32, 2 processes (slowest rank's mean time):",
             "   MB |  MPI ms  algbw GB/s  busbw GB/s |   tl ms  algbw GB/s  busbw GB/s"]
    for row in r["all_reduce"]:
        m, t = row["mpi"], row["tl"]
        lines.append(f"  {row['MB']:3d} | {m['s'] * 1e3:7.2f} {m['algbw_GBps']:11.2f} "
                     f"{m['busbw_GBps']:11.2f} | {t['s'] * 1e3:7.2f} {t['algbw_GBps']:11.2f} "
                     f"{t['busbw_GBps']:11.2f}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer steps and sizes")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.quick, args.out)
        return {}
    r = run(args.quick)
    print(report(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    return r


if __name__ == "__main__":
    main()
