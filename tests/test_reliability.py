"""Regression tests for the defects found by attacking main as a hostile user would (issue 12):
graph pinning by detach, silent axis wrap-around, integer inputs of floating functions,
negative indices, half-applied load_state_dict, state mutated before checks, unchecked conv
arguments, checkpoint file modes and litter, errors without the file, data sources that
fall back silently, --resume with changed arguments, errors that leak internals, NaN
gradients where the derivative is finite, and the anomaly mode."""
import gc
import gzip
import hashlib
import importlib.util
import io
import json
import os
import stat
import subprocess
import sys
import tracemalloc
import warnings
import weakref
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl
import tinylatent.nn.functional as F
from tinylatent.data import mnist as mnist_mod
from tinylatent.serialization import CheckpointError
from test_ops_elementwise import UNARY

ROOT = Path(__file__).resolve().parent.parent


# ============================================================ 1. detach must not pin the graph
def _small_conv_step(model, x):
    return (model(x) ** 2).mean()


def test_detach_keeps_no_reference_to_the_graph():
    x = tl.randn(4, 3, requires_grad=True)
    h = (x * 2).exp()                    # an activation the graph saves
    alive = weakref.ref(h)
    loss = h.sum()
    kept = loss.detach()
    del h, loss
    gc.collect()
    assert alive() is None, "the detached tensor keeps the graph's activations alive"
    assert kept._base is None or kept._base._ctx is None
    # version sharing still protects a graph that saved the detached tensor's memory
    y = tl.randn(3, requires_grad=True)
    z = y * 1.0
    d = z.detach()
    w = z.exp()                           # Exp saves its output, not z; use z in a Mul
    v = (z * z).sum()
    d.add_(1.0)                           # writes z's memory through the detached view
    with pytest.raises(RuntimeError, match="modified in place"):
        v.backward()
    del w


def test_kept_detached_losses_have_flat_memory():
    """The usual logging pattern, losses.append(loss.detach()), for 1,000 steps: memory
    traced by tracemalloc must not grow with the number of steps kept (on main each kept
    scalar held its step's whole graph: every activation)."""
    tl.manual_seed(0)
    model = tl.nn.Sequential(tl.nn.Conv2d(1, 8, 3, padding=1), tl.nn.ReLU(),
                             tl.nn.Conv2d(8, 8, 3, padding=1))
    x = tl.randn(4, 1, 16, 16)
    kept = []
    for _ in range(50):                   # warm-up: caches, first allocations
        kept.append(_small_conv_step(model, x).detach())
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        marks = []
        for step in range(1000):
            loss = _small_conv_step(model, x)
            kept.append(loss.detach())
            if step in (99, 999):
                gc.collect()
                marks.append(tracemalloc.get_traced_memory()[0] - base)
    finally:
        tracemalloc.stop()
    # 900 more kept scalars: a few hundred bytes each (the Tensor objects), never an
    # activation (8 x 8 x 16 x 16 float32 = 64 KiB per step on main)
    per_step = (marks[1] - marks[0]) / 900
    assert per_step < 2048, f"memory grows {per_step:.0f} bytes per kept loss"
    assert len(kept) == 1050 and np.isfinite(float(kept[-1]))


# ============================================================ 2. axes validated in one helper
A2 = tl.ones(2, 3)
AXIS_CALLS = {
    "cat": lambda: tl.cat([A2, A2], axis=2),
    "stack": lambda: tl.stack([A2, A2], axis=3),
    "cumsum": lambda: tl.cumsum(A2, 2),
    "sum": lambda: A2.sum(axis=2),
    "mean": lambda: A2.mean(axis=-3),
    "max": lambda: A2.max(axis=2),
    "var": lambda: A2.var(axis=5),
    "logsumexp": lambda: tl.logsumexp(A2, axis=2),
    "softmax": lambda: tl.softmax(A2, axis=2),
    "log_softmax": lambda: tl.log_softmax(A2, axis=-3),
    "argmax": lambda: tl.argmax(A2, axis=2),
    "argsort": lambda: tl.argsort(A2, axis=2),
    "sort": lambda: tl.sort(A2, axis=2),
    "topk": lambda: tl.topk(A2, 1, axis=2),
    "all": lambda: tl.all(A2 > 0, axis=2),
    "any": lambda: tl.any(A2 > 0, axis=2),
    "flip": lambda: tl.flip(A2, 2),
    "roll": lambda: tl.roll(A2, 1, 2),
    "split": lambda: tl.split(A2, 1, axis=2),
    "chunk": lambda: tl.chunk(A2, 2, axis=2),
    "squeeze": lambda: tl.squeeze(A2, 2),
    "unsqueeze": lambda: tl.unsqueeze(A2, 4),
    "transpose": lambda: tl.transpose(A2, 0, 2),
    "permute": lambda: tl.permute(A2, (0, 2)),
    "flatten": lambda: tl.flatten(A2, 0, 2),
    "take_along_axis": lambda: tl.gather(A2, 2, tl.zeros(2, 3, dtype=tl.int64)),
    "index_select": lambda: tl.index_select(A2, 2, tl.tensor([0])),
    "index_add": lambda: tl.index_add(A2, 2, tl.tensor([0]), tl.ones(2, 1)),
    "scatter_add": lambda: tl.scatter_add(A2, 2, tl.zeros(2, 3, dtype=tl.int64), A2),
    "Unflatten": lambda: tl.nn.Unflatten(2, (3, 1))(A2),
}


@pytest.mark.parametrize("op", sorted(AXIS_CALLS))
def test_out_of_range_axis_raises_naming_op_axis_and_ndim(op):
    with pytest.raises(IndexError) as info:
        AXIS_CALLS[op]()
    msg = str(info.value)
    assert msg.startswith(f"{op}: axis ") and "2 dimensions" in msg, msg


def test_valid_axes_still_work():
    assert tl.cat([A2, A2], axis=-1).shape == (2, 6)
    assert tl.stack([A2, A2], axis=2).shape == (2, 3, 2)
    assert tl.stack([A2, A2], axis=-3).shape == (2, 2, 3)
    assert tl.unsqueeze(A2, -1).shape == (2, 3, 1)
    assert tl.tensor(2.0).sum(0).shape == ()           # a 0-d tensor accepts axis 0 / -1
    with pytest.raises(ValueError, match="repeats an axis"):
        A2.sum(axis=(1, -1))


# ============================================================ 3. integer inputs, op table
# The rule (PyTorch's): a floating function of an integer tensor gives the default float
# dtype; functions that are closed on the integers (negation, abs, relu, integer powers,
# integer arithmetic) keep the integer dtype; an explicit cast is a cast.
INTEGER_RESULT = {"neg", "abs", "abs_operator", "relu", "square", "pow_2", "pow_3", "pow_1",
                  "rsub_scalar", "clone", "contiguous"}
EXPLICIT_DTYPE = {"cast_f32_roundtrip": np.float64}


@pytest.mark.parametrize("case", UNARY, ids=lambda c: c.name)
def test_integer_input_follows_the_dtype_rule(case):
    x = tl.tensor(np.array([[1, 2, 3], [3, 1, 2]], dtype=np.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # NumPy casting complaints count as failures
        y = case.fn(x)
    want_dtype = (np.int64 if case.name in INTEGER_RESULT
                  else EXPLICIT_DTYPE.get(case.name, tl.get_default_dtype()))
    assert y.dtype == want_dtype, f"{case.name}: int64 in, {y.dtype} out"
    ref = np.asarray(case.ref(x.numpy().astype(np.float64)))
    np.testing.assert_allclose(y.numpy().astype(np.float64), ref, rtol=2e-6, atol=1e-6)


# ============================================================ 4. negative / out-of-range indices
@pytest.mark.parametrize("call, value", [
    (lambda: tl.nn.Embedding(5, 2)(tl.tensor([0, -1])), "-1"),
    (lambda: tl.nn.Embedding(5, 2)(tl.tensor([5])), "5"),
    (lambda: tl.gather(A2, 1, tl.tensor([[0, -1, 0], [0, 0, 0]])), "-1"),
    (lambda: tl.gather(A2, 1, tl.tensor([[0, 3, 0], [0, 0, 0]])), "3"),
    (lambda: tl.index_select(A2, 1, tl.tensor([-1])), "-1"),
    (lambda: tl.index_select(A2, 0, tl.tensor([2])), "2"),
    (lambda: tl.index_add(A2, 1, tl.tensor([-1]), tl.ones(2, 1)), "-1"),
    (lambda: tl.scatter_add(A2, 1, tl.tensor([[0, -1, 0], [0, 0, 0]]), A2), "-1"),
], ids=["embedding-neg", "embedding-big", "gather-neg", "gather-big", "index_select-neg",
        "index_select-big", "index_add-neg", "scatter_add-neg"])
def test_out_of_range_indices_raise_naming_op_and_value(call, value):
    with pytest.raises(IndexError, match=rf"(embedding|take_along_axis|index_select|"
                                         rf"index_add|scatter_add): index {value} is out"):
        call()


# ============================================================ 5. load_state_dict: all or nothing
def test_optimizer_load_state_dict_failure_keeps_current_state():
    p = tl.nn.Parameter(tl.ones(3))
    opt = tl.optim.Adam([p], lr=0.1)
    p.grad = tl.ones(3)
    opt.step()
    before = {k: np.array(v) if hasattr(v, "shape") else v for k, v in opt.state[p].items()}
    bad = opt.state_dict()
    bad = {"param_groups": [dict(g, lr=0.5) for g in bad["param_groups"]],
           "state": {k: dict(v, exp_avg_sq=np.zeros(4, np.float32))
                     for k, v in bad["state"].items()}}
    with pytest.raises(ValueError, match="exp_avg_sq.*shape"):
        opt.load_state_dict(bad)
    assert p in opt.state, "the failed load wiped the optimizer state"
    for k, v in before.items():
        np.testing.assert_array_equal(np.asarray(opt.state[p][k]), v)
    assert opt.param_groups[0]["lr"] == 0.1


def test_module_load_state_dict_bad_last_key_changes_nothing():
    m = tl.nn.Linear(3, 2)
    w = m.weight.detach().numpy().copy()
    with pytest.raises(RuntimeError, match="'bias'"):
        m.load_state_dict({"weight": np.zeros((2, 3), np.float32),
                           "bias": np.array(["x", "y"])})
    np.testing.assert_array_equal(m.weight.detach().numpy(), w)


# ============================================================ 6. BatchNorm checks before state
def test_batchnorm_rejected_batch_changes_no_state():
    bn = tl.nn.BatchNorm1d(3, momentum=None)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(tl.randn(1, 3))
    assert int(bn.num_batches_tracked.item()) == 0
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    bn(tl.randn(4, 3))                    # a good batch: counted, cumulative average 1/1
    assert int(bn.num_batches_tracked.item()) == 1


# ============================================================ 7. Conv construction validation
@pytest.mark.parametrize("kwargs, arg", [
    (dict(kernel_size=0), "kernel_size"),
    (dict(kernel_size=(3, -1)), "kernel_size"),
    (dict(kernel_size=3, stride=0), "stride"),
    (dict(kernel_size=3, dilation=0), "dilation"),
    (dict(kernel_size=3, padding=-1), "padding"),
    (dict(kernel_size=3, in_channels=0), "in_channels"),
    (dict(kernel_size=3, out_channels=-2), "out_channels"),
    (dict(kernel_size=3, groups=0), "groups"),
    (dict(kernel_size=3, groups=2), "divisible by groups"),
])
@pytest.mark.parametrize("layer", ["Conv2d", "Conv1d", "ConvTranspose2d"])
def test_conv_construction_rejects_bad_arguments(layer, kwargs, arg):
    kw = dict(in_channels=3, out_channels=8) | kwargs
    if layer == "Conv1d" and isinstance(kw["kernel_size"], tuple):
        kw["kernel_size"] = kw["kernel_size"][1:]
    with pytest.raises(ValueError, match=f"{layer}: .*{arg}"):
        getattr(tl.nn, layer)(**kw)


# ============================================================ 8. checkpoint file modes
@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_checkpoint_mode_follows_umask_and_existing_file_keeps_its_mode(tmp_path, umask_022):
    path = tmp_path / "ck.npz"
    tl.save({"w": tl.ones(2)}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    os.chmod(path, 0o640)
    tl.save({"w": tl.zeros(2)}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    os.umask(0o077)
    other = tmp_path / "private.npz"
    tl.save({}, other)
    assert stat.S_IMODE(other.stat().st_mode) == 0o600


# ============================================================ weak: checkpoints
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_of_killed_saves_are_removed(tmp_path):
    path = tmp_path / "ck.npz"
    stale = tmp_path / f".ck.npz.tl-save-{_dead_pid()}-abc123.tmp"
    running = tmp_path / f".ck.npz.tl-save-{os.getppid()}-def456.tmp"   # a live process
    other = tmp_path / ".other.npz.tl-save-1-x.tmp"                       # another target
    for f in (stale, running, other):
        f.write_bytes(b"partial")
    tl.save({"w": tl.ones(2)}, path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert stale.name not in names
    assert running.name in names and other.name in names and "ck.npz" in names


def test_temp_file_names_say_what_they_are(tmp_path, monkeypatch):
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        return real(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    tl.save({}, tmp_path / "model.npz")
    assert seen and seen[0].startswith(f".model.npz.tl-save-{os.getpid()}-") \
        and seen[0].endswith(".tmp")


def _zip_with(path, header, entries):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        b = io.BytesIO()
        np.lib.format.write_array(b, np.frombuffer(header.encode(), np.uint8))
        z.writestr("__header__.npy", b.getvalue())
        for k, v in entries.items():
            z.writestr(k + ".npy", v)


def _patch_zip_field(path, local_offset, central_offset, value):
    data = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        i = data.find(sig)
        while i >= 0:
            data[i + off:i + off + 2] = value.to_bytes(2, "little")
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))


def _encrypted(path):
    tl.save({"w": tl.ones(3)}, path)
    _patch_zip_field(path, 6, 8, 1)            # general purpose flag bit 0: encrypted


def _unknown_compression(path):
    tl.save({"w": tl.ones(3)}, path)
    _patch_zip_field(path, 8, 10, 99)          # compression method 99


def _huge_declared_size(path):
    header = json.dumps({"format": "tinylatent-checkpoint", "version": 1, "root": {
        "t": "ndarray", "key": "a0", "dtype": "<f8", "shape": [2 ** 42]}})
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": "<f8", "fortran_order": False,
                                             "shape": (2 ** 42,)})
    _zip_with(path, header, {"a0": b.getvalue() + bytes(64)})


def _deep_header(path):
    depth = 5000
    root = '{"t":"list","items":[' * depth + '{"t":"none"}' + "]}" * depth
    _zip_with(path, '{"format":"tinylatent-checkpoint","version":1,"root":' + root + "}", {})


@pytest.mark.parametrize("make", [_encrypted, _unknown_compression, _huge_declared_size,
                                  _deep_header],
                         ids=["encrypted", "unknown-compression", "huge-declared-size",
                              "deep-header"])
def test_hostile_checkpoints_raise_checkpoint_error_naming_the_file(tmp_path, make):
    path = tmp_path / "hostile.npz"
    make(path)
    with pytest.raises(CheckpointError, match="hostile.npz"):
        tl.load(path)


def test_empty_checkpoint_path_is_named():
    with pytest.raises(ValueError, match="path is empty"):
        tl.save({}, "")
    with pytest.raises(ValueError, match="path is empty"):
        tl.load("")


# ============================================================ weak: data sources
def _idx(arr):
    return bytes([0, 0, 8, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes() + \
        arr.astype(">u1").tobytes()


def _write_split(directory, split="test", n=3):
    directory.mkdir(parents=True, exist_ok=True)
    img, lab = mnist_mod.FILES[split]
    (directory / (img + ".gz")).write_bytes(gzip.compress(_idx(np.zeros((n, 28, 28)))))
    (directory / (lab + ".gz")).write_bytes(gzip.compress(_idx(np.zeros(n))))


@pytest.fixture
def data_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")
    monkeypatch.setenv("TINYLATENT_DATA", str(tmp_path / "cache"))
    # a machine's system copy (Debian's dataset-fashion-mnist) would be found before the
    # download these tests exercise
    monkeypatch.setattr(mnist_mod, "SYSTEM_DATA_DIRS", ())
    return tmp_path


def test_explicit_data_dir_that_is_missing_raises(data_env):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mnist_mod.load_mnist("mnist", "test", data_dir=data_env / "nope")


def test_explicit_data_dir_lacking_a_file_raises_naming_it(data_env):
    d = data_env / "partial"
    _write_split(d)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="lacks t10k-labels-idx1-ubyte"):
        mnist_mod.load_mnist("mnist", "test", data_dir=d)


def test_cached_file_is_sha256_verified_on_first_use_and_recorded(data_env, monkeypatch):
    cache = data_env / "cache" / "mnist"
    _write_split(cache)
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in cache.iterdir()}
    monkeypatch.setitem(mnist_mod.SHA256, "mnist", dict(sums))
    x, _ = mnist_mod.load_mnist("mnist", "test")
    assert x.shape == (3, 28, 28)
    records = sorted(p.name for p in cache.glob("*.sha256"))
    assert records == ["t10k-images-idx3-ubyte.gz.sha256", "t10k-labels-idx1-ubyte.gz.sha256"]
    # a cached file that is not the published one is refused, naming it
    monkeypatch.setitem(mnist_mod.SHA256, "mnist",
                        dict(sums, **{"t10k-images-idx3-ubyte.gz": "0" * 64}))
    with pytest.raises(mnist_mod.IDXFormatError,
                       match="t10k-images-idx3-ubyte.gz: SHA-256 .* does not match"):
        mnist_mod.load_mnist("mnist", "test")


def test_idx_header_whose_shape_product_overflows_names_the_file(tmp_path):
    # 2**31 * 2**31 * 4 = 2**64 elements: 0 in int64 arithmetic, so on main the header-only
    # file "matched" and NumPy's reshape raised a bare ValueError
    path = tmp_path / "overflow-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + np.array([2**31, 2**31, 4], ">u4").tobytes())
    with pytest.raises(mnist_mod.IDXFormatError, match="overflow-idx3-ubyte.*wrong size"):
        mnist_mod.read_idx(path)


def test_failed_download_write_leaves_no_part_file_and_says_what_failed(data_env,
                                                                       monkeypatch):
    monkeypatch.delenv("TINYLATENT_OFFLINE")
    blob = gzip.compress(_idx(np.zeros(3)))

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False
    monkeypatch.setattr(mnist_mod.urllib.request, "urlopen",
                        lambda url, timeout: Response(blob))
    monkeypatch.setitem(mnist_mod.SHA256, "fashion-mnist",
                        {k: hashlib.sha256(blob).hexdigest()
                         for k in mnist_mod.SHA256["fashion-mnist"]})

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()
            return False

        def write(self, data):
            raise OSError(27, "File too large")
    monkeypatch.setattr(mnist_mod.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    mnist_mod._unreachable.clear()
    try:
        with pytest.raises(FileNotFoundError, match="could not write it to .*File too large"):
            mnist_mod.load_mnist("fashion-mnist", "test")
    finally:
        mnist_mod._unreachable.clear()
    leftovers = list((data_env / "cache").rglob("*.part"))
    assert leftovers == []


# ============================================================ weak: --resume arguments
def test_check_resume_args_reports_the_winner_and_refuses_the_rest():
    saved = {"lr": 1e-3, "batch_size": 128, "epochs": 10, "resume": False}
    from tinylatent.serialization import check_resume_args
    said = []
    check_resume_args(saved, dict(saved, epochs=20, resume=True), ("epochs",), log=said.append)
    assert said == ["resume: --epochs was 10 in the checkpoint, 20 now: using 20"]
    with pytest.raises(ValueError, match=r"--batch-size: checkpoint 128, now 64; "
                                         r"--lr: checkpoint 0.001, now 0.01"):
        check_resume_args(saved, dict(saved, lr=1e-2, batch_size=64), ("epochs",))


@pytest.fixture(scope="module")
def vae_example():
    spec = importlib.util.spec_from_file_location("vae_mnist_example_reliability",
                                                  ROOT / "examples" / "vae_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vae_example_resume_with_changed_lr_is_refused(vae_example, data_env):
    out = str(data_env / "run")
    common = ["--limit-train-batches", "2", "--latent-dim", "2", "--out", out]
    vae_example.main(common + ["--epochs", "1"])
    with pytest.raises(SystemExit, match="--lr: checkpoint 0.001, now 0.01"):
        vae_example.main(common + ["--epochs", "2", "--resume", "--lr", "0.01"])
    history = vae_example.main(common + ["--epochs", "2", "--resume"])   # longer: allowed
    assert [h["epoch"] for h in history] == [1, 2]


# ============================================================ weak: errors that leaked internals
def test_linear_on_a_0d_tensor_says_so():
    with pytest.raises(ValueError, match="Linear: input must have at least 1 dimension"):
        tl.nn.Linear(3, 2)(tl.tensor(1.0))


@pytest.mark.parametrize("hx_shape", [(1, 2, 4), (2, 2, 4)])
def test_lstm_state_given_as_one_tensor_says_so(hx_shape):
    lstm = tl.nn.LSTM(3, 4)
    with pytest.raises(TypeError, match=r"LSTM: hx must be a tuple \(h0, c0\)"):
        lstm(tl.randn(5, 2, 3), tl.zeros(*hx_shape))
    with pytest.raises(TypeError, match=r"LSTMCell: hx must be a tuple \(h0, c0\)"):
        tl.nn.LSTMCell(3, 4)(tl.randn(2, 3), tl.zeros(2, 4))


def test_multihead_attention_batch_mismatch_says_so():
    mha = tl.nn.MultiheadAttention(8, 2)
    with pytest.raises(ValueError, match="MultiheadAttention: query .* same batch size"):
        mha(tl.randn(5, 2, 8), tl.randn(6, 3, 8), tl.randn(6, 3, 8))


def test_view_of_a_non_contiguous_tensor_raises_and_points_to_reshape():
    x = tl.tensor(np.arange(6.0).reshape(2, 3))
    with pytest.raises(RuntimeError, match=r"view: .*not contiguous.*reshape"):
        x.T.view(-1)
    v = x.view(3, 2)                      # a real view: writes reach the original
    v[0, 0] = 100.0
    assert float(x[0, 0]) == 100.0
    assert x.T.reshape(-1).shape == (6,)


# ============================================================ weak: finite gradients
def test_pow_zero_gradient_at_zero_is_zero():
    x = tl.tensor([0.0, 2.0], requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


@pytest.mark.parametrize("p", [2.0, 3.0])
def test_normalize_of_a_zero_vector_has_a_finite_gradient(p):
    x = tl.tensor(np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]]), requires_grad=True)
    (F.normalize(x, p=p) * tl.tensor(np.array([1.0, 2.0, 3.0]))).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(F.normalize(x, p=p).detach().numpy()[1],
                               np.array([3.0, 4.0, 0.0]) / (3.0 ** p + 4.0 ** p) ** (1 / p))


@pytest.mark.parametrize("fn", ["var", "std"])
def test_var_and_std_of_one_element_are_nan_with_a_warning(fn):
    x = tl.tensor([3.0])
    with pytest.warns(RuntimeWarning, match="degrees of freedom"):
        y = getattr(x, fn)()
    assert np.isnan(float(y))
    assert float(getattr(x, fn)(correction=0)) == 0.0       # biased: defined, no warning


# ============================================================ anomaly mode
def _make_nan_forward(x):
    return tl.log(x - 1.0)                # log(-1) = NaN: created on this line


def test_anomaly_mode_names_the_forward_op_shapes_and_creation_site():
    x = tl.tensor([0.0, 2.0], requires_grad=True)
    with tl.autograd.detect_anomaly():
        with pytest.raises(tl.autograd.AnomalyError) as info:
            _make_nan_forward(x)
    msg = str(info.value)
    assert "Log forward" in msg and "(2,)" in msg and "1 NaN" in msg
    assert f"{__file__}:" in msg and "_make_nan_forward" in msg and "tl.log(x - 1.0)" in msg


def test_anomaly_mode_names_the_backward_op_and_where_it_was_created():
    x = tl.tensor([0.0, 4.0], requires_grad=True)

    @tl.autograd.detect_anomaly()
    def run():
        y = x.sqrt()                      # finite forward, infinite gradient at 0
        (y * 2).sum().backward()
    with pytest.raises(tl.autograd.AnomalyError) as info:
        run()
    msg = str(info.value)
    assert "Sqrt backward" in msg and "1 infinite" in msg and "y = x.sqrt()" in msg


def test_anomaly_mode_is_off_by_default_and_costs_nothing_when_off():
    plain = tl.autograd.Function.__dict__["apply"]
    assert not tl.autograd.is_anomaly_enabled()
    tl.autograd.set_detect_anomaly(True)
    try:
        assert tl.autograd.is_anomaly_enabled()
        with pytest.raises(tl.autograd.AnomalyError, match="Div forward"):
            tl.tensor([1.0]) / tl.tensor([0.0])
    finally:
        tl.autograd.set_detect_anomaly(False)
    # off again: the plain apply is back (no check, no flag test in the hot path), and a
    # NaN passes silently, as it did before
    assert tl.autograd.Function.__dict__["apply"] is plain
    assert tl.autograd._anomaly_backward_check is None
    with np.errstate(all="ignore"):
        assert np.isinf(float(tl.tensor([1.0]) / tl.tensor([0.0])))
