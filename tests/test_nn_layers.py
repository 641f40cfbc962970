"""Conv, pooling, normalization, dropout, embedding and nn.utils against NumPy references,
with gradchecks in float64."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent import nn
from tinylatent.nn import functional as F
from tinylatent.nn import utils


def _t(a, grad=True):
    return tl.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# ---------------------------------------------------------------------- NumPy references
def np_conv2d(x, w, b, stride, pad, dil, groups):
    bsz, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    ho = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((bsz, o, ho, wo))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, g * cg:(g + 1) * cg,
                           i * stride[0]:i * stride[0] + dil[0] * (kh - 1) + 1:dil[0],
                           j * stride[1]:j * stride[1] + dil[1] * (kw - 1) + 1:dil[1]]
                y[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
    return y + (0 if b is None else b[None, :, None, None])


def np_pool(x, k, s, p, kind, count_include_pad=True):
    bsz, c, h, w = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    ones = np.pad(np.ones((h, w)), p)
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y = np.zeros((bsz, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            win = xp[:, :, i * s:i * s + k, j * s:j * s + k]
            if kind == "max":
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                n = k * k if count_include_pad else ones[i * s:i * s + k, j * s:j * s + k].sum()
                y[:, :, i, j] = win.sum(axis=(2, 3)) / n
    return y


# ---------------------------------------------------------------------- Linear-like layers
@pytest.mark.parametrize("cfg", [
    dict(stride=(1, 1), pad=(0, 0), dil=(1, 1), groups=1),
    dict(stride=(2, 1), pad=(1, 2), dil=(1, 2), groups=2),
])
def test_conv2d_layer_against_numpy(cfg):
    m = nn.Conv2d(4, 6, (3, 2), stride=cfg["stride"], padding=cfg["pad"],
                  dilation=cfg["dil"], groups=cfg["groups"]).double()
    assert m.weight.shape == (6, 4 // cfg["groups"], 3, 2) and m.bias.shape == (6,)
    x = tl.randn(2, 4, 6, 5, dtype=tl.float64, requires_grad=True)
    ref = np_conv2d(x.detach().numpy(), m.weight.detach().numpy(), m.bias.detach().numpy(),
                    cfg["stride"], cfg["pad"], cfg["dil"], cfg["groups"])
    np.testing.assert_allclose(m(x).detach().numpy(), ref, atol=1e-12)
    assert tl.gradcheck(lambda x, w, b: F.conv2d(x, w, b, cfg["stride"], cfg["pad"],
                                                 cfg["dil"], cfg["groups"]),
                        [x, m.weight, m.bias])
    np.testing.assert_allclose(m(x[0]).detach().numpy(), ref[0], atol=1e-12)  # unbatched input


def test_conv_default_init_bounds():
    tl.manual_seed(0)
    m = nn.Conv2d(8, 16, 3)
    bound = 1.0 / math.sqrt(8 * 9)
    assert np.abs(m.weight.detach().numpy()).max() <= bound
    assert np.abs(m.weight.detach().numpy()).max() > 0.98 * bound
    assert np.abs(m.bias.detach().numpy()).max() <= bound
    t = nn.ConvTranspose2d(8, 16, 4, stride=2)
    assert t.weight.shape == (8, 16, 4, 4)
    assert np.abs(t.weight.detach().numpy()).max() <= 1.0 / math.sqrt(16 * 16)  # fan_in = dim 1


def test_conv1d_is_conv2d_of_a_row():
    m = nn.Conv1d(3, 5, 3, stride=2, padding=1, dilation=1).double()
    x = tl.randn(2, 3, 9, dtype=tl.float64, requires_grad=True)
    ref = np_conv2d(x.detach().numpy()[:, :, None], m.weight.detach().numpy()[:, :, None],
                    m.bias.detach().numpy(), (1, 2), (0, 1), (1, 1), 1)[:, :, 0]
    np.testing.assert_allclose(m(x).detach().numpy(), ref, atol=1e-12)
    assert tl.gradcheck(lambda x, w: F.conv1d(x, w, None, 2, 1), [x, m.weight])


def test_conv_transpose2d_is_the_adjoint_of_conv2d():
    # <conv_transpose(y), x> == <y, conv(x)> for the same weight: the defining property
    m = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, bias=False).double()
    x = tl.randn(2, 3, 8, 8, dtype=tl.float64)
    y = tl.randn(2, 4, 4, 4, dtype=tl.float64)
    up = m(y)
    assert up.shape == (2, 3, 8, 8)
    conv = np_conv2d(x.detach().numpy(), m.weight.detach().numpy(), None, (2, 2), (1, 1), (1, 1), 1)
    np.testing.assert_allclose((up.detach().numpy() * x.detach().numpy()).sum(),
                               (y.detach().numpy() * conv).sum(), rtol=1e-10)
    assert m(y, output_size=(7, 7)).shape == (2, 3, 7, 7)
    with pytest.raises(ValueError, match="output_size"):
        m(y, output_size=(12, 12))
    yg = tl.randn(1, 4, 3, 3, dtype=tl.float64, requires_grad=True)
    assert tl.gradcheck(lambda y, w: F.conv_transpose2d(y, w, None, 2, 1, 1), [yg, m.weight])


# ---------------------------------------------------------------------- pooling
@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 0)])
def test_pooling_against_numpy(k, s, p):
    x = tl.randn(2, 3, 7, 6, dtype=tl.float64, requires_grad=True)
    np.testing.assert_allclose(nn.MaxPool2d(k, s, p)(x).detach().numpy(),
                               np_pool(x.detach().numpy(), k, s, p, "max"))
    np.testing.assert_allclose(nn.AvgPool2d(k, s, p)(x).detach().numpy(),
                               np_pool(x.detach().numpy(), k, s, p, "avg"), rtol=1e-12)
    np.testing.assert_allclose(nn.AvgPool2d(k, s, p, count_include_pad=False)(x).detach().numpy(),
                               np_pool(x.detach().numpy(), k, s, p, "avg", False), rtol=1e-12)


@given(b=st.integers(1, 2), c=st.integers(1, 2), h=st.integers(2, 6), w=st.integers(2, 6),
       k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 1), seed=st.integers(0, 999))
def test_pooling_gradcheck_hypothesis(b, c, h, w, k, s, p, seed):
    p = min(p, k // 2)
    if h + 2 * p < k or w + 2 * p < k:
        return
    rng = np.random.default_rng(seed)
    x = _t(rng.standard_normal((b, c, h, w)))  # continuous values: no ties
    assert tl.gradcheck(lambda x: F.max_pool2d(x, k, s, p), [x])
    assert tl.gradcheck(lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=False), [x])


def test_max_pool_ties_share_gradient():
    x = _t(np.ones((1, 1, 2, 2)))
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((1, 1, 2, 2), 0.25))


def test_pooling_1d_adaptive_upsample_and_errors():
    x = tl.randn(2, 3, 8, dtype=tl.float64)
    np.testing.assert_allclose(nn.MaxPool1d(2)(x).numpy(),
                               x.numpy().reshape(2, 3, 4, 2).max(-1))
    np.testing.assert_allclose(nn.AvgPool1d(4)(x).numpy(),
                               x.numpy().reshape(2, 3, 2, 4).mean(-1))
    x2 = tl.randn(2, 3, 5, 7, dtype=tl.float64, requires_grad=True)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(x2).detach().numpy(),
                               x2.detach().numpy().mean(axis=(2, 3), keepdims=True))
    # uneven bins follow PyTorch: start = floor(i H / Ho), end = ceil((i + 1) H / Ho)
    out = nn.AdaptiveAvgPool2d((2, 3))(x2).detach().numpy()
    np.testing.assert_allclose(out[..., 1, 2],
                               x2.detach().numpy()[..., 2:5, 4:7].mean(axis=(-2, -1)))
    assert tl.gradcheck(lambda x: F.adaptive_avg_pool2d(x, (2, 3)), [x2])
    up = nn.Upsample(scale_factor=2)(x2)
    np.testing.assert_array_equal(up.detach().numpy(),
                                  x2.detach().numpy().repeat(2, 2).repeat(2, 3))
    assert F.interpolate(x2, size=(10, 14)).shape == (2, 3, 10, 14)
    with pytest.raises(ValueError, match="positive integer"):
        F.interpolate(x2, scale_factor=1.5)
    with pytest.raises(ValueError, match="too small"):
        F.max_pool2d(tl.randn(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match="at most half the kernel"):
        F.max_pool2d(tl.randn(1, 1, 6, 6), 2, padding=2)


# ---------------------------------------------------------------------- normalization
def test_batchnorm2d_train_and_eval_against_numpy():
    bn = nn.BatchNorm2d(3, momentum=0.2).double()
    with tl.no_grad():
        bn.weight.copy_(tl.tensor([0.5, 1.0, 2.0]))
        bn.bias.copy_(tl.tensor([0.1, -0.2, 0.3]))
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((4, 3, 2, 5)) * 2 + 1 for _ in range(3)]
    rm, rv = np.zeros(3), np.ones(3)
    w = bn.weight.detach().numpy()[None, :, None, None]
    b = bn.bias.detach().numpy()[None, :, None, None]
    for x in xs:
        mu = x.mean(axis=(0, 2, 3), keepdims=True)
        var = x.var(axis=(0, 2, 3), keepdims=True)
        ref = (x - mu) / np.sqrt(var + 1e-5) * w + b
        np.testing.assert_allclose(bn(_t(x, False)).detach().numpy(), ref, atol=1e-12)
        n = x.size // 3
        rm = 0.8 * rm + 0.2 * mu.ravel()
        rv = 0.8 * rv + 0.2 * var.ravel() * n / (n - 1)  # unbiased running variance
    np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-12)
    assert bn.num_batches_tracked.item() == 3
    bn.eval()
    x = xs[0]
    ref = (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5) * w + b
    np.testing.assert_allclose(bn(_t(x, False)).detach().numpy(), ref, atol=1e-12)
    assert bn.num_batches_tracked.item() == 3  # eval does not touch the statistics
    sd = bn.state_dict()
    assert list(sd) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    bn2 = nn.BatchNorm2d(3).double().eval()
    bn2.load_state_dict(sd)
    np.testing.assert_allclose(bn2(_t(x, False)).detach().numpy(), ref, atol=1e-12)


def test_batchnorm1d_shapes_and_errors():
    bn = nn.BatchNorm1d(4, affine=False).double()
    x = tl.randn(6, 4, dtype=tl.float64)
    y = bn(x).numpy()
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(0), 1, rtol=1e-4)
    assert bn(tl.randn(3, 4, 5, dtype=tl.float64)).shape == (3, 4, 5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(tl.randn(1, 4, dtype=tl.float64))
    with pytest.raises(ValueError, match="num_features=4"):
        bn(tl.randn(2, 3, dtype=tl.float64))
    no_stats = nn.BatchNorm1d(4, track_running_stats=False).eval()
    assert no_stats.running_mean is None and "running_mean" not in no_stats.state_dict()
    y = no_stats(tl.randn(8, 4)).detach().numpy()  # eval still normalizes with batch statistics
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)


@given(n=st.integers(2, 4), c=st.integers(1, 3), l=st.integers(1, 3), seed=st.integers(0, 999))
def test_norm_gradchecks_hypothesis(n, c, l, seed):
    rng = np.random.default_rng(seed)
    x = _t(rng.standard_normal((n, c, l)))
    w, b = _t(rng.standard_normal(c) + 1), _t(rng.standard_normal(c))
    assert tl.gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                        [x, w, b])
    lw, lb = _t(rng.standard_normal((c, l))), _t(rng.standard_normal((c, l)))
    assert tl.gradcheck(lambda x, w, b: F.layer_norm(x, (c, l), w, b), [x, lw, lb])
    rm, rv = tl.tensor(rng.standard_normal(c)), tl.tensor(rng.random(c) + 0.5)
    assert tl.gradcheck(lambda x: F.batch_norm(x, rm, rv, training=False), [x])


@given(n=st.integers(2, 5), c=st.integers(1, 4), rest=st.sampled_from([(), (3,), (2, 3)]),
       seed=st.integers(0, 2 ** 16), dtype=st.sampled_from([np.float32, np.float64]))
def test_fused_batch_norm_matches_the_composite_and_torch(n, c, rest, seed, dtype):
    """Training-mode batch norm with weight and bias is one BatchNormFn node; its output,
    the three gradients and the running statistics equal the composite's (_Standardize, Mul,
    Add: the node's create_graph reference) and torch's."""
    torch = pytest.importorskip("torch")
    from tinylatent.ops import normalization as N
    rng = np.random.default_rng(seed)
    arrays = [(rng.standard_normal((n, c) + rest) * 3 + 1).astype(dtype),
              rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)]
    g = rng.standard_normal((n, c) + rest).astype(dtype)

    def run(fused):
        x, w, b = (tl.tensor(a, requires_grad=True) for a in arrays)
        rm, rv = tl.zeros(c, dtype=dtype), tl.ones(c, dtype=dtype)
        if fused:
            y = F.batch_norm(x, rm, rv, w, b, training=True)
            assert y.grad_fn.fn is N.BatchNormFn
        else:
            y = N._channel_affine(N._Standardize.apply(x, axes=(0,) + tuple(range(2, x.ndim)),
                                                       eps=1e-5)[0], w, b)
            F.batch_norm(x.detach(), rm, rv, None, None, training=True)   # the statistics
        (y * tl.tensor(g)).sum().backward()
        return [y.detach().numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy(),
                rm.numpy(), rv.numpy()]

    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    fused = run(True)
    for got, want in zip(fused, run(False)):
        np.testing.assert_allclose(got, want, **tol)
    X, W, B = (torch.tensor(a, requires_grad=True) for a in arrays)
    RM, RV = torch.zeros(c, dtype=X.dtype), torch.ones(c, dtype=X.dtype)
    Y = torch.nn.functional.batch_norm(X, RM, RV, W, B, training=True)
    (Y * torch.tensor(g)).sum().backward()
    for got, want in zip(fused, (Y, X.grad, W.grad, B.grad, RM, RV)):
        np.testing.assert_allclose(got, want.detach().numpy(), **tol)


def test_fused_batch_norm_second_order_goes_through_the_composite():
    rng = np.random.default_rng(3)
    x, w, b = _t(rng.standard_normal((4, 3, 5))), _t(rng.standard_normal(3) + 1), \
        _t(rng.standard_normal(3))
    f = lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)   # noqa: E731
    assert tl.gradcheck(f, [x, w, b]) and tl.gradgradcheck(f, [x, w, b])


def test_layernorm_and_groupnorm_against_numpy():
    ln = nn.LayerNorm(5).double()
    with tl.no_grad():
        ln.weight.copy_(tl.arange(5.0))
    x = tl.randn(3, 4, 5, dtype=tl.float64)
    a = x.numpy()
    ref = (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln(x).detach().numpy(), ref * np.arange(5.0), atol=1e-12)
    with pytest.raises(ValueError, match="normalized_shape"):
        ln(tl.randn(3, 4))
    gn = nn.GroupNorm(2, 4).double()
    x = tl.randn(2, 4, 3, dtype=tl.float64, requires_grad=True)
    g = x.detach().numpy().reshape(2, 2, 6)
    ref = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5))
    np.testing.assert_allclose(gn(x).detach().numpy(), ref.reshape(2, 4, 3), atol=1e-12)
    assert tl.gradcheck(gn, [x])


# ---------------------------------------------------------------------- dropout, embedding
def test_dropout_train_and_eval():
    d = nn.Dropout(0.3)
    x = tl.ones(200, 100)
    y = d(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    d.eval()
    assert d(x) is x
    assert float(F.dropout(x, 1.0).abs().sum()) == 0.0
    a = F.dropout(x, 0.5, generator=tl.Generator(3)).numpy()
    b = F.dropout(x, 0.5, generator=tl.Generator(3)).numpy()
    np.testing.assert_array_equal(a, b)
    xg = tl.randn(4, 3, dtype=tl.float64, requires_grad=True)
    mask_gen = tl.Generator(1)
    # the mask is fixed by the generator's seed, so the function is deterministic to check
    assert tl.gradcheck(lambda x: F.dropout(x, 0.5, generator=mask_gen.manual_seed(1)), [xg])
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)


def test_embedding_lookup_and_padding_idx():
    emb = nn.Embedding(6, 3, padding_idx=0).double()
    np.testing.assert_array_equal(emb.weight.detach().numpy()[0], 0)
    idx = tl.tensor([[0, 2, 2], [5, 0, 1]])
    y = emb(idx)
    np.testing.assert_array_equal(y.detach().numpy(),
                                  emb.weight.detach().numpy()[idx.numpy()])
    gout = np.random.default_rng(0).standard_normal((2, 3, 3))
    (y * tl.tensor(gout)).sum().backward()
    ref = np.zeros((6, 3))
    np.add.at(ref, idx.numpy(), gout)
    ref[0] = 0  # the padding row gets no gradient
    np.testing.assert_allclose(emb.weight.grad.numpy(), ref)
    assert tl.gradcheck(lambda w: F.embedding(idx, w), [emb.weight])
    with pytest.raises(IndexError, match=r"indices must be in \[0, 6\)"):
        emb(tl.tensor([6]))
    pre = nn.Embedding.from_pretrained(tl.eye(4))
    assert not pre.weight.requires_grad and pre(tl.tensor([2])).numpy().tolist() == \
        [[0, 0, 1, 0]]


# ---------------------------------------------------------------------- nn.utils
def test_clip_grad_norm():
    m = nn.Linear(3, 2).double()
    m.weight.grad = tl.full((2, 3), 2.0, dtype=tl.float64)
    m.bias.grad = tl.tensor([3.0, 4.0], dtype=tl.float64)
    total = math.sqrt(6 * 4 + 9 + 16)
    norm = utils.clip_grad_norm_(m.parameters(), max_norm=1.0)
    assert float(norm) == pytest.approx(total)
    clipped = math.sqrt(sum(float((p.grad ** 2).sum()) for p in m.parameters()))
    assert clipped == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(m.bias.grad.numpy(), np.array([3.0, 4.0]) / (total + 1e-6))
    # below the threshold nothing changes
    before = m.weight.grad.numpy().copy()
    assert float(utils.clip_grad_norm_(m.parameters(), max_norm=10.0)) == pytest.approx(1.0, 1e-5)
    np.testing.assert_array_equal(m.weight.grad.numpy(), before)
    m.bias.grad = tl.tensor([-7.0, 1.0], dtype=tl.float64)
    assert float(utils.clip_grad_norm_(m.parameters(), 100.0, norm_type=math.inf)) == 7.0
    m.bias.grad = tl.tensor([math.inf, 1.0], dtype=tl.float64)
    with pytest.raises(RuntimeError, match="total norm"):
        utils.clip_grad_norm_(m.parameters(), 1.0, error_if_nonfinite=True)
    utils.clip_grad_value_(m.parameters(), 0.5)
    assert float(m.bias.grad.max()) == 0.5


def test_parameter_vector_round_trip():
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    vec = utils.parameters_to_vector(m.parameters())
    assert vec.shape == (m.num_parameters(),)
    new = tl.arange(float(vec.numel()))
    utils.vector_to_parameters(new, m.parameters())
    np.testing.assert_array_equal(utils.parameters_to_vector(m.parameters()).detach().numpy(),
                                  new.numpy())
    np.testing.assert_array_equal(m[0].weight.detach().numpy(), np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match="vector has 3 entries"):
        utils.vector_to_parameters(tl.zeros(3), m.parameters())


def test_second_order_gradients_through_layers():
    # gradient penalties, contractive AEs and Hessian-vector products differentiate through
    # a layer's backward; these composites must survive a second differentiation
    rng = np.random.default_rng(9)
    x = _t(rng.standard_normal((3, 2, 4)))
    w, b = _t(rng.standard_normal(2) + 1), _t(rng.standard_normal(2))
    assert tl.gradgradcheck(lambda x, w: F.batch_norm(x, None, None, w, b, training=True),
                            [x, w])
    assert tl.gradgradcheck(lambda x: F.layer_norm(x, (4,)), [x])
    x4 = _t(rng.standard_normal((1, 2, 4, 4)))
    assert tl.gradgradcheck(lambda x: F.max_pool2d(x, 2) ** 2, [x4])
    assert tl.gradgradcheck(lambda x: F.avg_pool2d(x, 3, 1, 1) ** 2, [x4])
    lin = nn.Linear(4, 3).double()
    assert tl.gradgradcheck(lambda x, w: F.linear(x, w, lin.bias).tanh(), [x, lin.weight])


# ---------------------------------------------------------------------- PyTorch's layers, issue 13
def _torch_pair(torch, a):
    return _t(a), torch.tensor(a, requires_grad=True)


@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (True, True),
                                          (False, True)])
def test_instance_norm2d_matches_torch_in_training_and_eval(affine, track):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ours = nn.InstanceNorm2d(3, affine=affine, track_running_stats=track, momentum=0.2).double()
    theirs = torch.nn.InstanceNorm2d(3, affine=affine, track_running_stats=track,
                                     momentum=0.2).double()
    if affine:
        w, b = rng.normal(size=3), rng.normal(size=3)
        ours.weight.data.copy_(tl.tensor(w))
        ours.bias.data.copy_(tl.tensor(b))
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(w))
            theirs.bias.copy_(torch.tensor(b))
    for step in range(3):
        a = rng.normal(2.0, 3.0, size=(4, 3, 5, 6))
        x, xt = _torch_pair(torch, a)
        y, yt = ours(x), theirs(xt)
        np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
        up = rng.normal(size=y.shape)
        (y * tl.tensor(up)).sum().backward()
        (yt * torch.tensor(up)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    if affine:
        np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(),
                                   rtol=1e-10)
    if track:
        np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy(),
                                   rtol=1e-12)
        np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(),
                                   rtol=1e-12)
    ours.eval()
    theirs.eval()
    a = rng.normal(size=(3, 5, 6))                       # unbatched (C, H, W) too
    np.testing.assert_allclose(ours(_t(a, False)).detach().numpy(),
                               theirs(torch.tensor(a)).detach().numpy(), rtol=1e-10,
                               atol=1e-12)


def test_reflection_pad_and_pixel_shuffle_match_torch_with_gradients():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 8, 4, 5))
    for ours, theirs in [(nn.ReflectionPad2d((1, 3, 2, 0)), torch.nn.ReflectionPad2d((1, 3, 2, 0))),
                         (nn.ReflectionPad2d(2), torch.nn.ReflectionPad2d(2)),
                         (nn.ReplicationPad2d((2, 0, 1, 3)),
                          torch.nn.ReplicationPad2d((2, 0, 1, 3))),
                         (nn.ZeroPad2d((1, 0, 0, 2)), torch.nn.ZeroPad2d((1, 0, 0, 2))),
                         (nn.ReflectionPad1d(3), torch.nn.ReflectionPad1d(3)),
                         (nn.PixelShuffle(2), torch.nn.PixelShuffle(2)),
                         (nn.PixelUnshuffle(2), torch.nn.PixelUnshuffle(2))]:
        x, xt = _torch_pair(torch, a if not isinstance(ours, nn.PixelUnshuffle)
                            else a[:, :, :4, :4])
        if isinstance(ours, nn.ReflectionPad1d):
            x, xt = _torch_pair(torch, a[0])
        y, yt = ours(x), theirs(xt)
        assert y.shape == tuple(yt.shape), ours
        np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
        up = rng.normal(size=y.shape)
        (y * tl.tensor(up)).sum().backward()
        (yt * torch.tensor(up)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12, err_msg=repr(ours))
    assert tl.pixel_unshuffle(tl.pixel_shuffle(_t(a, False), 2), 2).numpy().tolist() == a.tolist()


def test_dropout2d_zeroes_whole_channels_and_keeps_the_mean():
    x = tl.ones(64, 32, 3, 3)
    layer = nn.Dropout2d(0.25)
    y = layer(x).numpy()
    per_channel = y.reshape(64, 32, 9)
    assert np.all(per_channel.min(-1) == per_channel.max(-1))           # constant per channel
    assert set(np.unique(y).tolist()) == {0.0, float(np.float32(1 / 0.75))}
    assert abs((y == 0).mean() - 0.25) < 0.03                            # 2048 channels drawn
    layer.eval()
    assert layer(x) is x
    with pytest.raises(ValueError, match="3-D .* or 4-D"):
        F.dropout2d(tl.ones(3, 4))


def test_hardtanh_batchnorm3d_pad_sequence_and_data_parallel_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    a = rng.normal(size=(2, 3, 2, 3, 4)) * 2
    for ours, theirs in [(nn.Hardtanh(-0.5, 1.5), torch.nn.Hardtanh(-0.5, 1.5)),
                         (nn.ReLU6(), torch.nn.ReLU6()),
                         (nn.Softplus(2.0, 3.0), torch.nn.Softplus(2.0, 3.0)),
                         (nn.BatchNorm3d(3).double(), torch.nn.BatchNorm3d(3).double())]:
        x, xt = _torch_pair(torch, a)
        y, yt = ours(x), theirs(xt)
        np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
        (y * y).sum().backward()
        (yt * yt).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    seqs = [rng.normal(size=(n, 2)) for n in (3, 1, 4)]
    for kw in (dict(), dict(batch_first=True, padding_value=-1.0),
               dict(batch_first=True, padding_side="left")):
        ours = nn.utils.rnn.pad_sequence([_t(s) for s in seqs], **kw)
        theirs = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs], **kw)
        np.testing.assert_array_equal(ours.detach().numpy(), theirs.numpy())
    wrapped = nn.DataParallel(nn.Linear(3, 2))
    assert list(wrapped.state_dict()) == list(
        torch.nn.DataParallel(torch.nn.Linear(3, 2)).state_dict())
    x = tl.randn(4, 3)
    np.testing.assert_array_equal(wrapped(x).detach().numpy(),
                                  wrapped.module(x).detach().numpy())
