"""The CUDA kernels (tinylatent/kernels/cuda/*.cu), run on the CPU through tests/cuda_emu
(g++, one OS thread per CUDA thread, a CuPy stand-in), against their reference twins in
tinylatent/ops: values and input gradients, float32 and float64, sizes past one block and
not a multiple of it, zero-sized and NaN inputs; then the bugs the emulation found (NaN
dropped on the GPU only, 0-block grids, two definitions of the block size, launches on the
wrong GPU).

The value/gradient matrix runs at a block of 64 threads (the same code as the shipped 256,
with 4x fewer OS threads to switch between on a 2-core CI machine, and more blocks at a
given size); `test_every_op_at_the_shipped_block_size` runs each op once at BLOCK itself.
The sanitizer runs (ThreadSanitizer, AddressSanitizer) are scripts/cuda_sanitize.py.
"""
import contextlib

import numpy as np
import pytest

from tinylatent import kernels
import tinylatent as tl
from cuda_emu import compiler_missing, emulated, fakecupy, to_device, to_host
from tinylatent.kernels.testing import TOLERANCES
from tinylatent.ops import attention, contrastive, conv, coupling, normalization, recurrent
from tinylatent.ops.fast import fast_backend
from tinylatent.tensor import Tensor

pytestmark = pytest.mark.skipif(bool(compiler_missing()), reason=compiler_missing())

DTYPES = [np.float32, np.float64]
TEST_BLOCK = 64


def _outputs(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _grads(outs, inputs, weights_seed, make):
    """Gradients of sum_k <out_k, w_k> for fixed random weights w_k (made by `make`): the
    vector-Jacobian product with upstream gradients w_k, so that only the op's own backward
    runs (on the emulated device, every tensor op around it would run on NumPy)."""
    rng = np.random.default_rng(weights_seed)
    ws = [make(rng.standard_normal(o.shape).astype(o.dtype)) for o in outs]
    return tl.grad(outs, inputs, ws, allow_unused=True)


def run_emulated_and_reference(name, call, arrays, block=TEST_BLOCK, seed=0,
                               twin="reference"):
    """call(*tensors) (the public op) on tensors on the emulated GPU, where it runs its
    fast Function on the CUDA kernels; then on the CPU inside use_reference(), or with
    twin="numba" on the Numba kernels: (fast, twin) lists of host arrays, the outputs then
    every input's gradient. `name` is the op, for messages."""
    before = fakecupy.LAUNCHES.copy()
    with emulated(block=block):
        ts = [Tensor._make(to_device(a), requires_grad=True) for a in arrays]
        outs = _outputs(call(*ts))
        for o in outs:
            assert isinstance(o.array, fakecupy.ndarray), f"{name}: output left the device"
        grads = _grads(outs, ts, seed, lambda a: Tensor._make(to_device(a)))
        fast = [to_host(o.array) for o in outs] + [to_host(g.array) for g in grads]
    _last_launches.clear()
    _last_launches.update(fakecupy.LAUNCHES - before)
    with kernels.use_reference() if twin == "reference" else contextlib.nullcontext():
        ts = [tl.tensor(a, requires_grad=True) for a in arrays]
        outs = _outputs(call(*ts))
        grads = _grads(outs, ts, seed, tl.tensor)
        ref = [o.detach().numpy() for o in outs] + [g.detach().numpy() for g in grads]
    return fast, ref


def assert_same(fast, ref, dtype, what):
    rtol, atol = TOLERANCES[np.dtype(dtype)]
    assert len(fast) == len(ref)
    for i, (a, b) in enumerate(zip(fast, ref)):
        assert a.shape == b.shape, f"{what}: result {i} shapes {a.shape} vs {b.shape}"
        assert a.dtype == b.dtype, f"{what}: result {i} dtypes {a.dtype} vs {b.dtype}"
        # equal_nan: a NaN must be NaN on both sides, and only there
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=f"{what}: result {i} (outputs, then gradients)")


_last_launches: dict = {}


def launched(*names, dtype) -> None:
    """The last run_emulated_and_reference launched these kernels (its fast path ran)."""
    sfx = "f32" if np.dtype(dtype) == np.float32 else "f64"
    missing = [n for n in names if not _last_launches.get(f"{n}_{sfx}")]
    assert not missing, f"kernels not launched: {missing} (launched: {_last_launches})"


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ---------------------------------------------------------------------- ops
def conv2d_call(stride, padding, dilation):
    def call(x, w, b=None):
        return conv.conv2d(x, w, b, stride, padding, dilation, 1)
    return call


CONV2D_CASES = {  # (x shape, w shape, bias, stride, padding, dilation)
    "3x3-pad1-bias": ((2, 3, 9, 7), (4, 3, 3, 3), True, 1, 1, 1),
    "stride2-dil2": ((2, 2, 9, 10), (3, 2, 3, 2), False, 2, (1, 0), 2),
    "batch0": ((0, 3, 6, 6), (2, 3, 3, 3), True, 1, 1, 1),
    # more columns (3*11*13 = 429) and pixels than one block of 256 threads
    "past-one-block": ((3, 2, 11, 13), (3, 2, 3, 3), True, 1, 1, 1),
    "tap-in-padding": ((1, 1, 1, 1), (1, 1, 1, 3), False, 1, (0, 2), (1, 2)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d(case, dtype):
    xs, ws, bias, stride, padding, dilation = CONV2D_CASES[case]
    rng = np.random.default_rng(1)
    arrays = [rand(rng, xs, dtype), rand(rng, ws, dtype)] + ([rand(rng, ws[0], dtype)]
                                                              if bias else [])
    fast, ref = run_emulated_and_reference("conv2d", conv2d_call(stride, padding, dilation),
                                           arrays)
    assert_same(fast, ref, dtype, f"conv2d {case}")
    if xs[0]:
        launched("im2col", "col2im", dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [2, 0])
def test_conv_transpose2d(batch, dtype):
    rng = np.random.default_rng(2)
    arrays = [rand(rng, (batch, 3, 5, 6), dtype), rand(rng, (3, 2, 3, 3), dtype),
              rand(rng, 2, dtype)]

    def call(x, w, b):
        return conv.conv_transpose2d(x, w, b, 2, 1, 1, 1, 1)
    fast, ref = run_emulated_and_reference("conv_transpose2d", call, arrays)
    assert_same(fast, ref, dtype, f"conv_transpose2d batch {batch}")
    if batch:
        launched("im2col", "col2im", dtype=dtype)


def attention_call(mask=None, causal=False):
    def call(q, k, v):
        m = None if mask is None else tl.tensor(mask)
        if m is not None and isinstance(q.array, fakecupy.ndarray):
            m = Tensor._make(to_device(mask))  # the mask lives with q, k, v
        return attention.scaled_dot_product_attention(q, k, v, m, 0.0, causal)
    return call


ATTENTION_CASES = {  # (N, Tq, Tk, D), mask kind, causal; v has D + 1 features
    "long-rows-causal": ((2, 3, 150, 4), None, True),
    "bool-mask": ((3, 4, 7, 5), "bool", False),
    "float-mask": ((2, 5, 70, 3), "float", False),
    "Tq0": ((2, 0, 6, 3), None, False),
    "batch0": ((0, 3, 6, 3), None, True),
    # flash_attention.cu: query rows past a block of 64, key tiles of 16 with a ragged end
    "flash-past-block": ((2, 70, 45, 4), None, False),
    "flash-causal-past-block": ((1, 70, 90, 2), None, True),   # key rows past a block too
    "wide-features": ((1, 3, 5, 128), None, False),   # v has 129 > 128: the softmax kernel
}


def _attention_kernels(case):
    """The kernels a case runs: the flash ones without a mask (feature sizes <= 128)."""
    (n, tq, tk, d), kind, _ = ATTENTION_CASES[case]
    if kind is None and d + 1 <= 128:
        return ("flash_attention_forward", "flash_attention_backward_dq",
                "flash_attention_backward_dkdv")
    return ("masked_softmax", "softmax_backward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ATTENTION_CASES)
def test_attention(case, dtype):
    (n, tq, tk, d), kind, causal = ATTENTION_CASES[case]
    rng = np.random.default_rng(3)
    arrays = [rand(rng, (n, tq, d), dtype), rand(rng, (n, tk, d), dtype),
              rand(rng, (n, tk, d + 1), dtype)]
    mask = None
    if kind == "bool":
        mask = rng.random((n, tq, tk)) < 0.6
        mask[0, 1] = False  # a row with no key kept: zero weights
    elif kind == "float":
        mask = rand(rng, (tq, tk), dtype)
    fast, ref = run_emulated_and_reference("scaled_dot_product_attention",
                                           attention_call(mask, causal), arrays)
    assert_same(fast, ref, dtype, f"attention {case}")
    if n * tq:
        launched(*_attention_kernels(case), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("batch", [3, 0])
def test_affine_coupling(batch, inverse, dtype):
    rng = np.random.default_rng(4)
    shape = (batch, 2, 75)  # 150 per row: past one block of 64, not a multiple of it
    arrays = [rand(rng, shape, dtype), rand(rng, shape, dtype, 0.3), rand(rng, shape, dtype)]

    def call(a, log_s, t):
        fn = coupling.affine_coupling_inverse if inverse else coupling.affine_coupling
        return fn(a, log_s, t)
    fast, ref = run_emulated_and_reference("affine_coupling", call, arrays)
    assert_same(fast, ref, dtype, f"coupling batch {batch} inverse {inverse}")
    if batch:
        launched("coupling_forward", "coupling_backward", dtype=dtype)


def logsumexp_call(keepdims=False):
    def call(x):
        return contrastive.logsumexp(x, -1, keepdims)
    return call


def nan_at(a, *index):
    a = a.copy()
    a[index] = np.nan
    return a


LOGSUMEXP_CASES = {
    "rows-past-block": lambda rng, dt: rand(rng, (3, 150), dt, 30.0),
    "3d": lambda rng, dt: rand(rng, (2, 3, 7), dt),
    "large-logits": lambda rng, dt: rand(rng, (2, 65), dt, 1e4),
    "inf": lambda rng, dt: np.array([[0.0, np.inf, 1.0], [-np.inf] * 3], dt),
    "zero-rows": lambda rng, dt: np.zeros((0, 5), dt),
    "nan": lambda rng, dt: nan_at(rand(rng, (3, 150), dt), 1, 100),
    "nan-and-inf": lambda rng, dt: np.array([[np.inf, np.nan, 1.0], [np.nan, -np.inf, 0]], dt),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LOGSUMEXP_CASES)
def test_logsumexp(case, dtype):
    x = LOGSUMEXP_CASES[case](np.random.default_rng(5), dtype)
    fast, ref = run_emulated_and_reference("logsumexp", logsumexp_call(case == "3d"), [x])
    if case == "inf":
        # At +-inf the kernels define the gradient (softmax with exp(inf - inf) taken as 1,
        # 0 for a row of -inf) where the reference's max-shift gives NaN: values against
        # the reference, gradients against the Numba twin.
        assert_same(fast[:1], ref[:1], dtype, f"logsumexp {case}")
        fast, ref = run_emulated_and_reference("logsumexp", logsumexp_call(), [x],
                                               twin="numba")
    assert_same(fast, ref, dtype, f"logsumexp {case}")
    if "nan" in case:  # NaN in gives NaN out, as NumPy and Numba: never a finite value
        assert np.isnan(fast[0]).any() and np.isnan(fast[1]).any()
    if x.size:
        launched("row_logsumexp", "row_logsumexp_backward", dtype=dtype)


def contrastive_call(name, tau=0.2, reduction="mean"):
    def call(a, b):
        if name == "nt_xent":
            return contrastive.nt_xent(a, b, tau, reduction)
        return contrastive.info_nce(a, b, None, tau, reduction)
    return call


CONTRASTIVE_CASES = {  # (N, D), reduction, NaN at
    "past-block": ((6, 70), "mean", None),   # 12 x 12 similarities: 144, past one block
    "none": ((3, 5), "none", None),
    "sum": ((9, 4), "sum", None),
    "empty": ((0, 5), "none", None),
    "nan": ((4, 70), "mean", (2, 33)),
    "tiles": ((35, 3), "sum", None),        # NT-Xent: 70 x 70, three 32-wide tiles a side
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONTRASTIVE_CASES)
@pytest.mark.parametrize("name", ["nt_xent", "info_nce"])
def test_contrastive(name, case, dtype):
    (n, d), reduction, nan = CONTRASTIVE_CASES[case]
    rng = np.random.default_rng(6)
    a, b = rand(rng, (n, d), dtype), rand(rng, (n, d), dtype)
    if nan is not None:
        a = nan_at(a, *nan)
    # With N = 0 the reference fails (a max over no rows): the Numba twin is the oracle,
    # and both give an empty loss and empty gradients.
    fast, ref = run_emulated_and_reference(name, contrastive_call(name, reduction=reduction),
                                           [a, b], twin="numba" if n == 0 else "reference")
    assert_same(fast, ref, dtype, f"{name} {case}")
    if n == 0:
        assert [r.shape for r in fast] == [(0,), (0, d), (0, d)]
    if nan is not None:
        assert np.isnan(fast[0]).all(), f"{name}: a NaN input gave the loss {fast[0]}"
    if n:   # NT-Xent's gradient is symmetric (G + G^T): the tiled kernel
        grad = "cross_entropy_grad_symmetric" if name == "nt_xent" else "cross_entropy_grad"
        launched("normalize_rows", "row_cross_entropy", grad, "normalize_rows_backward",
                 dtype=dtype)


def test_flash_attention_with_no_keys_gives_zeros():
    """Tk = 0 (the reference cannot take it): zero output, lse = -inf, zero gradients, as
    the CPU twin gives."""
    with emulated(block=TEST_BLOCK) as be:
        q, k, v = (to_device(np.ones(s, np.float32)) for s in ((2, 3, 4), (2, 0, 4), (2, 0, 5)))
        out, lse = be.flash_attention(q, k, v, 0.5, False)
        dq, dk, dv = be.flash_attention_backward(q, k, v, out, lse,
                                                 to_device(np.ones((2, 3, 5), np.float32)),
                                                 0.5, False)
        out, lse, dq = to_host(out), to_host(lse), to_host(dq)
    assert out.shape == (2, 3, 5) and not out.any() and (lse == -np.inf).all()
    assert dq.shape == (2, 3, 4) and not dq.any()


def test_attention_nan_score_is_not_treated_as_masked():
    """A NaN in q makes its rows' outputs NaN (as the reference), never a finite average."""
    rng = np.random.default_rng(7)
    q = nan_at(rand(rng, (2, 3, 4), np.float32), 1, 2, 0)
    arrays = [q, rand(rng, (2, 70, 4), np.float32), rand(rng, (2, 70, 2), np.float32)]
    fast, ref = run_emulated_and_reference("scaled_dot_product_attention", attention_call(),
                                           arrays)
    assert_same(fast, ref, np.float32, "attention NaN")
    assert np.isnan(fast[0][1, 2]).all() and np.isfinite(fast[0][0]).all()


def layer_norm_call(x, w, b):
    return normalization.layer_norm(x, x.shape[-1:], w, b)


LAYER_NORM_CASES = {  # (rows shape, D)
    "one-row-one-feature": ((1,), 1),
    "past-block": ((2, 3), 300),      # D = 300 > one block of 64: the strided row loops
    "offset": ((5,), 70),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LAYER_NORM_CASES)
def test_layer_norm(case, dtype):
    lead, d = LAYER_NORM_CASES[case]
    rng = np.random.default_rng(9)
    x = rand(rng, lead + (d,), dtype, 2.0) + (50 if case == "offset" else 0)
    fast, ref = run_emulated_and_reference(
        "layer_norm", layer_norm_call, [x.astype(dtype), rand(rng, d, dtype), rand(rng, d, dtype)])
    assert_same(fast, ref, dtype, f"layer_norm {case}")
    launched("layer_norm_forward", "layer_norm_backward", "layer_norm_param_grad", dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 100), (0, 4), ()])
def test_gelu(shape, dtype):
    """activation.cu: value and dy/dx in one grid-stride pass; 300 elements past a block of
    64, an empty input (no launch), a 0-d input; NaN and +-inf pass through as the reference's."""
    x = rand(np.random.default_rng(11), shape, dtype, 3.0)
    if x.size > 3:
        x.flat[:3] = [np.nan, np.inf, -np.inf]
    with np.errstate(invalid="ignore"):
        fast, ref = run_emulated_and_reference("gelu", tl.gelu, [x])
    assert_same(fast, ref, dtype, f"gelu {shape}")
    if x.size:
        launched("gelu_forward", dtype=dtype)


FLOAT16_CASES = {  # op -> (call, input arrays as float64, before the cast to float16)
    "gelu": (tl.gelu, lambda rng: [rand(rng, (3, 100), np.float64, 3.0)]),
    "layer_norm": (layer_norm_call,                  # D = 300: past a block of 64
                   lambda rng: [rand(rng, (4, 300), np.float64, 2.0) + 7,
                                rand(rng, 300, np.float64), rand(rng, 300, np.float64)]),
    # the flash kernels, rows past a block of 64, causal with Tq != Tk
    "attention": (lambda q, k, v: attention.scaled_dot_product_attention(q, k, v),
                  lambda rng: [rand(rng, (2, 70, 16), np.float64), rand(rng, (2, 50, 16),
                               np.float64), rand(rng, (2, 50, 8), np.float64)]),
    "attention-causal": (lambda q, k, v: attention.scaled_dot_product_attention(
                             q, k, v, is_causal=True),
                         lambda rng: [rand(rng, (3, 40, 32), np.float64),
                                      rand(rng, (3, 70, 32), np.float64),
                                      rand(rng, (3, 70, 32), np.float64)]),
    # the materialised path: a boolean mask (row 0 of each head sees no key past 2)
    "attention-masked": (lambda q, k, v: attention_call(np.tril(np.ones((6, 9), bool), 2))(
                             q, k, v),
                         lambda rng: [rand(rng, (2, 6, 8), np.float64),
                                      rand(rng, (2, 9, 8), np.float64),
                                      rand(rng, (2, 9, 4), np.float64)]),
    "coupling": (lambda x, s_, t: coupling.affine_coupling(x, s_, t),
                 lambda rng: [rand(rng, (3, 150), np.float64),
                              rand(rng, (3, 150), np.float64, 0.3),
                              rand(rng, (3, 150), np.float64)]),
    # the scatter-add of an embedding's gradient (99 lookups of 7 rows, padding row 2),
    # summed in float32
    "embedding": (lambda w: tl.nn.functional.embedding(
                      Tensor._make(w.xp.asarray(np.arange(99).reshape(9, 11) * 5 % 7)), w,
                      padding_idx=2),
                  lambda rng: [rand(rng, (7, 70), np.float64)]),
    # an LSTM layer (2 layers: the fused sequence op per layer and its step kernels)
    "lstm": (lambda *args: recurrent.lstm_sequence(*args),
             lambda rng: [rand(rng, (7, 3, 5), np.float64), rand(rng, (3, 70), np.float64),
                          rand(rng, (3, 70), np.float64), rand(rng, (280, 5), np.float64, 0.3),
                          rand(rng, (280, 70), np.float64, 0.1),
                          rand(rng, 280, np.float64, 0.1), rand(rng, 280, np.float64, 0.1)]),
    # row reductions in float: logsumexp past a block, InfoNCE and NT-Xent (the symmetric
    # tiled gradient, 70 x 70)
    "logsumexp": (lambda x: contrastive.logsumexp(x, -1),
                  lambda rng: [rand(rng, (3, 150), np.float64, 4.0)]),
    "info_nce": (lambda a, b: contrastive.info_nce(a, b, None, 0.2, "mean"),
                 lambda rng: [rand(rng, (6, 70), np.float64), rand(rng, (6, 70), np.float64)]),
    "nt_xent": (lambda a, b: contrastive.nt_xent(a, b, 0.2, "sum"),
                lambda rng: [rand(rng, (35, 3), np.float64), rand(rng, (35, 3), np.float64)]),
    # im2col / col2im + the GEMMs: a strided, padded conv and a transposed one
    "conv": (conv2d_call(2, 1, 1), lambda rng: [rand(rng, (2, 3, 9, 8), np.float64),
                                                rand(rng, (5, 3, 3, 3), np.float64),
                                                rand(rng, 5, np.float64)]),
    "conv-transpose": (lambda x, w, b: conv.conv_transpose2d(x, w, b, 2, 1),
                       lambda rng: [rand(rng, (2, 4, 5, 5), np.float64),
                                    rand(rng, (4, 3, 4, 4), np.float64),
                                    rand(rng, 3, np.float64)]),
}


def _half_dtypes():
    """float16, and bfloat16 where ml_dtypes (its NumPy dtype, CuPy's too) is installed."""
    try:
        import ml_dtypes
    except ImportError:
        return [np.dtype(np.float16), pytest.param(None, marks=pytest.mark.skip(
            reason="bfloat16 needs ml_dtypes (pip install -e '.[test]')"))]
    return [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]


@pytest.mark.parametrize("half", _half_dtypes(), ids=["float16", "bfloat16"])
@pytest.mark.parametrize("op", FLOAT16_CASES)
def test_half_kernels_against_the_float32_reference(op, half):
    """16-bit storage, float arithmetic (the _f16 and _bf16 kernels): from the same 16-bit
    inputs and upstream gradients, outputs and input gradients equal the float32 reference's
    rounded to that dtype, within an ulp or two of it (float16: 2^-10 relative, bfloat16:
    2^-7; one rounding per kernel output, plus the elementwise 16-bit products around some
    kernels, e.g. GELU's grad * dy/dx). On the CPU neither has a kernel: the Numba backend
    runs the reference."""
    call, make = FLOAT16_CASES[op]
    sfx = "_bf16" if half.name == "bfloat16" else "_f16"
    mant = 7 if half.name == "bfloat16" else 10      # stored mantissa bits
    rng = np.random.default_rng(12)
    arrays = [a.astype(half) for a in make(rng)]
    before = fakecupy.LAUNCHES.copy()
    with emulated(block=TEST_BLOCK):
        ts = [Tensor._make(to_device(a), requires_grad=True) for a in arrays]
        outs = _outputs(call(*ts))
        gs = [rand(rng, o.shape, half) for o in outs]
        grads = tl.grad(outs, ts, [Tensor._make(to_device(g)) for g in gs])
        fast = [to_host(o.array) for o in outs] + [to_host(t.array) for t in grads]
    ran = fakecupy.LAUNCHES - before
    assert any(k.endswith(sfx) for k in ran) and \
        not any(k.endswith(("_f32", "_f64")) for k in ran), f"{op}: launched {dict(ran)}"
    with kernels.use_reference():
        ts = [tl.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
        outs = _outputs(call(*ts))
        grads = tl.grad(outs, ts, [tl.tensor(g.astype(np.float32)) for g in gs])
        ref = [o.detach().numpy() for o in outs] + [t.detach().numpy() for t in grads]
    for i, (a, r) in enumerate(zip(fast, ref)):
        assert a.dtype == half, f"{op}: result {i} is {a.dtype}"
        scale = np.abs(r).max()
        # an ulp of the largest value: bfloat16's 7 bits across the 7 steps of the LSTM
        # case reach 0.75 of it (the reference run in bfloat16 itself: 1.2)
        np.testing.assert_allclose(a.astype(np.float32), r, rtol=2.0 ** (1 - mant),
                                   atol=scale * 2.0 ** -mant,
                                   err_msg=f"{op}: result {i} (outputs, then gradients)")
    # and on the CPU: no 16-bit kernel, so the reference runs (in that dtype)
    x = tl.tensor(arrays[0])
    assert fast_backend(x, op=op.split("-")[0]) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_backward(padding_idx, dtype):
    """The weight gradient of an embedding lookup with repeated indices: embedding.cu's
    atomic scatter-add against the reference's np.add.at."""
    rng = np.random.default_rng(10)
    idx = rng.integers(0, 7, (9, 11))                # 99 lookups of 7 rows

    def call(w):
        return tl.nn.functional.embedding(Tensor._make(w.xp.asarray(idx)), w,
                                          padding_idx=padding_idx)
    fast, ref = run_emulated_and_reference("embedding", call, [rand(rng, (7, 70), dtype)])
    assert_same(fast, ref, dtype, "embedding")
    launched("embedding_backward", dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("only", [None, "h", "c"])
def test_lstm_cell(only, dtype):
    """lstm.cu: the LSTM step's pointwise part, one thread per (b, j) of a (5, 70) state
    (past a block of 64); gate pre-activations up to +-15 (saturated sigmoids and tanhs);
    only h' or only c' used downstream (the other output's gradient is zero)."""
    from tinylatent.ops import recurrent
    rng = np.random.default_rng(12)

    def call(gates, c):
        h, c_new = recurrent.lstm_cell(gates, c)
        return {None: (h, c_new), "h": h, "c": c_new}[only]
    fast, ref = run_emulated_and_reference(
        "lstm_cell", call, [rand(rng, (5, 280), dtype, 5.0), rand(rng, (5, 70), dtype)])
    assert_same(fast, ref, dtype, f"lstm_cell (outputs used: {only or 'both'})")
    launched("lstm_cell_forward", "lstm_cell_backward", dtype=dtype)


def lstm_sequence_call(reverse):
    from tinylatent.ops import recurrent

    def call(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None):
        return recurrent.lstm_sequence(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse=reverse)
    return call


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reverse,bias", [(False, True), (True, False)])
def test_lstm_sequence(reverse, bias, dtype):
    """lstm.cu's step kernels under the sequence op (cuBLAS GEMMs between them): T = 4
    steps of a (3, 30) state (90 threads, past a block of 64), forward and reversed, with
    and without biases; outputs and the gradients of x, h0, c0, w_ih, w_hh (b_ih, b_hh)."""
    rng = np.random.default_rng(13)
    arrays = [rand(rng, (4, 3, 5), dtype), rand(rng, (3, 30), dtype),
              rand(rng, (3, 30), dtype), rand(rng, (120, 5), dtype),
              rand(rng, (120, 30), dtype, 0.3)]
    if bias:
        arrays += [rand(rng, 120, dtype, 0.3), rand(rng, 120, dtype, 0.3)]
    fast, ref = run_emulated_and_reference("lstm_sequence", lstm_sequence_call(reverse), arrays)
    assert_same(fast, ref, dtype, f"lstm_sequence (reverse={reverse}, bias={bias})")
    launched("lstm_step_forward", "lstm_step_backward", dtype=dtype)


def test_every_op_at_the_shipped_block_size():
    """Each op once at the block size the package ships (tinylatent.kernels.cuda.BLOCK)."""
    from cuda_emu import backend
    block = backend().BLOCK
    rng = np.random.default_rng(8)
    dt = np.float32
    runs = [
        ("conv2d", conv2d_call(1, 1, 1),
         [rand(rng, (2, 3, 9, 7), dt), rand(rng, (4, 3, 3, 3), dt), rand(rng, 4, dt)]),
        ("scaled_dot_product_attention", attention_call(causal=True),
         [rand(rng, (1, 2, 4), dt), rand(rng, (1, 300, 4), dt), rand(rng, (1, 300, 3), dt)]),
        ("affine_coupling", coupling.affine_coupling,
         [rand(rng, (2, 300), dt), rand(rng, (2, 300), dt, 0.3), rand(rng, (2, 300), dt)]),
        ("logsumexp", logsumexp_call(), [rand(rng, (2, 300), dt)]),
        ("layer_norm", layer_norm_call, [rand(rng, (3, 300), dt), rand(rng, 300, dt),
                                         rand(rng, 300, dt)]),
        ("info_nce", contrastive_call("info_nce"), [rand(rng, (3, 300), dt),
                                                    rand(rng, (3, 300), dt)]),
        ("gelu", tl.gelu, [rand(rng, (2, 300), dt, 3.0)]),
        ("lstm_cell", lambda g, c: tl.ops.recurrent.lstm_cell(g, c),
         [rand(rng, (2, 1200), dt, 3.0), rand(rng, (2, 300), dt)]),
        ("lstm_sequence", lstm_sequence_call(False),
         [rand(rng, (2, 2, 3), dt), rand(rng, (2, 300), dt), rand(rng, (2, 300), dt),
          rand(rng, (1200, 3), dt), rand(rng, (1200, 300), dt, 0.05), rand(rng, 1200, dt, 0.3),
          rand(rng, 1200, dt, 0.3)]),
    ]
    for name, call, arrays in runs:
        fast, ref = run_emulated_and_reference(name, call, arrays, block=block)
        assert_same(fast, ref, dt, f"{name} at block {block}")


# ---------------------------------------------------------------------- the block size
@pytest.mark.parametrize("block", [128, 512])
def test_block_size_has_one_definition(block):
    """The launch's block and the kernels' TL_BLOCK are one number: at 128 the logsumexp
    was off by 0.69 (half the row never summed), at 512 it wrote past a 256-entry buffer."""
    x = rand(np.random.default_rng(9), (2, 1100), np.float64)
    fast, ref = run_emulated_and_reference("logsumexp", logsumexp_call(), [x], block=block)
    assert_same(fast, ref, np.float64, f"logsumexp at block {block}")


def test_compiler_gets_the_block_size_from_python():
    from cuda_emu import backend
    be = backend()
    assert f"-DTL_BLOCK={be.BLOCK}" in be.compile_options(be.BLOCK)
    with open(f"{be.SOURCE_DIR}/common.cuh", encoding="utf-8") as f:
        assert "#define TL_BLOCK" not in f.read()


# ---------------------------------------------------------------------- devices
def test_kernels_run_on_the_device_of_their_inputs():
    """Arrays on cuda:1 while cuda:0 is current: the launch code enters device 1 for its
    allocations and launches (else the stand-in refuses a launch on device 0 reading device
    1 memory, as the GPU would fault)."""
    rng = np.random.default_rng(10)
    x = rand(rng, (3, 100), np.float32)
    with emulated(block=TEST_BLOCK, device_count=2) as be:
        assert fakecupy.cuda.Device().id == 0
        x1 = to_device(x, device=1)
        lse, (mx, tot) = be.row_logsumexp(x1)
        assert {a.device_id for a in (lse, mx, tot)} == {1}
        gx = be.row_logsumexp_backward(x1, (mx, tot), to_device(np.ones(3, np.float32), 1))
        assert gx.device_id == 1
        p = to_device(np.full((4, 4), 0.25, np.float32), 1)
        h = be.cross_entropy_grad(p, to_device(np.ones(4, np.float32), 1), 1.0, 0, True)
        assert h.device_id == 1
        y = to_device(rand(rng, (2, 3, 4, 5), np.float32), 1)
        assert be.batch_to_channel_major(y, key="g2").device_id == 1
        assert fakecupy.cuda.Device().id == 0  # the caller's device is restored
    ref = np.log(np.exp(x.astype(np.float64)).sum(1))
    np.testing.assert_allclose(to_host(lse), ref, rtol=1e-5)


def test_scratch_pool_is_keyed_by_device_and_thread():
    import threading
    with emulated(device_count=2) as be:
        on0, on1 = to_device(np.zeros(1), 0), to_device(np.zeros(1), 1)
        a0 = be.scratch("buf", (3, 4), np.float32, like=on0)
        a1 = be.scratch("buf", (3, 4), np.float32, like=on1)
        assert (a0.device_id, a1.device_id) == (0, 1)
        assert be.scratch("buf", (3, 4), np.float32, like=on0) is a0  # reused
        other: list = []
        th = threading.Thread(target=lambda: other.append(
            be.scratch("buf", (3, 4), np.float32, like=on0)))
        th.start()
        th.join()
        assert other[0] is not a0 and other[0].device_id == 0


# ---------------------------------------------------------------------- the harness itself
HARNESS_SOURCE = r"""
#define N 64
extern "C" __global__ void reverse(const float* x, float* y, int n) {
    __shared__ float buf[N];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    buf[threadIdx.x] = i < n ? x[i] : 0.0f;
    __syncthreads();
    int j = blockIdx.x * blockDim.x + (blockDim.x - 1 - threadIdx.x);
    if (j < n) y[j] = buf[threadIdx.x];
}
extern "C" __global__ void warp_sum(const double* x, double* y) {
    double v = x[blockIdx.x * blockDim.x + threadIdx.x];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (threadIdx.x % 32 == 0) y[(blockIdx.x * blockDim.x + threadIdx.x) / 32] = v;
}
extern "C" __global__ void divergent(float* y) {
    if (threadIdx.x < 3) __syncthreads();
    y[threadIdx.x] = 1.0f;
}
extern "C" __global__ void takes(long long a, int b, float c, double d) {}
"""


@pytest.fixture(scope="module")
def harness_module():
    return fakecupy.RawModule(code=HARNESS_SOURCE)


def test_harness_shared_memory_is_per_block_and_barriers_hold(harness_module):
    x = np.arange(200, dtype=np.float32)
    y = fakecupy.empty(200, np.float32)
    harness_module.get_function("reverse")((4,), (64,), (to_device(x), y, np.int32(200)))
    # blocks reverse their own 64 entries through shared memory; the last block's slots
    # 192..199 receive its threads 56..63, which loaded past n (zeros)
    want = np.concatenate([x[:64][::-1], x[64:128][::-1], x[128:192][::-1], np.zeros(8)])
    np.testing.assert_array_equal(to_host(y), want)


def test_harness_warp_shuffle(harness_module):
    x = np.random.default_rng(0).standard_normal(128)
    y = fakecupy.empty(4, np.float64)
    harness_module.get_function("warp_sum")((2,), (64,), (to_device(x), y))
    np.testing.assert_allclose(to_host(y), x.reshape(4, 32).sum(1), rtol=1e-12)


def test_harness_reports_divergent_syncthreads(harness_module):
    with pytest.raises(fakecupy.LaunchError, match="divergent __syncthreads"):
        harness_module.get_function("divergent")((1,), (32,), (fakecupy.empty(32, np.float32),))


@pytest.mark.parametrize("grid, block, args, message", [
    ((0,), (32,), (fakecupy.empty(32, np.float32),), "0 blocks"),
    ((1,), (2048,), (fakecupy.empty(32, np.float32),), "block"),
    ((1,), (32, 64), (fakecupy.empty(32, np.float32),), "more than 1024"),
    ((1,), (32,), (np.zeros(32, np.float32),), "host pointer"),
    ((1,), (32,), (fakecupy.empty(32, np.float64),), "dtype float64"),
    ((1,), (32,), (fakecupy.empty((32, 2), np.float32)[:, 0],), "not C-contiguous"),
    ((1,), (32,), (), "0 arguments for 1"),
])
def test_harness_refuses_launches_cuda_would_refuse(harness_module, grid, block, args,
                                                    message):
    with pytest.raises(fakecupy.LaunchError, match=message):
        harness_module.get_function("divergent")(grid, block, args)


@pytest.mark.parametrize("args, ok", [
    ((5, np.int32(1), np.float32(1), 2.0), True),          # Python int/float: 64-bit params
    ((np.int64(5), np.int32(1), np.float32(1), np.float64(2)), True),
    ((5, 1, np.float32(1), 2.0), False),                   # a Python int for `int`
    ((5, np.int32(1), 1.0, 2.0), False),                   # a Python float for `float`
    ((5, np.int64(1), np.float32(1), 2.0), False),
])
def test_harness_checks_scalar_widths(harness_module, args, ok):
    fn = harness_module.get_function("takes")
    if ok:
        fn((1,), (32,), args)
    else:
        with pytest.raises(fakecupy.LaunchError, match="argument"):
            fn((1,), (32,), args)


def test_harness_device_arrays_start_as_nan():
    assert np.isnan(fakecupy.empty((3, 2), np.float32)).all()
    assert (to_host(fakecupy.empty(4, np.uint8)) == 0xAB).all()


def test_harness_refuses_a_launch_reading_another_device(harness_module):
    y = to_device(np.zeros(32, np.float32), device=1)
    with pytest.raises(fakecupy.LaunchError, match="device 1"):
        harness_module.get_function("divergent")((1,), (32,), (y,))


def test_conv_index_limits_are_checked_before_launch():
    from tinylatent.kernels import cuda as kcuda
    kcuda._check_int32("im2col", B_Ho_Wo=2 ** 31 - 1)
    with pytest.raises(ValueError, match=r"im2col \(CUDA\): \{'B_Ho_Wo': 2147483648\}"):
        kcuda._check_int32("im2col", B_Ho_Wo=2 ** 31, H_W=4)


BF16_CONVERSIONS = r'''
#include "common.cuh"
extern "C" __global__ void bf16_round(const float* x, tl_bf16* y, long long n) {
    TL_GRID_STRIDE(i, n) y[i] = tl_st<tl_bf16, float>(x[i]);
}
extern "C" __global__ void bf16_widen(const tl_bf16* x, float* y, long long n) {
    TL_GRID_STRIDE(i, n) y[i] = tl_ld<float, tl_bf16>(x[i]);
}
'''


def test_bfloat16_conversions_match_ml_dtypes_bit_for_bit():
    """common.cuh's bfloat16 conversions (integer operations, so they compile for every GPU
    architecture, and the emulation runs the same code): widening is exact for all 65,536
    bit patterns; rounding is to nearest, ties to even, as ml_dtypes' (and PTX's
    cvt.rn.bf16.f32): checked on ties, the largest finite values, infinities, subnormals,
    NaNs and a million random bit patterns. NaN is only required to stay a NaN."""
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes")
    bf16 = np.dtype(ml_dtypes.bfloat16)
    from tinylatent.kernels.cuda import compile_options
    mod = fakecupy.RawModule(code=BF16_CONVERSIONS, options=compile_options(TEST_BLOCK))
    launch = {k: mod.get_function(k) for k in ("bf16_round", "bf16_widen")}

    bits = np.arange(2 ** 16, dtype=np.uint16).view(bf16)
    out = fakecupy.empty(bits.shape, np.float32)
    launch["bf16_widen"]((64,), (TEST_BLOCK,), (fakecupy.asarray(bits), out, np.int64(bits.size)))
    np.testing.assert_array_equal(out.get().view(np.uint32), bits.astype(np.float32)
                                  .view(np.uint32))

    rng = np.random.default_rng(13)
    u = np.concatenate([rng.integers(0, 2 ** 32, 10 ** 6, dtype=np.uint64).astype(np.uint32),
                        np.arange(2 ** 16, dtype=np.uint32) << 16 | 0x8000,      # exact ties
                        np.arange(2 ** 16, dtype=np.uint32) << 16 | 0x7fff,
                        np.arange(2 ** 16, dtype=np.uint32) << 16 | 0x8001,
                        np.array([0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f800000, 0xff800000,
                                  0x00000001, 0x807fffff, 0x7fc00000, 0xffffffff, 0x7f800001],
                                 dtype=np.uint32)])
    x = u.view(np.float32)
    out = fakecupy.empty(x.shape, bf16)
    launch["bf16_round"]((64,), (TEST_BLOCK,), (fakecupy.asarray(x), out, np.int64(x.size)))
    with np.errstate(invalid="ignore"):       # NumPy warns casting NaNs
        got, want = out.get().view(np.uint16), x.astype(bf16).view(np.uint16)
    nan = np.isnan(x)
    np.testing.assert_array_equal(got[~nan], want[~nan])
    assert np.isnan(out.get()[nan].astype(np.float32)).all()
