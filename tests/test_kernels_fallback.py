"""How the fast path fails (issue 10): Numba missing -> the reference runs and one warning
says why; Numba unable to write its cache -> kernels cached in a temporary directory, one
warning; any other error surfaces. The same for CuPy. Each case runs in a fresh subprocess
(the backends are loaded once per process)."""
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

import tinylatent as tl
from tinylatent.kernels import dispatch

ROOT = os.path.dirname(os.path.dirname(tl.__file__))
needs_numba = pytest.mark.skipif(not dispatch.numba_available(), reason="Numba not importable")

# Imports of `name` fail as they would if the package were not installed (or broken).
_BLOCK_IMPORT = """
import sys
class _Block:
    def find_spec(self, fullname, path=None, target=None):
        if fullname == {name!r} or fullname.startswith({name!r} + "."):
            raise ImportError({message!r}, name={error_name!r})
        return None
sys.meta_path.insert(0, _Block())
"""

# A Conv2d model trained for two Adam steps, printing the conv's grad_fn, how many times
# Adam's fused kernel ran, and every warning raised.
_TRAIN = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import tinylatent as tl
    from tinylatent.optim import adam
    model = tl.nn.Sequential(tl.nn.Conv2d(2, 3, 3), tl.nn.Flatten(), tl.nn.Linear(27, 1))
    opt = tl.optim.Adam(model.parameters(), lr=1e-2)
    fused_calls = []
    for step in range(2):
        y = model[0](tl.randn(4, 2, 5, 5))
        loss = model[2](model[1](y)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        if adam._fused_module() is not None and step == 0:
            kernel = adam._fused_module().adam_step
            adam._fused_module().adam_step = lambda *a: (fused_calls.append(1), kernel(*a))
        opt.step()
print("grad_fn", y.grad_fn.fn.__name__)
print("fused", len(fused_calls))
for w in caught:
    print("warning", w.category.__name__, str(w.message).replace("\\n", " "))
"""


def _run(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.pop("TINYLATENT_KERNELS", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=full_env, timeout=600)


def _lines(out: subprocess.CompletedProcess, prefix: str) -> list:
    return [ln[len(prefix) + 1:] for ln in out.stdout.splitlines() if ln.startswith(prefix)]


def test_numba_missing_runs_the_reference_and_warns_once():
    code = _BLOCK_IMPORT.format(name="numba", message="No module named 'numba'",
                                error_name="numba") + _TRAIN
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert _lines(out, "grad_fn") != ["Conv2dFn"]            # the reference ran
    assert _lines(out, "fused") == ["0"]                      # Adam's NumPy reference ran
    warned = _lines(out, "warning")
    assert len(warned) == 1, warned
    assert warned[0].startswith("RuntimeWarning tinylatent: Numba is not installed")


def test_a_broken_numba_is_an_error_not_a_silent_fallback():
    code = _BLOCK_IMPORT.format(name="numba", message="Numba needs NumPy 1.0 (simulated)",
                                error_name=None) + _TRAIN
    out = _run(code)
    assert out.returncode != 0
    assert "Numba needs NumPy 1.0 (simulated)" in out.stderr


@needs_numba
def test_unwritable_numba_cache_compiles_to_a_temporary_dir_and_warns_once(tmp_path):
    """A read-only install with an unwritable HOME and NUMBA_CACHE_DIR: Numba's cache
    locators find no writable directory. (Simulated at Numba's own writability check, as
    root can write anywhere: every directory but the temporary one we create is denied.)"""
    readonly = tmp_path / "readonly-cache"
    deny = textwrap.dedent("""
        import numba.core.caching as caching
        _real = caching._CacheLocator.ensure_cache_path
        def _ensure(self):
            if "tinylatent-numba-" in self.get_cache_path():
                return _real(self)
            raise PermissionError(13, "Permission denied (simulated)", self.get_cache_path())
        caching._CacheLocator.ensure_cache_path = _ensure
    """)
    out = _run(deny + _TRAIN, env={"NUMBA_CACHE_DIR": str(readonly),
                                   "HOME": str(tmp_path / "no-such-home" / "x")})
    assert out.returncode == 0, out.stderr
    assert _lines(out, "grad_fn") == ["Conv2dFn"]             # the fast path still runs
    assert _lines(out, "fused") == ["8"]         # and Adam's fused kernel (4 params x 2 steps)
    warned = _lines(out, "warning")
    assert len(warned) == 1, warned
    assert warned[0].startswith("RuntimeWarning tinylatent: Numba cannot write its cache")
    assert not readonly.exists()


def test_load_numba_module_raises_other_errors(tmp_path, monkeypatch):
    pytest.importorskip("numba")
    (tmp_path / "tl_broken_kernels.py").write_text("raise RuntimeError('kernel typo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="kernel typo"):
        dispatch.load_numba_module("tl_broken_kernels")


def test_cupy_missing_on_a_gpu_array_runs_the_reference_and_warns_once():
    code = _BLOCK_IMPORT.format(name="cupy", message="No module named 'cupy'",
                                error_name="cupy") + textwrap.dedent("""
        import warnings
        warnings.simplefilter("always")
        from tinylatent.kernels import dispatch

        class GpuArray:  # what backend_for sees of a CuPy array
            __cuda_array_interface__ = {}

        class T:
            array = GpuArray()

        with warnings.catch_warnings(record=True) as caught:
            print("backend", dispatch.backend_for(T()), dispatch.backend_for(T()))
        for w in caught:
            print("warning", w.category.__name__, w.message)
    """)
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert _lines(out, "backend") == ["None None"]
    warned = _lines(out, "warning")
    assert len(warned) == 1 and "CuPy is not installed" in warned[0], warned


def test_unwritable_cupy_cache_moves_to_a_temporary_dir_and_warns_once(monkeypatch):
    monkeypatch.setenv("CUPY_CACHE_DIR", os.devnull + "/cupy")  # under a file: unwritable
    monkeypatch.setattr(dispatch, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dispatch._prepare_cupy_cache()
        dispatch._prepare_cupy_cache()
    new_dir = os.environ["CUPY_CACHE_DIR"]
    assert os.path.isdir(new_dir) and "tinylatent-cupy-" in new_dir
    assert len(caught) == 1 and "CuPy cannot write its kernel cache" in str(caught[0].message)
    os.rmdir(new_dir)
