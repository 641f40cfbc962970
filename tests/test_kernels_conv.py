"""conv2d / conv_transpose2d: the fast kernels (Numba on CPU, CUDA on GPU) against the
reference (im2col in Tensor ops), the reference against a naive loop oracle, gradchecks."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent.kernels.testing import assert_same, device_params, fast_name_expected, run_both
from tinylatent.ops import conv

DTYPES = [np.float32, np.float64]


def naive_conv2d(x, w, b, stride, padding, dilation):
    """Direct 6-loop cross-correlation in float64, the independent oracle."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    bsz, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((bsz, c_out, ho, wo))
    for o in range(c_out):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                           j * dw:j * dw + sw * (wo - 1) + 1:sw]
                y[:, o] += np.einsum("bchw,c->bhw", patch, w[o, :, i, j])
    return y + (0 if b is None else b.reshape(1, -1, 1, 1))


def naive_conv_transpose2d(x, w, b, stride, padding, output_padding, dilation):
    """Scatter each input pixel times the kernel into the output: the adjoint, by loops."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    bsz, c_in, h, wd = x.shape
    _, c_out, kh, kw = w.shape
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    wo = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    big = np.zeros((bsz, c_out, ho + 2 * ph + sh * h + dh * kh, wo + 2 * pw + sw * wd + dw * kw))
    for ih in range(h):
        for iw in range(wd):
            for i in range(kh):
                for j in range(kw):
                    big[:, :, ih * sh + i * dh, iw * sw + j * dw] += np.einsum(
                        "bc,co->bo", x[:, :, ih, iw], w[:, :, i, j])
    y = big[:, :, ph:ph + ho, pw:pw + wo]
    return y + (0 if b is None else b.reshape(1, -1, 1, 1))


@st.composite
def conv_cases(draw, transposed=False):
    b = draw(st.integers(1, 2))
    c_in = draw(st.integers(1, 3))
    c_out = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    outpad = (0, 0)
    if transposed:
        outpad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        out = conv.conv_transpose2d_output_shape(h, w, (kh, kw), stride, padding, outpad,
                                                 dilation)
        wshape = (c_in, c_out, kh, kw)
    else:
        pads = tuple((p, p) for p in padding)
        out = conv.conv2d_output_shape(h, w, (kh, kw), stride, pads, dilation)
        wshape = (c_out, c_in, kh, kw)
    assume(min(out) >= 1)
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((b, c_in, h, w)), rng.standard_normal(wshape)]
    arrays.append(rng.standard_normal(c_out) if bias else None)
    return arrays, stride, padding, outpad, dilation


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(case=conv_cases())
def test_conv2d_fast_matches_reference_and_loops(device, dtype, case):
    arrays, stride, padding, _, dilation = case
    arrays = [None if a is None else a.astype(dtype) for a in arrays]
    (fast, names), (ref, _) = run_both(
        lambda x, w, b: conv.conv2d(x, w, b, stride, padding, dilation), arrays,
        requires=[True, True, arrays[2] is not None], device=device)
    if fast_name_expected(device):
        assert names == ["Conv2dFn"]
    assert_same(fast, ref, dtype, "conv2d", scale=10)
    x, w, b = (None if a is None else a.astype(np.float64) for a in arrays)
    want = naive_conv2d(x, w, b, stride, padding, dilation)
    np.testing.assert_allclose(ref[0], want, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_tap_wholly_in_the_padding_stays_inside_its_row(dtype):
    """A 1x1 image, a 1x3 kernel dilated by 2 and padded by 2: the outer taps see only
    padding. The Numba col2im once zeroed "entries before the valid range" past the end of
    such a tap's row, into the next tap's column, and the input gradient came out 0."""
    arrays = [np.array([[[[0.12573022]]]], dtype),
              np.array([[[[-0.13210486, 0.64042265, 0.10490012]]]], dtype), None]
    (fast, names), (ref, _) = run_both(
        lambda x, w, b: conv.conv2d(x, w, b, (1, 1), (0, 2), (1, 2)), arrays,
        requires=[True, True, False], device="cpu")
    assert names == ["Conv2dFn"]
    assert_same(fast, ref, dtype, "conv2d tap in the padding")   # before the fix: dx was 0


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(case=conv_cases(transposed=True))
def test_conv_transpose2d_fast_matches_reference_and_loops(device, dtype, case):
    arrays, stride, padding, outpad, dilation = case
    arrays = [None if a is None else a.astype(dtype) for a in arrays]
    (fast, names), (ref, _) = run_both(
        lambda x, w, b: conv.conv_transpose2d(x, w, b, stride, padding, outpad, dilation),
        arrays, requires=[True, True, arrays[2] is not None], device=device)
    if fast_name_expected(device):
        assert names == ["ConvTranspose2dFn"]
    assert_same(fast, ref, dtype, "conv_transpose2d", scale=10)
    x, w, b = (None if a is None else a.astype(np.float64) for a in arrays)
    want = naive_conv_transpose2d(x, w, b, stride, padding, outpad, dilation)
    np.testing.assert_allclose(ref[0], want, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("chunk_bytes", [1, 4800])          # one image a chunk; a few
@settings(max_examples=25, deadline=None)
@given(case=conv_cases(), batch=st.integers(1, 5), requires=st.sampled_from(
    [(True, True), (False, True), (True, False)]), transposed=st.booleans())
def test_conv_over_the_batch_in_chunks(chunk_bytes, case, batch, requires, transposed):
    """The fast Functions run im2col and the GEMMs per chunk of images through a reused
    buffer (conv.CHUNK_BYTES): with chunks of one image, or a few with a shorter last one,
    outputs and every gradient equal the reference's, in each backward path (dx and dW, dW
    only as for a first layer, dx only)."""
    arrays, stride, padding, outpad, dilation = case
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch,) + arrays[0].shape[1:])
    w = arrays[1] if not transposed else arrays[1].transpose(1, 0, 2, 3).copy()
    arrays = [x, w, arrays[2]]
    if transposed:
        outpad = (0, 0)

        def fn(x, w, b):
            return conv.conv_transpose2d(x, w, b, stride, padding, outpad, dilation)
        assume(min(conv.conv_transpose2d_output_shape(*x.shape[2:], w.shape[2:], stride,
                                                       padding, outpad, dilation)) >= 1)
    else:
        def fn(x, w, b):
            return conv.conv2d(x, w, b, stride, padding, dilation)
    saved, conv.CHUNK_BYTES = conv.CHUNK_BYTES, chunk_bytes
    try:
        (fast, names), (ref, _) = run_both(fn, arrays, device="cpu", requires=[
            requires[0], requires[1], arrays[2] is not None])
    finally:
        conv.CHUNK_BYTES = saved
    if fast_name_expected("cpu"):
        assert names == ["ConvTranspose2dFn" if transposed else "Conv2dFn"]
    assert_same(fast, ref, np.float64, "chunked conv")


@st.composite
def stride2_geometries(draw):
    """(B, C, H, W, kh, kw, ph, pw, dh, dw, Ho, Wo) of stride-2 convs that the phase kernels
    compute (2*Ho >= H, 2*Wo >= W): odd and even images, dilation, taps in the padding."""
    from tinylatent.kernels.numba import conv as kconv
    b, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // 2 + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // 2 + 1
    assume(ho >= 1 and wo >= 1 and kconv.phase_applies(h, w, 2, 2, ho, wo))
    return b, c, h, w, kh, kw, ph, pw, dh, dw, ho, wo


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=60, deadline=None)
@given(geom=stride2_geometries(), bias_row=st.booleans(), seed=st.integers(0, 2**16))
def test_stride2_phase_kernels_match_their_strided_twins(dtype, geom, bias_row, seed):
    """im2col_stride2 / col2im_stride2 (split x into its four phases, then one shifted run
    per tap) write what the strided loops im2col / col2im write, on buffers pre-filled
    with garbage (every entry must be written)."""
    from tinylatent.kernels.numba import conv as kconv
    b, c, h, w, kh, kw, ph, pw, dh, dw, ho, wo = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, c, h, w)).astype(dtype)
    shape = (c * kh * kw + int(bias_row), b * ho * wo)
    want, got = np.full(shape, 7.0, dtype), np.full(shape, -3.0, dtype)
    kconv.im2col(x, kh, kw, 2, 2, ph, pw, dh, dw, ho, wo, want)
    kconv.im2col_stride2(x, kh, kw, ph, pw, dh, dw, ho, wo, got,
                         np.full((c, 2, 2, b * ho * wo), 9.0, dtype))
    np.testing.assert_array_equal(got, want)
    cols = rng.standard_normal((c * kh * kw, b * ho * wo)).astype(dtype)
    want, got = np.full(x.shape, 5.0, dtype), np.full(x.shape, -5.0, dtype)
    kconv.col2im(cols.copy(), kh, kw, 2, 2, ph, pw, dh, dw, ho, wo, want)
    kconv.col2im_stride2(cols.copy(), kh, kw, ph, pw, dh, dw, ho, wo, got,
                         np.full((c, 2, 2, b * ho * wo), 9.0, dtype))
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-14,
                               atol=1e-6 if dtype == np.float32 else 1e-14)


@settings(max_examples=30, deadline=None)
@given(geom=stride2_geometries(), transposed=st.booleans(), chunk_bytes=st.sampled_from(
    [None, 1, 4800]), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_stride2_convs_through_the_phase_kernels_match_the_reference(
        geom, transposed, chunk_bytes, bias, seed):
    """conv2d and conv_transpose2d at stride 2 (the phase kernels on CPU), whole-batch and
    chunked: outputs and every gradient equal the reference's."""
    b, c, h, w, kh, kw, ph, pw, dh, dw, ho, wo = geom
    rng = np.random.default_rng(seed)
    c_out = 2
    if transposed:             # the conv2d geometry's output is the transposed conv's input
        x = rng.standard_normal((b, c_out, ho, wo))
        wt = rng.standard_normal((c_out, c, kh, kw))
        outpad = (h - ((ho - 1) * 2 - 2 * ph + dh * (kh - 1) + 1),
                  w - ((wo - 1) * 2 - 2 * pw + dw * (kw - 1) + 1))
        assume(0 <= min(outpad) and max(outpad) < 2)     # < max(stride, dilation)

        def fn(x, w, b):
            return conv.conv_transpose2d(x, w, b, 2, (ph, pw), outpad, (dh, dw))
    else:
        x = rng.standard_normal((b, c, h, w))
        wt = rng.standard_normal((c_out, c, kh, kw))

        def fn(x, w, b):
            return conv.conv2d(x, w, b, 2, (ph, pw), (dh, dw))
    arrays = [x, wt, rng.standard_normal(c if transposed else c_out) if bias else None]
    saved = conv.CHUNK_BYTES
    conv.CHUNK_BYTES = chunk_bytes or saved
    try:
        (fast, names), (ref, _) = run_both(fn, arrays, device="cpu",
                                           requires=[True, True, bias])
    finally:
        conv.CHUNK_BYTES = saved
    if fast_name_expected("cpu"):
        assert names == ["ConvTranspose2dFn" if transposed else "Conv2dFn"]
    assert_same(fast, ref, np.float64, "stride-2 conv")


@settings(max_examples=8)
@given(case=conv_cases())
def test_conv2d_reference_gradcheck(case):
    arrays, stride, padding, _, dilation = case
    ts = [None if a is None else tl.tensor(a, requires_grad=True) for a in arrays]
    from tinylatent import kernels
    with kernels.use_reference():
        assert tl.gradcheck(lambda x, w, b: conv.conv2d(x, w, b, stride, padding, dilation),
                            ts)


@pytest.mark.parametrize("transposed", [False, True])
def test_conv_fast_gradcheck_and_double_backward(transposed):
    rng = np.random.default_rng(1)
    x = tl.tensor(rng.standard_normal((2, 3, 5, 4)), requires_grad=True)
    if transposed:
        w = tl.tensor(rng.standard_normal((3, 2, 3, 2)), requires_grad=True)

        def f(x, w, b):
            return conv.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)
    else:
        w = tl.tensor(rng.standard_normal((2, 3, 3, 2)), requires_grad=True)

        def f(x, w, b):
            return conv.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2))
    b = tl.tensor(rng.standard_normal(2), requires_grad=True)
    assert tl.gradcheck(f, [x, w, b])
    # Second order: the fast backward rebuilds the reference under create_graph.
    assert tl.gradgradcheck(f, [x, w, b])


def test_conv2d_groups_and_same_padding_fall_back_correctly():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 6, 5))
    w = rng.standard_normal((6, 2, 3, 3))
    y = conv.conv2d(tl.tensor(x), tl.tensor(w), groups=2, padding=1)
    want = np.concatenate([naive_conv2d(x[:, :2], w[:3], None, (1, 1), (1, 1), (1, 1)),
                           naive_conv2d(x[:, 2:], w[3:], None, (1, 1), (1, 1), (1, 1))], 1)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-10)
    w2 = rng.standard_normal((3, 4, 4, 3))
    y = conv.conv2d(tl.tensor(x), tl.tensor(w2), padding="same")
    assert y.shape == (2, 3, 6, 5)
    # 'same' with an even kernel pads one more at the bottom: compare with explicit padding
    xp = np.pad(x, ((0, 0), (0, 0), (1, 2), (1, 1)))
    np.testing.assert_allclose(y.numpy(), naive_conv2d(xp, w2, None, (1, 1), (0, 0), (1, 1)),
                               rtol=1e-10)


def test_conv_errors_name_the_op_and_shapes():
    x = tl.randn(2, 3, 5, 5)
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels .* expects 4"):
        conv.conv2d(x, tl.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: input must be 4-D"):
        conv.conv2d(tl.randn(3, 5, 5), tl.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: .*smaller than the dilated kernel"):
        conv.conv2d(x, tl.randn(2, 3, 3, 3), dilation=3)
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(2,\)"):
        conv.conv2d(x, tl.randn(2, 3, 3, 3), tl.randn(3))
    with pytest.raises(ValueError, match=r"conv2d: stride must be >= 1"):
        conv.conv2d(x, tl.randn(2, 3, 3, 3), stride=0)
    with pytest.raises(TypeError, match=r"conv2d: input dtype float64 and weight dtype"):
        conv.conv2d(x.double(), tl.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv_transpose2d: output_padding"):
        conv.conv_transpose2d(x, tl.randn(3, 2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"conv_transpose2d: input has 3 channels"):
        conv.conv_transpose2d(x, tl.randn(4, 2, 3, 3))


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 0)])
def test_conv2d_with_bias_on_a_larger_batch_matches_loops(stride, padding):
    # Large enough that the kernel's buffers come fresh from the OS (zero-filled): a
    # kernel that forgets to write part of a buffer (e.g. the bias row) fails here even
    # where small cases pass on recycled memory.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 2, 28, 28)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    for _ in range(2):  # the second call runs on recycled buffers
        y = conv.conv2d(tl.tensor(x), tl.tensor(w), tl.tensor(b), stride, padding)
        want = naive_conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                            (stride, stride), (padding, padding), (1, 1))
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("x_requires_grad", [True, False])
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_empty_batch_runs_forward_and_backward(op, x_requires_grad, device):
    """Batch 0 gives empty outputs and gradients (a zero weight gradient), as the reference
    does; the fast backward used to fail reshaping an empty array with -1."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((0, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 3) if op == "conv2d" else (3, 4, 3, 3))
    b = rng.standard_normal(4)

    def fn(x_, w_, b_):
        if op == "conv2d":
            return conv.conv2d(x_, w_, b_, stride=1, padding=1)
        return conv.conv_transpose2d(x_, w_, b_, stride=2, padding=1, output_padding=1)
    (fast, names), (ref, _) = run_both(fn, [x, w, b], requires=[x_requires_grad, True, True],
                                       device=device)
    if fast_name_expected(device):
        assert names[0] in ("Conv2dFn", "ConvTranspose2dFn")
    assert_same(fast, ref, np.float64, f"{op} batch 0")
    assert fast[0].shape[0] == 0 and not fast[-2].any()
