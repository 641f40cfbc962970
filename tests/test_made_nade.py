"""MADE, NADE and the MAF layer: the autoregressive property (Jacobians strictly triangular in
the ordering, for every mask), exact normalisation over all 2^10 binary vectors, sampling
frequencies, NADE's O(DH) recursion, and short trainings on binarised MNIST that must beat
the independent-Bernoulli baseline measured on the same data."""
import itertools

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.data import binarize
from tinylatent.models.autoregressive import MADE, NADE, made_masks
from tinylatent.models.flow_transforms import MaskedAffineAutoregressive


def _randomise(module, rng, scale=0.5):
    with tl.no_grad():
        for p in module.parameters():
            p.copy_(tl.tensor(rng.standard_normal(p.shape) * scale, dtype=p.dtype))
    return module


def _all_binary(d):
    return tl.tensor(np.array(list(itertools.product([0, 1], repeat=d)), dtype=np.float64))


def _assert_strictly_triangular(jac, degrees):
    """jac (D_out, D): entry (d, j) may be nonzero only when degree j < degree d, and every
    such entry is (direct connections make each allowed pair connected)."""
    allowed = degrees[None, :] < degrees[:, None]
    assert np.all(jac[~allowed] == 0.0), "an output depends on a later or equal input"
    assert np.all(np.abs(jac[allowed]) > 0.0), "an allowed connection is missing"


@pytest.mark.parametrize("ordering", ["natural", "reverse", "random"])
def test_made_jacobian_strictly_triangular_for_every_mask(ordering):
    rng = np.random.default_rng(0)
    d = 6
    made = _randomise(MADE(in_features=d, hidden_features=(10, 10), out_multiplier=2,
                           num_masks=4, ordering=ordering,
                           seed=1), rng).to(tl.float64)
    x = tl.tensor(rng.standard_normal((1, d)), dtype=tl.float64)
    for k in range(made.num_masks):
        made.set_mask(k)
        degrees = made.ordering(k)
        jac = tl.autograd.jacobian(made, x).numpy().reshape(2 * d, d)
        for block in (jac[:d], jac[d:]):
            _assert_strictly_triangular(block, degrees)
        order = np.argsort(degrees)                               # in the chosen ordering
        assert np.all(np.triu(jac[:d][np.ix_(order, order)]) == 0.0)


def test_made_masks_follow_germain_rules():
    rng = np.random.default_rng(2)
    ordering = np.array([3, 1, 4, 2, 5])
    hidden, output, direct = made_masks(ordering, [7, 7], rng)
    assert hidden[0].shape == (7, 5) and hidden[1].shape == (7, 7) and output.shape == (5, 7)
    # the product of the masks is the connectivity: zero on and above the diagonal in order
    conn = output @ hidden[1] @ hidden[0]
    assert np.all(conn[ordering[None, :] >= ordering[:, None]] == 0)
    assert np.all(direct == (ordering[:, None] > ordering[None, :]))


def test_maf_layer_autoregressive_and_triangular():
    rng = np.random.default_rng(3)
    d = 5
    layer = _randomise(MaskedAffineAutoregressive(d, 12, 2, ordering="random", seed=4),
                       rng).to(tl.float64)
    x = tl.tensor(rng.standard_normal((1, d)), dtype=tl.float64)
    degrees = layer.made.ordering(0)
    jac_params = tl.autograd.jacobian(layer.made, x).numpy().reshape(2 * d, d)
    _assert_strictly_triangular(jac_params[:d], degrees)          # mu
    _assert_strictly_triangular(jac_params[d:], degrees)          # alpha
    jac = tl.autograd.jacobian(lambda v: layer(v)[0], x).numpy().reshape(d, d)
    order = np.argsort(degrees)
    jo = jac[np.ix_(order, order)]
    assert np.all(np.triu(jo, 1) == 0.0)
    _, alpha = layer._mu_alpha(x)
    np.testing.assert_allclose(np.diag(jac), np.exp(-alpha.detach().numpy()[0]), rtol=1e-12)


def test_made_and_nade_are_normalised_d10():
    rng = np.random.default_rng(5)
    xs = _all_binary(10)                                            # (1024, 10)
    made = MADE(in_features=10, hidden_features=(16, 16), num_masks=3, seed=2)
    made = _randomise(made, rng, 1.0).to(tl.float64)
    for k in range(3):
        made.set_mask(k)
        assert abs(tl.exp(made.log_prob(xs)).sum().item() - 1.0) < 1e-5
    total = tl.exp(made.log_prob(xs, num_masks=3)).sum().item()    # mask ensemble
    assert abs(total - 1.0) < 1e-5
    nade = _randomise(NADE(in_features=10, hidden_features=8), rng, 1.0).to(tl.float64)
    assert abs(tl.exp(nade.log_prob(xs)).sum().item() - 1.0) < 1e-5


def test_nade_weight_sharing_equals_naive_conditionals():
    rng = np.random.default_rng(6)
    nade = _randomise(NADE(in_features=7, hidden_features=5), rng, 1.0).to(tl.float64)
    x = (rng.random((4, 7)) < 0.5).astype(np.float64)
    logits = nade(tl.tensor(x)).detach().numpy()
    W, c, V, b = (p.detach().numpy() for p in (nade.W, nade.c, nade.V, nade.b))
    for d in range(7):
        h = 1 / (1 + np.exp(-(c + x[:, :d] @ W[:, :d].T)))          # O(D^2 H) definition
        np.testing.assert_allclose(logits[:, d], h @ V[d] + b[d], rtol=1e-10)


@pytest.mark.parametrize("model", ["made", "nade"])
def test_sampling_frequencies_match_probabilities(model):
    rng = np.random.default_rng(7)
    d = 3
    net = (MADE(in_features=d, hidden_features=(8,), seed=3) if model == "made"
           else NADE(in_features=d, hidden_features=4))
    net = _randomise(net, rng, 1.0).to(tl.float64)
    probs = tl.exp(net.log_prob(_all_binary(d))).detach().numpy()
    samples = net.sample(20000, generator=tl.Generator(0)).numpy().astype(int)
    freq = np.bincount(samples @ (2 ** np.arange(d)[::-1]), minlength=2 ** d) / 20000
    np.testing.assert_allclose(freq, probs, atol=0.015)


@pytest.fixture(scope="module")
def binary_mnist():
    train, _ = tl.data.load_mnist(split="train")
    test, _ = tl.data.load_mnist(split="test")
    x_test = binarize(test, np.random.default_rng(123))            # one fixed binarisation
    p = (binarize(train, np.random.default_rng(0)).mean(0) * len(train) + 1) / (len(train) + 2)
    baseline = -(x_test * np.log(p) + (1 - x_test) * np.log(1 - p)).sum(1).mean()
    return train, tl.tensor(x_test), float(baseline)


def _train(model, train, lr, epochs, batch=100):
    rng = np.random.default_rng(1)
    opt = tl.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        perm = rng.permutation(len(train))
        for i in range(0, len(train), batch):
            x = tl.tensor(binarize(train[perm[i: i + batch]], rng))   # dynamic binarisation
            loss, _ = model.loss(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def test_made_learns_binarised_mnist(binary_mnist):
    """MADE 784-500-784, 8 masks (order-agnostic), 2 epochs on 4k images: its 8-mask
    ensemble must beat the independent-Bernoulli baseline (about 207 nats) by 25 nats."""
    train, x_test, baseline = binary_mnist
    made = _train(MADE(in_features=784, hidden_features=(500,), num_masks=8, seed=0), train,
                  lr=3e-3, epochs=2)
    with tl.no_grad():
        nll = -np.mean([made.log_prob(x_test[i: i + 250], num_masks=8).mean().item()
                        for i in range(0, len(x_test), 250)])
    assert nll < baseline - 25.0, (nll, baseline)


def test_nade_learns_binarised_mnist(binary_mnist):
    """NADE with 50 hidden units, 2 epochs on 4k images: beats the baseline by 15 nats."""
    train, x_test, baseline = binary_mnist
    nade = _train(NADE(in_features=784, hidden_features=50), train, lr=1e-2, epochs=2)
    with tl.no_grad():
        nll = -np.mean([nade.log_prob(x_test[i: i + 250]).mean().item()
                        for i in range(0, len(x_test), 250)])
    assert nll < baseline - 15.0, (nll, baseline)
