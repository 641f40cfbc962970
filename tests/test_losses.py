"""tl.losses against NumPy formulas, and their gradients against finite differences."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent import losses as L


def _reduce(v, reduction):
    return {"mean": v.mean(), "sum": v.sum(), "none": v}[reduction]


def _log_softmax(x, axis=1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


RED = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", RED)
def test_mse_l1_smooth_l1(reduction):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4, 3))
    x, y = tl.tensor(a, requires_grad=True), tl.tensor(b)
    np.testing.assert_allclose(L.mse_loss(x, y, reduction).detach().numpy(),
                               _reduce((a - b) ** 2, reduction))
    np.testing.assert_allclose(L.l1_loss(x, y, reduction).detach().numpy(),
                               _reduce(np.abs(a - b), reduction))
    d = np.abs(a - b)
    ref = np.where(d < 0.5, 0.5 * d ** 2 / 0.5, d - 0.25)
    np.testing.assert_allclose(L.smooth_l1_loss(x, y, reduction, beta=0.5).detach().numpy(),
                               _reduce(ref, reduction))
    assert tl.gradcheck(lambda x: L.mse_loss(x, y, reduction), [x])
    assert tl.gradcheck(lambda x: L.l1_loss(x, y, reduction), [x])
    with pytest.raises(ValueError, match="mse_loss: input shape"):
        L.mse_loss(x, tl.zeros(4, 1, dtype=tl.float64))
    with pytest.raises(ValueError, match="reduction must be one of"):
        L.mse_loss(x, y, "avg")


@pytest.mark.parametrize("reduction", RED)
def test_binary_cross_entropy(reduction):
    rng = np.random.default_rng(1)
    p = 1 / (1 + np.exp(-rng.standard_normal((3, 5))))
    t = rng.random((3, 5))
    w = rng.random(5)
    ref = -(t * np.log(p) + (1 - t) * np.log(1 - p)) * w
    x = tl.tensor(p, requires_grad=True)
    tt = tl.tensor(t, requires_grad=True)
    out = L.binary_cross_entropy(x, tt, weight=tl.tensor(w), reduction=reduction)
    np.testing.assert_allclose(out.detach().numpy(), _reduce(ref, reduction), rtol=1e-12)
    assert tl.gradcheck(lambda x, t: L.binary_cross_entropy(x, t, reduction=reduction),
                        [x, tt])
    assert tl.gradgradcheck(lambda x: L.binary_cross_entropy(x, tt, reduction="sum"), [x])


def test_binary_cross_entropy_saturated_is_finite_like_pytorch():
    # float32 sigmoid saturates to exactly 0 and 1: PyTorch clamps each log at -100
    p = tl.tensor([0.0, 1.0, 1.0, 0.0], requires_grad=True)
    t = tl.tensor([0.0, 1.0, 0.0, 1.0])
    loss = L.binary_cross_entropy(p, t, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [0.0, 0.0, 100.0, 100.0])
    loss.sum().backward()
    g = p.grad.numpy()
    assert np.all(np.isfinite(g)) and g[0] == 0 and g[1] == 0 and g[2] > 1e10 and g[3] < -1e10
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        L.binary_cross_entropy(tl.tensor([1.5]), tl.tensor([1.0]))


@pytest.mark.parametrize("reduction", RED)
def test_bce_with_logits_stable(reduction):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4, 3)) * 3
    z[0, 0], z[1, 1] = 800.0, -800.0       # exp would overflow in a naive formula
    t = rng.random((4, 3))
    pw = np.array([0.5, 1.0, 3.0])
    x = tl.tensor(z, requires_grad=True)
    ref = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    out = L.binary_cross_entropy_with_logits(x, tl.tensor(t), reduction=reduction)
    np.testing.assert_allclose(out.detach().numpy(), _reduce(ref, reduction), rtol=1e-12)
    lw = 1 + (pw - 1) * t
    ref_pw = (1 - t) * z + lw * (np.maximum(-z, 0) + np.log1p(np.exp(-np.abs(z))))
    out = L.binary_cross_entropy_with_logits(x, tl.tensor(t), reduction=reduction,
                                             pos_weight=tl.tensor(pw))
    np.testing.assert_allclose(out.detach().numpy(), _reduce(ref_pw, reduction), rtol=1e-12)
    x.array[0, 0], x.array[1, 1] = 2.0, -1.0  # finite differences need a moderate region
    assert tl.gradcheck(lambda x: L.binary_cross_entropy_with_logits(
        x, tl.tensor(t), reduction=reduction, pos_weight=tl.tensor(pw)), [x])


@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_int_targets(reduction, smoothing, weighted):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    y[2] = -100  # ignored
    w = rng.random(4) + 0.5 if weighted else np.ones(4)
    lp = _log_softmax(z)
    keep = y != -100
    ys = np.where(keep, y, 0)
    wy = w[ys] * keep
    nll = -lp[np.arange(6), ys] * wy
    smooth = -(lp * w).sum(1) * keep
    if reduction == "mean":
        nll_r, smooth_r = nll.sum() / wy.sum(), smooth.sum() / wy.sum()
    else:
        nll_r, smooth_r = _reduce(nll, reduction), _reduce(smooth, reduction)
    ref = (1 - smoothing) * nll_r + smoothing / 4 * smooth_r
    x = tl.tensor(z, requires_grad=True)
    kw = dict(weight=tl.tensor(w) if weighted else None, reduction=reduction,
              label_smoothing=smoothing)
    np.testing.assert_allclose(L.cross_entropy(x, tl.tensor(y), **kw).detach().numpy(), ref,
                               rtol=1e-12)
    assert tl.gradcheck(lambda x: L.cross_entropy(x, tl.tensor(y), **kw), [x])


def test_cross_entropy_spatial_prob_targets_and_nll():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2, 3, 4, 5))
    y = rng.integers(0, 3, (2, 4, 5))
    lp = _log_softmax(z)
    ref = -np.take_along_axis(lp, y[:, None], 1).mean()
    x = tl.tensor(z, requires_grad=True)
    np.testing.assert_allclose(L.cross_entropy(x, tl.tensor(y)).detach().numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(L.nll_loss(tl.tensor(lp), tl.tensor(y)).numpy(), ref,
                               rtol=1e-12)
    # probability targets: -sum_c t_c log p_c, mean over the N*H*W positions
    t = rng.random(z.shape)
    t /= t.sum(1, keepdims=True)
    ref = -(t * lp).sum(1).mean()
    np.testing.assert_allclose(L.cross_entropy(x, tl.tensor(t)).detach().numpy(), ref, rtol=1e-12)
    assert tl.gradcheck(lambda x: L.cross_entropy(x, tl.tensor(t)), [x])
    # a single unbatched sample
    np.testing.assert_allclose(
        L.cross_entropy(tl.tensor(z[0, :, 0, 0]), tl.tensor(y[0, 0, 0])).numpy(),
        -lp[0, y[0, 0, 0], 0, 0], rtol=1e-12)


def test_cross_entropy_errors():
    x = tl.randn(3, 4)
    with pytest.raises(IndexError, match=r"target values must be in \[0, 4\)"):
        L.cross_entropy(x, tl.tensor([0, 4, 1]))
    with pytest.raises(ValueError, match=r"needs a target of shape \(3,\)"):
        L.cross_entropy(x, tl.tensor([0, 1]))
    with pytest.raises(TypeError, match="must be integers"):
        L.nll_loss(x, tl.tensor([0.0, 1.0, 2.0]))


@given(n=st.integers(1, 5), c=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_cross_entropy_gradient_is_softmax_minus_onehot(n, c, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, c))
    y = rng.integers(0, c, n)
    x = tl.tensor(z, requires_grad=True)
    L.cross_entropy(x, tl.tensor(y), reduction="sum").backward()
    p = np.exp(_log_softmax(z))
    np.testing.assert_allclose(x.grad.numpy(), p - np.eye(c)[y], atol=1e-12)


def test_kl_div():
    rng = np.random.default_rng(5)
    q = rng.random((3, 4))
    q /= q.sum(1, keepdims=True)
    t = rng.random((3, 4))
    t /= t.sum(1, keepdims=True)
    x = tl.tensor(np.log(q), requires_grad=True)
    ref = (t * (np.log(t) - np.log(q))).sum() / 3
    np.testing.assert_allclose(
        L.kl_div(x, tl.tensor(t), reduction="batchmean").detach().numpy(), ref)
    np.testing.assert_allclose(
        L.kl_div(x, tl.tensor(np.log(t)), reduction="batchmean",
                 log_target=True).detach().numpy(), ref)
    assert tl.gradcheck(lambda x: L.kl_div(x, tl.tensor(t), reduction="sum"), [x])


def test_kl_div_target_gradient():
    """Regression (issue 13): d/dt of the mean of t (log t - x) is (log t + 1 - x) / N; it was
    missing the +1. Checked against the closed form and by gradcheck in both arguments."""
    rng = np.random.default_rng(6)
    x = tl.tensor(np.log(rng.uniform(0.1, 1.0, (3, 4))), requires_grad=True)
    t = tl.tensor(rng.uniform(0.1, 1.0, (3, 4)), requires_grad=True)
    L.kl_div(x, t).backward()
    n = 12
    np.testing.assert_allclose(t.grad.numpy(),
                               (np.log(t.detach().numpy()) + 1 - x.detach().numpy()) / n,
                               rtol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), -t.detach().numpy() / n, rtol=1e-10)
    assert tl.gradcheck(lambda x, t: L.kl_div(x, t), [x, t])
    assert tl.gradcheck(lambda x, t: L.kl_div(x, t, reduction="batchmean", log_target=True),
                        [x, t])


@pytest.mark.parametrize("squared", [True, False])
def test_triplet_loss(squared):
    rng = np.random.default_rng(6)
    a, p, n = rng.standard_normal((3, 5, 4))
    dp, dn = ((a - p) ** 2).sum(1), ((a - n) ** 2).sum(1)
    if not squared:
        dp, dn = np.sqrt(dp), np.sqrt(dn)
    ref = np.maximum(dp - dn + 0.5, 0)
    ts = [tl.tensor(v, requires_grad=True) for v in (a, p, n)]
    out = L.triplet_loss(*ts, margin=0.5, squared=squared, reduction="none")
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12)
    assert 0 < (ref > 0).sum() < 5  # both branches of the hinge are exercised
    assert tl.gradcheck(lambda a, p, n: L.triplet_loss(a, p, n, 0.5, squared), ts)


def test_triplet_margin_loss_pytorch_form():
    rng = np.random.default_rng(7)
    a, p, n = rng.standard_normal((3, 6, 3))
    eps = 1e-6

    def d(x, y):
        return np.sqrt(((x - y + eps) ** 2).sum(1))
    ref = np.maximum(d(a, p) - np.minimum(d(a, n), d(p, n)) + 1.0, 0).mean()
    ts = [tl.tensor(v, requires_grad=True) for v in (a, p, n)]
    np.testing.assert_allclose(L.triplet_margin_loss(*ts, swap=True).detach().numpy(), ref,
                               rtol=1e-10)
    assert tl.gradcheck(lambda a, p, n: L.triplet_margin_loss(a, p, n, swap=True), ts)


def test_n_pair_loss_matches_sohn_formula():
    rng = np.random.default_rng(8)
    f, fp = rng.standard_normal((2, 5, 3))
    negs = rng.standard_normal((5, 4, 3))
    # explicit negatives: log(1 + sum_k exp(f^T f_k^- - f^T f^+))
    s_pos = (f * fp).sum(1)
    s_neg = np.einsum("nd,nkd->nk", f, negs)
    ref = np.log1p(np.exp(s_neg - s_pos[:, None]).sum(1))
    ts = [tl.tensor(v, requires_grad=True) for v in (f, fp, negs)]
    out = L.n_pair_loss(ts[0], ts[1], ts[2], reduction="none")
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12)
    assert tl.gradcheck(lambda a, b, c: L.n_pair_loss(a, b, c), ts)
    # in-batch (efficient N-pair): the other anchors' positives are the negatives
    s = f @ fp.T
    ref = np.array([np.log1p(sum(np.exp(s[i, j] - s[i, i]) for j in range(5) if j != i))
                    for i in range(5)])
    np.testing.assert_allclose(L.n_pair_loss(ts[0], ts[1], reduction="none").detach().numpy(), ref,
                               rtol=1e-12)
    np.testing.assert_allclose(
        L.n_pair_loss(ts[0], ts[1], l2_reg=0.1).detach().numpy(),
        (ref + 0.05 * ((f ** 2).sum(1) + (fp ** 2).sum(1))).mean(), rtol=1e-12)
    assert tl.gradcheck(lambda a, b: L.n_pair_loss(a, b, l2_reg=0.1), ts[:2])
    with pytest.raises(ValueError, match=r"negatives must have shape \(N, K, D\)"):
        L.n_pair_loss(ts[0], ts[1], ts[2][:2])


def test_contrastive_losses_are_reexported():
    from tinylatent.nn import functional as F
    from tinylatent.ops import contrastive
    assert L.info_nce is contrastive.info_nce and F.nt_xent is contrastive.nt_xent


def test_loss_modules_call_the_functions():
    from tinylatent import nn
    rng = np.random.default_rng(9)
    z = tl.tensor(rng.standard_normal((4, 3)))
    y = tl.tensor(rng.integers(0, 3, 4))
    t = tl.tensor(rng.random((4, 3)))
    w = tl.tensor([1.0, 2.0, 0.5], dtype=tl.float64)
    pairs = [
        (nn.CrossEntropyLoss(weight=w, label_smoothing=0.1)(z, y),
         L.cross_entropy(z, y, weight=w, label_smoothing=0.1)),
        (nn.NLLLoss(reduction="sum")(z.log_softmax(1), y),
         L.nll_loss(z.log_softmax(1), y, reduction="sum")),
        (nn.MSELoss()(z, t), L.mse_loss(z, t)),
        (nn.L1Loss(reduction="none")(z, t), L.l1_loss(z, t, reduction="none")),
        (nn.SmoothL1Loss(beta=0.5)(z, t), L.smooth_l1_loss(z, t, beta=0.5)),
        (nn.BCELoss()(z.sigmoid(), t), L.binary_cross_entropy(z.sigmoid(), t)),
        (nn.BCEWithLogitsLoss(pos_weight=w)(z, t),
         L.binary_cross_entropy_with_logits(z, t, pos_weight=w)),
        (nn.KLDivLoss(reduction="batchmean")(z.log_softmax(1), t),
         L.kl_div(z.log_softmax(1), t, reduction="batchmean")),
        (nn.TripletMarginLoss(margin=0.3)(z, t, z * 2), L.triplet_margin_loss(z, t, z * 2, 0.3)),
    ]
    for a, b in pairs:
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert repr(nn.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"
    with pytest.raises(ValueError, match="reduction must be"):
        nn.MSELoss(reduction="avg")
