"""Install tinylatent: `pip install -e .` (extras: [test], [bench], [gpu], [dist])."""
from setuptools import find_packages, setup

setup(
    name="tinylatent",
    version="0.1.0",
    description="A readable reverse-mode autodiff library on NumPy/CuPy with Numba and CUDA "
                "kernels, and the unsupervised deep-learning models built on it.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # One top-level package only: the fast kernels live in tinylatent.kernels (PyPI has an
    # unrelated top-level `kernels`).
    packages=find_packages(include=["tinylatent", "tinylatent.*"]),
    package_data={"tinylatent": ["data/embedded/*", "data/embedded/*.md", "eval/weights/*.npz",
                                 "kernels/cuda/*.cu", "kernels/cuda/*.cuh"]},
    include_package_data=True,
    install_requires=["numpy>=1.24", "scipy>=1.10", "numba>=0.58", "matplotlib>=3.7",
                      "tqdm>=4.60"],
    extras_require={
        # the NCCL path of tl.distributed (cupy.cuda.nccl) needs CuPy and, to start the ranks
        # and share NCCL's id, the `dist` extra too
        # ml_dtypes: the bfloat16 NumPy dtype that tl.bfloat16 and CuPy's bfloat16 arrays are
        # (NumPy has none; CuPy takes bfloat16 only through it)
        "gpu": ["cupy-cuda12x>=13", "ml-dtypes>=0.5"],
        # tl.distributed on CPUs: mpi4py plus an MPI library from PyPI (the MPICH wheel also
        # gives `mpiexec`); with a system MPI instead, `pip install mpi4py` alone is enough
        "dist": ["mpi4py>=4", "mpich>=4"],
        # hmmlearn (tests/test_hmm.py) and gensim (word2vec's side by side): references in the
        # tests and benchmarks only, never imported by tinylatent; ml_dtypes for the bfloat16
        # tests (the CPU references and the emulated _bf16 kernels)
        "test": ["pytest>=7", "hypothesis>=6.80", "scikit-learn>=1.3", "threadpoolctl>=3",
                 "hmmlearn>=0.3", "gensim>=4.3", "ml-dtypes>=0.5"],
        # torch is NOT in this extra: on PyPI `torch==2.13.0` for Linux is the CUDA build
        # (plus ~17 NVIDIA wheels, several GB), and an extra cannot name another index. The
        # benchmarks compare against the CPU build, installed from PyTorch's CPU index:
        #   pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
        # (benchmarks/README.md). Without torch the suite compares with recorded figures.
        "bench": ["pytest>=7", "hypothesis>=6.80", "scikit-learn>=1.3", "threadpoolctl>=3",
                  "hmmlearn>=0.3", "gensim>=4.3"],
    },
)
