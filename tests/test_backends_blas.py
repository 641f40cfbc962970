"""tl.backends.blas_info: which OpenBLAS kernel set NumPy's matmuls run, and why."""
import os
import subprocess
import sys

import pytest

import tinylatent as tl
from tinylatent.backends.blas import describe


def test_blas_info_reports_the_loaded_openblas():
    info = tl.backends.blas_info()
    assert set(info) == {"openblas", "OPENBLAS_CORETYPE", "cpu_avx512"}
    assert info["OPENBLAS_CORETYPE"] == os.environ.get("OPENBLAS_CORETYPE")
    for path, core in info["openblas"]:
        assert os.path.exists(path) and core
        assert core in describe()


def test_describe_names_the_environment_choice():
    info = tl.backends.blas_info()
    if not info["openblas"] or "x86" not in os.uname().machine.replace("_", ""):
        pytest.skip("NumPy's BLAS here is not an x86 OpenBLAS that reports its kernel set")
    env = dict(os.environ, OPENBLAS_CORETYPE="Nehalem")    # SSE4.2: a set any x86-64 of this decade runs
    out = subprocess.run([sys.executable, "-c", "from tinylatent.backends.blas import describe;"
                          " print(describe())"], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__))).stdout
    assert "OPENBLAS_CORETYPE=Nehalem in the environment" in out
    assert "OpenBLAS Nehalem kernels" in out
