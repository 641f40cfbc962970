"""Distributions: values against scipy.stats, gradients by gradcheck (hypothesis, float64),
sampling moments, reproducibility with generator=, and input errors."""
import numpy as np
import pytest
import scipy.special
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tinylatent as tl
from tinylatent.distributions import Bernoulli, Categorical, Normal, kl_divergence



def _t(a, grad=False):
    return tl.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


shapes = st.sampled_from([(1,), (3,), (2, 3)])


def _floats(shape, lo, hi):
    return arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False))


# ---------------------------------------------------------------- values vs scipy
def test_normal_values_match_scipy():
    rng = np.random.default_rng(0)
    loc, scale, x = rng.standard_normal(5), rng.uniform(0.1, 3, 5), rng.standard_normal(5)
    d = Normal(_t(loc), _t(scale))
    ref = scipy.stats.norm(loc, scale)
    np.testing.assert_allclose(d.log_prob(_t(x)).array, ref.logpdf(x), rtol=1e-12)
    np.testing.assert_allclose(d.entropy().array, ref.entropy(), rtol=1e-12)
    np.testing.assert_allclose(d.cdf(_t(x)).array, ref.cdf(x), rtol=1e-10)
    np.testing.assert_allclose(d.mean.array, loc)
    np.testing.assert_allclose(d.stddev.array, scale)
    np.testing.assert_allclose(d.variance.array, scale ** 2)
    # broadcasting between loc and scale, and Python numbers as parameters
    d = Normal(_t(np.zeros((2, 1))), _t(np.ones(3)))
    assert d.batch_shape == (2, 3) and d.entropy().shape == (2, 3)
    assert Normal(0.0, 1.0).log_prob(tl.zeros(4)).dtype == np.float32


def test_bernoulli_values_match_scipy_and_are_stable():
    p = np.array([0.01, 0.3, 0.5, 0.9])
    x = np.array([1.0, 0.0, 1.0, 0.0])
    ref = scipy.stats.bernoulli(p)
    for d in (Bernoulli(probs=_t(p)), Bernoulli(logits=_t(scipy.special.logit(p)))):
        np.testing.assert_allclose(d.log_prob(_t(x)).array, ref.logpmf(x), rtol=1e-10)
        np.testing.assert_allclose(d.entropy().array, ref.entropy(), rtol=1e-10)
        np.testing.assert_allclose(d.probs.array, p, rtol=1e-10)
        np.testing.assert_allclose(d.logits.array, scipy.special.logit(p), rtol=1e-8)
        np.testing.assert_allclose(d.mean.array, p, rtol=1e-10)
        np.testing.assert_allclose(d.variance.array, p * (1 - p), rtol=1e-10)
    # logits far in the tails (float32): finite, exact log-likelihoods where sigmoid
    # would round to 0 or 1
    logits = tl.tensor([-200.0, -30.0, 30.0, 200.0])
    lp = Bernoulli(logits=logits).log_prob(tl.tensor([1.0, 1.0, 0.0, 0.0]))
    np.testing.assert_allclose(lp.array, [-200.0, -30.0, -30.0, -200.0], rtol=1e-6)
    lp = Bernoulli(logits=logits).log_prob(tl.tensor([0.0, 0.0, 1.0, 1.0]))
    assert np.all(np.isfinite(lp.array)) and np.all(lp.array <= 0)
    # probs exactly 0 or 1: entropy 0 and finite gradients
    probs = tl.tensor([0.0, 1.0, 0.5], requires_grad=True)
    h = Bernoulli(probs=probs).entropy()
    np.testing.assert_allclose(h.array, [0.0, 0.0, np.log(2)], atol=1e-6)
    h.sum().backward()
    assert np.all(np.isfinite(probs.grad.array))


def test_categorical_values_match_scipy():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), size=3)                  # (3, 4)
    k = np.array([0, 3, 1])
    for d in (Categorical(probs=_t(p * 7.0)), Categorical(logits=_t(np.log(p) + 2.0))):
        np.testing.assert_allclose(d.log_prob(k).array, np.log(p[np.arange(3), k]), rtol=1e-10)
        np.testing.assert_allclose(d.entropy().array, [scipy.stats.entropy(r) for r in p],
                                   rtol=1e-10)
        np.testing.assert_allclose(d.probs.array, p, rtol=1e-10)
        assert d.batch_shape == (3,) and d.num_events == 4
    # a value batch that broadcasts against the batch shape: (5, 1) with (3,)
    d = Categorical(probs=_t(p))
    kk = rng.integers(0, 4, size=(5, 1))
    assert d.log_prob(kk).shape == (5, 3)
    np.testing.assert_allclose(d.log_prob(kk).array, np.log(p[np.arange(3), kk]), rtol=1e-10)
    # a class with probability zero: entropy finite
    assert np.isfinite(Categorical(probs=_t([0.5, 0.5, 0.0])).entropy().item())


def test_kl_matches_closed_forms_and_scipy():
    rng = np.random.default_rng(2)
    m1, m2 = rng.standard_normal(4), rng.standard_normal(4)
    s1, s2 = rng.uniform(0.2, 2, 4), rng.uniform(0.2, 2, 4)
    kl = kl_divergence(Normal(_t(m1), _t(s1)), Normal(_t(m2), _t(s2))).array
    # numerical integration of p log(p / q) for one element
    x = np.linspace(m1[0] - 12 * s1[0], m1[0] + 12 * s1[0], 200001)
    lp = scipy.stats.norm(m1[0], s1[0]).logpdf(x)
    lq = scipy.stats.norm(m2[0], s2[0]).logpdf(x)
    assert kl[0] == pytest.approx(np.trapezoid(np.exp(lp) * (lp - lq), x), rel=1e-6)
    ref = np.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5
    np.testing.assert_allclose(kl, ref, rtol=1e-12)
    # the VAE's KL(q || N(0, 1)) = -1/2 (1 + log s^2 - m^2 - s^2)   (Kingma & Welling, App. B)
    kl0 = kl_divergence(Normal(_t(m1), _t(s1)), Normal(0.0, 1.0)).array
    np.testing.assert_allclose(kl0, -0.5 * (1 + np.log(s1 ** 2) - m1 ** 2 - s1 ** 2))
    p, q = np.array([0.1, 0.5, 0.0, 1.0]), np.array([0.3, 0.5, 0.2, 0.6])
    klb = kl_divergence(Bernoulli(probs=_t(p)), Bernoulli(logits=_t(scipy.special.logit(q))))
    ref = [scipy.stats.entropy([a, 1 - a], [b, 1 - b]) for a, b in zip(p, q)]
    np.testing.assert_allclose(klb.array, ref, rtol=1e-10, atol=1e-12)
    pc = rng.dirichlet(np.ones(5), size=2)
    qc = rng.dirichlet(np.ones(5), size=2)
    klc = kl_divergence(Categorical(probs=_t(pc)), Categorical(logits=_t(np.log(qc))))
    np.testing.assert_allclose(klc.array, [scipy.stats.entropy(a, b) for a, b in zip(pc, qc)],
                               rtol=1e-10)
    with pytest.raises(NotImplementedError, match="Normal || Bernoulli"):
        kl_divergence(Normal(0.0, 1.0), Bernoulli(probs=0.5))
    with pytest.raises(ValueError, match="3 and 2 classes"):
        kl_divergence(Categorical(logits=tl.zeros(3)), Categorical(logits=tl.zeros(2)))


# ---------------------------------------------------------------- gradients (float64)
@given(shapes.flatmap(lambda s: st.tuples(_floats(s, -2, 2), _floats(s, 0.3, 2),
                                          _floats(s, -3, 3))))
def test_normal_gradcheck(args):
    loc, scale, x = args
    L, S, X = _t(loc, True), _t(scale, True), _t(x, True)
    assert tl.gradcheck(lambda m, s, v: Normal(m, s).log_prob(v), [L, S, X])
    assert tl.gradcheck(lambda m, s: Normal(m, s).entropy(), [L, S])
    gen = tl.Generator(3)
    state = gen.get_state()

    def rsample(m, s):   # the same eps on every call: fixed generator state
        gen.set_state(state)
        return Normal(m, s).rsample((2,), generator=gen)

    assert tl.gradcheck(rsample, [L, S])
    assert tl.gradgradcheck(lambda m, s, v: Normal(m, s).log_prob(v), [L, S, X])


@given(shapes.flatmap(lambda s: st.tuples(_floats(s, -2, 2), _floats(s, 0.3, 2),
                                          _floats(s, -2, 2), _floats(s, 0.3, 2))))
def test_normal_kl_gradcheck(args):
    ts = [_t(a, True) for a in args]
    assert tl.gradcheck(lambda a, b, c, d: kl_divergence(Normal(a, b), Normal(c, d)), ts)
    assert tl.gradgradcheck(lambda a, b, c, d: kl_divergence(Normal(a, b), Normal(c, d)), ts)


@given(shapes.flatmap(lambda s: st.tuples(_floats(s, -4, 4), _floats(s, 0.05, 0.95),
                                          _floats(s, -4, 4),
                                          arrays(np.float64, s, elements=st.sampled_from(
                                              [0.0, 1.0])))))
def test_bernoulli_gradcheck(args):
    logits, probs, logits_q, x = args
    L, P, Q = _t(logits, True), _t(probs, True), _t(logits_q, True)
    X = _t(x)
    assert tl.gradcheck(lambda l: Bernoulli(logits=l).log_prob(X), [L])
    assert tl.gradcheck(lambda p: Bernoulli(probs=p).log_prob(X), [P])
    assert tl.gradcheck(lambda l: Bernoulli(logits=l).entropy(), [L])
    assert tl.gradcheck(lambda p: Bernoulli(probs=p).entropy(), [P])
    assert tl.gradcheck(lambda p, q: kl_divergence(Bernoulli(probs=p), Bernoulli(logits=q)),
                        [P, Q])
    assert tl.gradcheck(lambda l, q: kl_divergence(Bernoulli(logits=l), Bernoulli(logits=q)),
                        [L, Q])


@given(st.sampled_from([(3,), (2, 4)]).flatmap(
    lambda s: st.tuples(_floats(s, -3, 3), _floats(s, -3, 3), _floats(s, 0.1, 2))))
def test_categorical_gradcheck(args):
    logits, logits_q, weights = args
    L, Q, W = _t(logits, True), _t(logits_q, True), _t(weights, True)
    k = np.zeros(logits.shape[:-1], dtype=np.int64) + logits.shape[-1] - 1
    assert tl.gradcheck(lambda l: Categorical(logits=l).log_prob(k), [L])
    assert tl.gradcheck(lambda w: Categorical(probs=w).log_prob(k), [W])
    assert tl.gradcheck(lambda l: Categorical(logits=l).entropy(), [L])
    assert tl.gradcheck(lambda w: Categorical(probs=w).entropy(), [W])
    assert tl.gradcheck(lambda l, q: kl_divergence(Categorical(logits=l),
                                                   Categorical(logits=q)), [L, Q])


# ---------------------------------------------------------------- sampling
def test_normal_sampling_moments_and_reproducibility():
    d = Normal(_t([1.0, -2.0]), _t([0.5, 2.0]))
    s = d.sample((20000,), generator=tl.Generator(0))
    assert s.shape == (20000, 2) and not s.requires_grad
    np.testing.assert_allclose(s.array.mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(s.array.std(0), [0.5, 2.0], rtol=0.03)
    again = d.sample((20000,), generator=tl.Generator(0))
    np.testing.assert_array_equal(s.array, again.array)
    # rsample carries gradients to loc and scale: d/dscale of sum(z) = sum(eps)
    loc, scale = _t([0.0], True), _t([2.0], True)
    z = Normal(loc, scale).rsample((5,), generator=tl.Generator(1))
    z.sum().backward()
    assert loc.grad.item() == pytest.approx(5.0)
    assert scale.grad.item() == pytest.approx(float((z.array / 2.0).sum()))
    assert z.shape == (5, 1) and z.requires_grad
    assert not Normal(loc, scale).sample(generator=tl.Generator(1)).requires_grad


def test_bernoulli_and_categorical_sampling():
    p = np.array([0.1, 0.5, 0.95])
    s = Bernoulli(probs=_t(p)).sample((40000,), generator=tl.Generator(0))
    assert s.shape == (40000, 3) and set(np.unique(s.array)) <= {0.0, 1.0}
    np.testing.assert_allclose(s.array.mean(0), p, atol=0.01)
    s2 = Bernoulli(logits=_t(scipy.special.logit(p))).sample((40000,),
                                                             generator=tl.Generator(0))
    np.testing.assert_array_equal(s.array, s2.array)
    probs = np.array([[0.7, 0.2, 0.1, 0.0], [0.0, 0.0, 0.0, 1.0]])
    c = Categorical(probs=_t(probs)).sample((30000,), generator=tl.Generator(2))
    assert c.shape == (30000, 2) and c.dtype == np.int64
    freq = np.stack([np.bincount(c.array[:, j], minlength=4) / 30000 for j in range(2)])
    np.testing.assert_allclose(freq, probs, atol=0.01)
    assert np.all(c.array[:, 1] == 3)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="Normal: scale must be > 0"):
        Normal(0.0, _t([1.0, -1.0]))
    with pytest.raises(ValueError, match="exactly one of probs= or logits="):
        Bernoulli()
    with pytest.raises(ValueError, match="exactly one"):
        Bernoulli(probs=0.5, logits=0.0)
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
        Bernoulli(probs=_t([1.5]))
    with pytest.raises(ValueError, match="Categorical: probs must be >= 0"):
        Categorical(probs=_t([0.5, -0.1]))
    with pytest.raises(ValueError, match="at least one axis"):
        Categorical(logits=tl.tensor(1.0))
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 3\)"):
        Categorical(logits=tl.zeros(3)).log_prob([3])
    with pytest.raises(TypeError, match="integer class"):
        Categorical(logits=tl.zeros(3)).log_prob(np.array([0.5]))
    with pytest.raises(NotImplementedError, match="rsample"):
        Bernoulli(probs=0.5).rsample()
