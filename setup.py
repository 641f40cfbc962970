"""Install tinylatent: `pip install -e .` (add [test], [bench] or [gpu] for the extras)."""
from setuptools import find_packages, setup

setup(
    name="tinylatent",
    version="0.1.0",
    description="A readable reverse-mode autodiff library on NumPy/CuPy with Numba and CUDA "
                "kernels, and the unsupervised deep-learning models built on it.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tinylatent", "tinylatent.*", "kernels", "kernels.*"]),
    package_data={"tinylatent": ["data/embedded/*", "data/embedded/*.md", "eval/weights/*.npz"],
                  "kernels": ["cuda/*.cu", "cuda/*.cuh"]},
    include_package_data=True,
    install_requires=["numpy>=1.24", "scipy>=1.10", "numba>=0.58", "matplotlib>=3.7",
                      "tqdm>=4.60"],
    extras_require={
        "gpu": ["cupy-cuda12x>=13"],
        "test": ["pytest>=7", "hypothesis>=6.80", "scikit-learn>=1.3", "threadpoolctl>=3"],
        # torch is pinned: this build is the one the benchmark figures were measured against,
        # and an unpinned torch pulls several GB of CUDA wheels.
        "bench": ["torch==2.13.0", "pytest>=7", "hypothesis>=6.80", "scikit-learn>=1.3",
                  "threadpoolctl>=3"],
    },
)
