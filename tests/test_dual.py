"""Dual supervised learning (Xia et al. 2017): the duality gap against a NumPy hand computation
on a model small enough to enumerate (D = 6 pixels, K = 3 classes: P(x|y) sums to one over all
2^6 images for every class, log P^(y) is the log label frequency), the regulariser's gradient
(to both models, to each only through its own objective, never to the frozen marginal), the
conditional MADE's autoregressive property, and a short training on binarised MNIST that
must reach stated figures next to the lambda = 0 baseline on the same split."""
import itertools

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.data import binarize
from tinylatent.models import MADE, DualSupervised
from tinylatent.models.dual import evaluate_dual, train_epoch

D, K = 6, 3
LABELS = np.array([0, 1, 1, 2, 2, 2, 2, 0, 1, 2])        # P^(y) = (2, 3, 5) / 10


def _randomise(module, rng, scale=0.7):
    with tl.no_grad():
        for p in module.parameters():
            p.copy_(tl.tensor(rng.standard_normal(p.shape) * scale, dtype=p.dtype))
    return module


def _tiny(lambda_xy=0.3, lambda_yx=0.2, seed=0):
    rng = np.random.default_rng(seed)
    marginal = _randomise(MADE(in_features=D, hidden_features=(5,), seed=3), rng)
    model = DualSupervised(in_features=D, out_features=K, hidden_features=(4,),
                           density_hidden_features=(7, 5), lambda_xy=lambda_xy,
                           lambda_yx=lambda_yx, seed=1, marginal=marginal)
    _randomise(model.classifier, rng)
    _randomise(model.conditional, rng)
    model = model.to(tl.float64)
    model.set_label_marginal(LABELS)    # after .to: log P^(y) in float64 too
    return model


def _all_images():
    return np.array(list(itertools.product([0, 1], repeat=D)), dtype=np.float64)  # (64, D)


def _np(t):
    return t.detach().numpy()


def _log_bernoulli(x, logits):
    """sum_d x_d log sigmoid(l_d) + (1 - x_d) log sigmoid(-l_d), written out in NumPy."""
    return (-x * np.logaddexp(0, -logits) - (1 - x) * np.logaddexp(0, logits)).sum(1)


def _made_logits(made, x, context=None):
    """MADE by hand: h_l = relu(x (W_l * M_l)^T + b_l [+ E_l[y]]), then the masked output and
    direct layers [+ E_o[y]] (Germain et al. 2015, sec. 4, with the sec. 4.2 context)."""
    h = x
    for i, layer in enumerate(made.hidden):
        h = h @ (_np(layer.weight) * _np(layer.mask)).T + _np(layer.bias)
        h = np.maximum(h + (context[i] if context else 0.0), 0.0)
    out = (h @ (_np(made.output.weight) * _np(made.output.mask)).T + _np(made.output.bias)
           + x @ (_np(made.direct.weight) * _np(made.direct.mask)).T)
    return out + (context[-1] if context else 0.0)


def _hand_terms(model, x, y):
    """(log P^(x), log P(y|x), log P^(y), log P(x|y)) per example, in NumPy only."""
    log_px = _log_bernoulli(x, _made_logits(model.marginal, x))
    lin = [m for m in model.classifier if hasattr(m, "weight")]
    h = np.maximum(x @ _np(lin[0].weight).T + _np(lin[0].bias), 0.0)
    logits = h @ _np(lin[1].weight).T + _np(lin[1].bias)
    log_p_y_x = (logits - np.log(np.exp(logits).sum(1, keepdims=True)))[np.arange(len(y)), y]
    log_py = np.log(np.bincount(LABELS, minlength=K) / len(LABELS))[y]
    context = [_np(e.weight)[y] for e in model.conditional.context]
    log_p_x_y = _log_bernoulli(x, _made_logits(model.conditional.made, x, context))
    return log_px, log_p_y_x, log_py, log_p_x_y


def test_conditional_density_normalises_for_every_class_and_label_prior_is_frequency():
    model = _tiny()
    x = tl.tensor(_all_images())
    for k in range(K):
        lp = _np(model.log_prob(x, tl.full((len(x),), k, dtype=tl.int64)))
        assert abs(np.logaddexp.reduce(lp)) < 1e-10, k              # sum_x P(x|y=k) = 1
    assert abs(np.logaddexp.reduce(_np(model.log_prob(x)))) < 1e-10   # the mixture too
    assert abs(np.logaddexp.reduce(_np(model.marginal.log_prob(x)))) < 1e-10
    np.testing.assert_allclose(model.log_label_prior.numpy(), np.log([0.2, 0.3, 0.5]),
                               rtol=0, atol=1e-12)


def test_duality_gap_and_loss_equal_the_hand_computation():
    model = _tiny(lambda_xy=0.3, lambda_yx=0.2)
    images = _all_images()
    y = np.arange(len(images)) % K
    gap = _np(model.duality_gap(tl.tensor(images), tl.tensor(y)))
    a, b, c, d = _hand_terms(model, images, y)
    np.testing.assert_allclose(gap, a + b - c - d, rtol=1e-10, atol=1e-10)
    assert np.abs(gap).min() > 1e-3      # a random model is far from the duality of eq. 1
    loss, metrics = model.loss((tl.tensor(images), tl.tensor(y)))
    sq = np.mean((a + b - c - d) ** 2)
    expected = -b.mean() - d.mean() + (0.3 + 0.2) * sq            # eq. 4, both objectives
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-10)
    np.testing.assert_allclose(metrics["duality"].item(), sq, rtol=1e-10)
    np.testing.assert_allclose(metrics["duality_gap"].item(), gap.mean(), rtol=1e-10)
    np.testing.assert_allclose(metrics["cross_entropy"].item(), -b.mean(), rtol=1e-10)
    np.testing.assert_allclose(metrics["nll"].item(), -d.mean(), rtol=1e-10)


def _grads(model, x, y):
    model.zero_grad()
    model.loss((x, y))[0].backward()
    return {n: (None if p.grad is None else p.grad.numpy().copy())
            for n, p in model.named_parameters()}


@pytest.mark.parametrize("lambdas", [(0.5, 0.5), (0.5, 0.0), (0.0, 0.5)])
def test_regulariser_gradient_reaches_each_model_through_its_own_objective(lambdas):
    rng = np.random.default_rng(4)
    x = tl.tensor((rng.random((8, D)) < 0.5).astype(np.float64))
    y = tl.tensor(rng.integers(0, K, 8))
    with_reg = _grads(_tiny(*lambdas), x, y)
    without = _grads(_tiny(0.0, 0.0), x, y)                 # same weights, lambda = 0
    for name, g in with_reg.items():
        if name.startswith("marginal."):
            assert g is None and without[name] is None, name    # frozen: no gradient at all
            continue
        diff = np.abs(g - without[name]).max()                # the regulariser's gradient
        lam = lambdas[0] if name.startswith("classifier.") else lambdas[1]
        if lam == 0.0:
            assert diff == 0.0, name
        elif name.endswith(".weight") and "context" not in name:
            assert diff > 1e-6, name
    # lambda_xy = lambda_yx: the gradient of the one scalar CE + NLL + lambda mean(gap^2)
    model = _tiny(0.5, 0.5)
    p = model.classifier[0].weight
    g = _grads(model, x, y)["classifier.0.weight"][1, 2]
    eps = 1e-6

    def total():
        with tl.no_grad():
            return (-model.log_prob_y(x, y).mean() - model.log_prob(x, y).mean()
                    + 0.5 * (model.duality_gap(x, y) ** 2).mean()).item()
    with tl.no_grad():
        p[1, 2] += eps
    up = total()
    with tl.no_grad():
        p[1, 2] -= 2 * eps
    down = total()
    np.testing.assert_allclose(g, (up - down) / (2 * eps), rtol=1e-6)


def test_marginal_stays_frozen_under_an_optimizer():
    model = _tiny()
    before = {n: p.numpy().copy() for n, p in model.marginal.named_parameters()}
    opt = tl.optim.Adam(model.parameters(), lr=0.1)
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = tl.tensor((rng.random((8, D)) < 0.5).astype(np.float64))
        loss, _ = model.loss((x, tl.tensor(rng.integers(0, K, 8))))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in model.marginal.named_parameters():
        assert not p.requires_grad and np.array_equal(p.numpy(), before[n]), n


def test_conditional_made_is_autoregressive_for_every_label():
    model = _tiny()
    made = model.conditional.made
    degrees = made.ordering(made.mask_index)
    x = tl.tensor(np.random.default_rng(6).standard_normal((1, D)))
    for k in range(K):
        yk = tl.full((1,), k, dtype=tl.int64)
        jac = tl.autograd.jacobian(lambda v: model.conditional(v, yk), x).numpy().reshape(D, D)
        assert np.all(jac[degrees[None, :] >= degrees[:, None]] == 0.0), k


def test_sample_classify_and_bad_input():
    model = _tiny()
    s = model.sample(4, y=2, generator=tl.Generator(0))
    assert s.shape == (4, D) and set(np.unique(s.numpy())) <= {0.0, 1.0}
    assert model.sample(3, y=[0, 1, 2]).shape == (3, D)
    assert model.classify(tl.tensor(_all_images())).shape == (2 ** D,)
    with pytest.raises(ValueError, match="set_label_marginal: labels must cover every class"):
        model.set_label_marginal([0, 1, 1])
    with pytest.raises(TypeError, match=r"DualSupervised.loss: batch must be \(x, y\)"):
        model.loss(tl.tensor(_all_images()))
    with pytest.raises(ValueError, match="sample: y must have shape"):
        model.sample(3, y=[0, 1])
    with pytest.raises(ValueError, match="marginal model's in_features must be 6, got 5"):
        DualSupervised(in_features=D, marginal=MADE(in_features=5, hidden_features=(3,)))


@pytest.fixture(scope="module")
def mnist_dual_runs():
    """The example's protocol, small (H = 100): the marginal MADE P^(x) (4 epochs), both models
    warm-started separately (3 epochs, lambda = 0), then 3 more epochs each with lambda = 0
    (the baseline) and lambda = 0.01 (DSL), from the same weights on the same batches."""
    images, labels = tl.data.load_mnist("mnist", "train")       # embedded: 4,000 / 1,000
    test, y_test = tl.data.load_mnist("mnist", "test")
    x_test = tl.tensor(binarize(test, np.random.default_rng(123)))
    tl.manual_seed(0)
    marginal = MADE(in_features=784, hidden_features=(100,), seed=0)
    opt = tl.optim.Adam(marginal.parameters(), lr=3e-3)
    for epoch in range(4):
        train_epoch(marginal, opt, images, labels, np.random.default_rng((0, 0, epoch)))
    warm = DualSupervised(hidden_features=(100,), density_hidden_features=(100,),
                          lambda_xy=0.0, lambda_yx=0.0, marginal=marginal)
    warm.set_label_marginal(labels)
    opt = tl.optim.Adam([p for p in warm.parameters() if p.requires_grad], lr=1e-3)
    for epoch in range(3):
        train_epoch(warm, opt, images, labels, np.random.default_rng((0, 1, epoch)))
    runs = {}
    for name, lam in (("baseline", 0.0), ("dsl", 0.01)):
        model = DualSupervised(warm.config, marginal=marginal, lambda_xy=lam, lambda_yx=lam)
        model.load_state_dict(warm.state_dict())
        o = tl.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        o.load_state_dict(opt.state_dict())
        for epoch in range(3, 6):
            train_epoch(model, o, images, labels, np.random.default_rng((0, 1, epoch)))
        runs[name] = evaluate_dual(model, x_test, y_test)
    return runs


@pytest.mark.slow
def test_dsl_on_mnist_reaches_figures_next_to_the_lambda0_baseline(mnist_dual_runs):
    base, dsl = mnist_dual_runs["baseline"], mnist_dual_runs["dsl"]
    print({k: {m: (round(float(np.mean(v ** 2)), 2) if m == "gap" else round(v, 4))
               for m, v in r.items()} for k, r in mnist_dual_runs.items()})
    assert dsl["accuracy"] >= 0.88 and base["accuracy"] >= 0.88, (dsl, base)
    # the regulariser does what eq. 3 asks: a smaller duality gap on held-out images
    assert np.mean(dsl["gap"] ** 2) < 0.9 * np.mean(base["gap"] ** 2)
    # ... and P(x|y) is pulled toward P^(x) P(y|x) / P^(y): no worse than without it
    assert dsl["nll"] < base["nll"] + 0.5
