"""1 -> 2 process scaling of a DDP training step and all-reduce bandwidth (see
benchmarks/bench_distributed.py). The run fails if a check fails (every all-reduce equals the
known sum; the replicas' parameters agree after the timed steps); the figures are printed,
never asserted, and not written to results/ (a loaded machine gives no record worth keeping).
"""
import pytest

import tinylatent.distributed as dist
from benchmarks import bench_distributed


@pytest.mark.skipif(not dist.is_available(),
                    reason="needs the `dist` extra (pip install -e '.[dist]': mpi4py + mpich)")
def test_data_parallel_scaling_and_all_reduce_bandwidth(request, capsys):
    quick = request.config.getoption("--quick")
    r = bench_distributed.run(quick=quick)
    assert r["step"]["throughput_ratio"] > 0
    # every buffer size of the mode was measured (full mode: 1-64 MB; it asserted quick's)
    assert [row["MB"] for row in r["all_reduce"]] == ([1, 4] if quick else
                                                      [1, 2, 4, 8, 16, 32, 64])
    with capsys.disabled():
        print("\n" + bench_distributed.report(r))
