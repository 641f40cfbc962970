"""The kernel switch (env var and context manager), lazy imports, double backward through
fused kernels, and the CUDA sources: each compiles with nvcc and names what the wrappers
launch."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tinylatent as tl
from tinylatent import kernels
from tinylatent.kernels import dispatch
from tinylatent.kernels.testing import graph_functions
from tinylatent.ops import attention, contrastive, conv, coupling

CUDA_DIR = os.path.join(os.path.dirname(kernels.__file__), "cuda")
needs_numba = pytest.mark.skipif(not dispatch.numba_available(), reason="Numba not importable")


def _names(x, w):
    return conv.conv2d(x, w).grad_fn.fn.__name__


@needs_numba
def test_env_var_and_context_manager_select_the_reference(monkeypatch):
    x, w = tl.randn(1, 2, 4, 4), tl.randn(3, 2, 3, 3, requires_grad=True)
    assert _names(x, w) == "Conv2dFn"
    with kernels.use_reference():
        assert _names(x, w) != "Conv2dFn"
        with kernels.use_reference():
            assert kernels.reference_forced()
        assert kernels.reference_forced()
    assert not kernels.reference_forced()
    monkeypatch.setenv("TINYLATENT_KERNELS", "reference")
    assert kernels.reference_forced() and _names(x, w) != "Conv2dFn"
    monkeypatch.setenv("TINYLATENT_KERNELS", "auto")
    assert _names(x, w) == "Conv2dFn"
    monkeypatch.setenv("TINYLATENT_KERNELS", "bogus")
    with pytest.raises(ValueError, match="TINYLATENT_KERNELS='bogus'"):
        conv.conv2d(x, w)


def test_import_is_lazy_and_reference_runs_without_numba():
    code = ("import sys, os; os.environ['TINYLATENT_KERNELS'] = 'reference'\n"
            "import tinylatent as tl\n"
            "from tinylatent.ops import conv, contrastive\n"
            "assert 'numba' not in sys.modules and 'cupy' not in sys.modules\n"
            "y = conv.conv2d(tl.randn(1, 1, 3, 3), tl.randn(1, 1, 2, 2))\n"
            "z = contrastive.nt_xent(tl.randn(2, 3), tl.randn(2, 3))\n"
            "assert 'numba' not in sys.modules, 'the reference path imported numba'\n"
            "import tinylatent.kernels\n"
            "assert 'numba' not in sys.modules, 'importing tinylatent.kernels imported numba'\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(tl.__file__)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


_SHADOW_KERNELS = {
    # A stand-in for PyPI's unrelated `kernels` package: if tinylatent looked its kernels up
    # as a top-level `kernels`, this one would force the reference path (or fail to import).
    "__init__.py": "SHADOW = True\n",
    "dispatch.py": "def lookup(*args):\n    return None\n\n"
                   "def reference_forced():\n    return True\n",
}


@needs_numba
def test_fast_path_runs_with_an_unrelated_kernels_package_first_on_sys_path(tmp_path):
    """tinylatent's kernels live in tinylatent.kernels: a top-level `kernels` (PyPI has one)
    first on sys.path changes nothing: conv2d and Adam still run their Numba kernels."""
    shadow = tmp_path / "kernels"
    shadow.mkdir()
    for name, text in _SHADOW_KERNELS.items():
        (shadow / name).write_text(text)
    code = ("import sys\n"
            f"sys.path.insert(0, {str(tmp_path)!r})\n"
            "import kernels\n"
            "assert kernels.SHADOW\n"
            "import tinylatent as tl\n"
            "from tinylatent.optim import adam\n"
            "conv = tl.nn.Conv2d(2, 3, 3)\n"
            "y = conv(tl.randn(1, 2, 5, 5))\n"
            "print(y.grad_fn.fn.__name__)\n"
            "y.sum().backward()\n"
            "fused = adam._fused_module()\n"
            "calls = []\n"
            "step = fused.adam_step\n"
            "fused.adam_step = lambda *a: (calls.append(1), step(*a))\n"
            "tl.optim.Adam(conv.parameters()).step()\n"
            "print(len(calls))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(tl.__file__)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Conv2dFn", "2"], out.stdout


@needs_numba
def test_double_backward_through_fused_kernels_matches_reference():
    """Hessian-vector products through every fast Function equal the reference's."""
    rng = np.random.default_rng(0)

    def hvp_both(f, shapes):
        xs = [tl.tensor(rng.standard_normal(s)) for s in shapes]
        vs = [tl.tensor(rng.standard_normal(s)) for s in shapes]
        fast = tl.autograd.hvp(f, xs, vs)[1]
        with kernels.use_reference():
            ref = tl.autograd.hvp(f, xs, vs)[1]
        for a, b in zip(fast, ref):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-11)

    hvp_both(lambda x, w: (conv.conv2d(x, w, padding=1) ** 2).sum(), [(1, 2, 4, 4), (2, 2, 3, 3)])
    hvp_both(lambda x, w: (conv.conv_transpose2d(x, w, stride=2) ** 2).sum(),
             [(1, 2, 3, 3), (2, 2, 3, 3)])
    hvp_both(lambda q, k, v: (attention.scaled_dot_product_attention(q, k, v, is_causal=True)
                              ** 2).sum(), [(2, 3, 4), (2, 3, 4), (2, 3, 2)])
    hvp_both(lambda x, s, t: (coupling.affine_coupling(x, s, t)[0] ** 2).sum()
             + coupling.affine_coupling(x, s, t)[1].pow(2).sum(), [(3, 4)] * 3)
    hvp_both(lambda a, b: contrastive.nt_xent(a, b, 0.2), [(4, 3), (4, 3)])
    hvp_both(lambda a, b: contrastive.info_nce(a, b, None, 0.2), [(4, 3), (4, 3)])
    hvp_both(lambda x: contrastive.logsumexp(x, axis=-1).pow(2).sum(), [(3, 5)])


@needs_numba
def test_fast_paths_decline_what_they_do_not_cover():
    # float16 and grouped convolution fall back to the reference and still work
    x = tl.randn(1, 4, 5, 5)
    w = tl.randn(4, 2, 3, 3)
    assert conv.conv2d(x, w, groups=2).shape == (1, 4, 3, 3)
    h = tl.randn(2, 3).to(tl.float16)
    assert contrastive.logsumexp(h).dtype == np.float16


# ---------------------------------------------------------------------- CUDA sources
def _sources():
    return sorted(f for f in os.listdir(CUDA_DIR) if f.endswith(".cu"))


@pytest.mark.parametrize("source", _sources())
def test_cuda_source_compiles_with_nvcc(source, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found on PATH: cannot compile the CUDA sources here")
    from tinylatent.kernels import cuda
    out = subprocess.run([nvcc, "-ptx", *cuda.compile_options(cuda.BLOCK),
                          os.path.join(CUDA_DIR, source), "-o", str(tmp_path / "k.ptx")],
                         capture_output=True, text=True)
    assert out.returncode == 0, f"nvcc failed on {source}:\n{out.stderr}"
    ptx = (tmp_path / "k.ptx").read_text()
    assert ".entry" in ptx and "_f32" in ptx and "_f64" in ptx
    if source in ("activation.cu", "layernorm.cu", "flash_attention.cu", "conv.cu",
                  "contrastive.cu", "coupling.cu", "attention.cu", "embedding.cu",
                  "lstm.cu"):                                   # float16
        assert "_f16" in ptx and "cvt.f32.f16" in ptx    # (embedding.cu rounds on the host)


def test_cuda_wrappers_launch_kernels_that_exist():
    """Every (source, kernel) the Python wrappers launch is defined, for both dtypes."""
    with open(os.path.join(CUDA_DIR, "__init__.py"), encoding="utf-8") as f:
        wrapper = f.read()
    launched = set(re.findall(r'_launch\("(\w+\.cu)", "(\w+)"', wrapper))
    assert len(launched) >= 12
    for source, name in launched:
        with open(os.path.join(CUDA_DIR, source), encoding="utf-8") as f:
            code = f.read()
        macro = re.search(r"#define (TL_\w+_KERNELS)", code).group(1)
        assert re.search(rf"void {name}_##SFX\(", code), f"{name} not defined in {source}"
        assert re.search(rf"{macro}\(float, (float, )?f32\)", code) and \
            re.search(rf"{macro}\(double, (double, )?f64\)", code), f"{source}: f32 / f64"
    # and the ops the CUDA backend declares 16-bit for have their _f16 and _bf16 kernels
    from tinylatent.kernels import cuda
    sources = {"gelu": ("activation.cu", "gelu_forward"),
               "layer_norm": ("layernorm.cu", "layer_norm_forward"),
               "attention": ("flash_attention.cu", "flash_attention_forward"),
               "conv": ("conv.cu", "im2col"),
               "logsumexp": ("contrastive.cu", "row_logsumexp"),
               "info_nce": ("contrastive.cu", "row_cross_entropy"),
               "nt_xent": ("contrastive.cu", "cross_entropy_grad_symmetric"),
               "coupling": ("coupling.cu", "coupling_forward"),
               "embedding": ("embedding.cu", "embedding_backward"),
               "lstm": ("lstm.cu", "lstm_step_forward")}
    assert set(cuda.half_ops) <= set(sources), "a 16-bit op this test does not know"
    for op in cuda.half_ops:
        source, name = sources[op]
        if op == "attention":                       # both paths: flash and materialised
            with open(os.path.join(CUDA_DIR, "attention.cu"), encoding="utf-8") as f:
                code = f.read()
            assert "TL_ATTENTION_KERNELS(tl_half, float, f16)" in code
            assert "TL_ATTENTION_KERNELS(tl_bf16, float, bf16)" in code
        with open(os.path.join(CUDA_DIR, source), encoding="utf-8") as f:
            code = f.read()
        macro = re.search(r"#define (TL_\w+_KERNELS)", code).group(1)
        assert re.search(rf"{macro}\(tl_half, (float, )?f16\)", code), \
            f"{op}: no float16 kernels in {source}"
        assert re.search(rf"{macro}\(tl_bf16, (float, )?bf16\)", code), \
            f"{op}: no bfloat16 kernels in {source}"


# ---------------------------------------------------------------------- structure (issue 10)
def test_kernels_package_never_imports_ops():
    """The kernels implement raw-array backends; the ops own their fast path (no cycle)."""
    import ast
    kdir = os.path.dirname(kernels.__file__)
    for root, _, files in os.walk(kdir):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(root, f)
            with open(path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [("." * node.level) + (node.module or "")]
                for name in names:
                    assert "ops" not in name.split(".")[1:] and not name.startswith(
                        "tinylatent.ops"), f"{path} imports {name}"


def test_backends_implement_the_declared_interface():
    from tinylatent.kernels import backend, cuda
    backend.check_backend(cuda)                       # imports without CuPy
    if dispatch.numba_available():
        from tinylatent.kernels import numba as numba_backend
        backend.check_backend(numba_backend)
        assert isinstance(numba_backend, backend.KernelBackend)
    assert {"im2col", "col2im", "masked_softmax", "coupling_forward",
            "row_logsumexp"} <= set(backend.KERNELS)

    class Partial:
        name, xp = "partial", np
    with pytest.raises(TypeError, match="missing half_ops, c, scratch, matmul"):
        backend.check_backend(Partial)




@needs_numba
def test_one_logsumexp_and_one_normalize_reach_the_fused_kernel():
    from tinylatent.nn import functional as F
    assert contrastive.logsumexp is tl.logsumexp and contrastive.normalize is F.normalize
    assert F.normalize is tl.ops.linalg.normalize
    x = tl.randn(4, 6, requires_grad=True)
    target = tl.tensor(np.array([0, 1, 2, 3]))
    for out in (tl.logsumexp(x, axis=-1), x.logsumexp(axis=1), tl.log_softmax(x, axis=-1),
                F.cross_entropy(x, target)):
        assert "LogsumexpFn" in graph_functions(out)
    assert "LogsumexpFn" not in graph_functions(tl.logsumexp(x, axis=0))
    with kernels.use_reference():
        assert "LogsumexpFn" not in graph_functions(tl.logsumexp(x, axis=-1))
