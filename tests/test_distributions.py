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
from tinylatent.distributions import (Bernoulli, Beta, Categorical, Dirichlet, Independent,
                                      Laplace, MixtureSameFamily, MultivariateNormal, Normal,
                                      RelaxedBernoulli, RelaxedOneHotCategorical, kl_divergence,
                                      standard_normal)



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


# ================================================================ the families added for the
# model zoo (issue 11): values against scipy.stats, gradients by gradcheck
def _tril(rng, d, batch=()):
    """A random lower-triangular factor with a diagonal in [0.5, 1.5]."""
    L = np.tril(rng.normal(0, 0.5, batch + (d, d)), -1)
    return L + np.eye(d) * rng.uniform(0.5, 1.5, batch + (d,))[..., None, :]


def test_laplace_beta_dirichlet_values_match_scipy():
    rng = np.random.default_rng(10)
    loc, scale, x = rng.standard_normal(5), rng.uniform(0.2, 2, 5), rng.standard_normal(5)
    d, ref = Laplace(_t(loc), _t(scale)), scipy.stats.laplace(loc, scale)
    np.testing.assert_allclose(d.log_prob(_t(x)).array, ref.logpdf(x), rtol=1e-12)
    np.testing.assert_allclose(d.cdf(_t(x)).array, ref.cdf(x), rtol=1e-10)
    np.testing.assert_allclose(d.entropy().array, ref.entropy(), rtol=1e-12)
    np.testing.assert_allclose(d.variance.array, ref.var(), rtol=1e-12)
    a, b, u = rng.uniform(0.3, 4, 5), rng.uniform(0.3, 4, 5), rng.uniform(0.01, 0.99, 5)
    d, ref = Beta(_t(a), _t(b)), scipy.stats.beta(a, b)
    np.testing.assert_allclose(d.log_prob(_t(u)).array, ref.logpdf(u), rtol=1e-10)
    np.testing.assert_allclose(d.entropy().array, ref.entropy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d.mean.array, ref.mean(), rtol=1e-12)
    np.testing.assert_allclose(d.variance.array, ref.var(), rtol=1e-10)
    alpha = rng.uniform(0.3, 4, (3, 4))
    xs = rng.dirichlet(np.ones(4), size=3)
    d = Dirichlet(_t(alpha))
    assert d.batch_shape == (3,) and d.event_shape == (4,)
    np.testing.assert_allclose(d.log_prob(_t(xs)).array,
                               [scipy.stats.dirichlet(a_).logpdf(x_) for a_, x_ in
                                zip(alpha, xs)], rtol=1e-10)
    np.testing.assert_allclose(d.entropy().array,
                               [scipy.stats.dirichlet(a_).entropy() for a_ in alpha],
                               rtol=1e-10)
    np.testing.assert_allclose(d.mean.array, alpha / alpha.sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(d.variance.array,
                               [scipy.stats.dirichlet(a_).var() for a_ in alpha], rtol=1e-10)


def test_multivariate_normal_and_independent_match_scipy():
    rng = np.random.default_rng(11)
    L = _tril(rng, 3, (2,))                                    # (2, 3, 3)
    loc = rng.standard_normal((2, 3))
    x = rng.standard_normal((4, 2, 3))
    d = MultivariateNormal(_t(loc), _t(L))
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    refs = [scipy.stats.multivariate_normal(loc[i], L[i] @ L[i].T) for i in range(2)]
    np.testing.assert_allclose(d.log_prob(_t(x)).array,
                               np.stack([refs[i].logpdf(x[:, i]) for i in range(2)], 1),
                               rtol=1e-10)
    np.testing.assert_allclose(d.entropy().array, [r.entropy() for r in refs], rtol=1e-12)
    np.testing.assert_allclose(d.covariance_matrix.array, L @ L.transpose(0, 2, 1), atol=1e-14)
    np.testing.assert_allclose(d.variance.array, np.einsum("bij,bij->bi", L, L), rtol=1e-12)
    # a diagonal scale_tril is Independent(Normal, 1)
    s = rng.uniform(0.3, 2, 3)
    ind = Independent(Normal(_t(loc), _t(s)), 1)
    assert ind.batch_shape == (2,) and ind.event_shape == (3,)
    mvn = MultivariateNormal(_t(loc), _t(np.diag(s)))
    np.testing.assert_allclose(ind.log_prob(_t(x)).array, mvn.log_prob(_t(x)).array, rtol=1e-12)
    np.testing.assert_allclose(ind.entropy().array, mvn.entropy().array, rtol=1e-12)
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims=3"):
        Independent(Normal(_t(loc), _t(s)), 3)


def test_new_kls_match_closed_forms_and_integration():
    rng = np.random.default_rng(12)
    # Laplace: numerical integration of p log(p / q)
    m1, b1, m2, b2 = 0.3, 0.7, -0.5, 1.6
    kl = kl_divergence(Laplace(_t(m1), _t(b1)), Laplace(_t(m2), _t(b2))).item()
    x = np.linspace(-30, 30, 600001)
    lp, lq = scipy.stats.laplace(m1, b1).logpdf(x), scipy.stats.laplace(m2, b2).logpdf(x)
    assert kl == pytest.approx(np.trapezoid(np.exp(lp) * (lp - lq), x), rel=1e-5)
    # Beta: numerical integration
    a1, c1, a2, c2 = 2.5, 1.5, 1.2, 3.0
    klb = kl_divergence(Beta(_t(a1), _t(c1)), Beta(_t(a2), _t(c2))).item()
    u = np.linspace(1e-9, 1 - 1e-9, 2000001)
    lp, lq = scipy.stats.beta(a1, c1).logpdf(u), scipy.stats.beta(a2, c2).logpdf(u)
    assert klb == pytest.approx(np.trapezoid(np.exp(lp) * (lp - lq), u), rel=1e-4)
    # Dirichlet: Monte Carlo with scipy's densities
    alpha, beta = np.array([1.5, 2.0, 3.0]), np.array([2.0, 1.0, 0.8])
    kld = kl_divergence(Dirichlet(_t(alpha)), Dirichlet(_t(beta))).item()
    xs = np.random.default_rng(0).dirichlet(alpha, 200000)
    mc = (scipy.stats.dirichlet(alpha).logpdf(xs.T) - scipy.stats.dirichlet(beta).logpdf(xs.T))
    assert kld == pytest.approx(mc.mean(), abs=4 * mc.std() / np.sqrt(len(mc)))
    # MultivariateNormal: the textbook trace / Mahalanobis / log-det formula
    Lp, Lq = _tril(rng, 3), _tril(rng, 3)
    mp, mq = rng.standard_normal(3), rng.standard_normal(3)
    Sp, Sq = Lp @ Lp.T, Lq @ Lq.T
    ref = 0.5 * (np.trace(np.linalg.solve(Sq, Sp)) + (mq - mp) @ np.linalg.solve(Sq, mq - mp)
                 - 3 + np.linalg.slogdet(Sq)[1] - np.linalg.slogdet(Sp)[1])
    klm = kl_divergence(MultivariateNormal(_t(mp), _t(Lp)), MultivariateNormal(_t(mq), _t(Lq)))
    assert klm.item() == pytest.approx(ref, rel=1e-10)
    # Independent: the base KL summed over the event axes
    s1, s2 = rng.uniform(0.3, 2, (2, 3)), rng.uniform(0.3, 2, (2, 3))
    kli = kl_divergence(Independent(Normal(_t(mp), _t(s1)), 1),
                        Independent(Normal(_t(mq), _t(s2)), 1))
    base = kl_divergence(Normal(_t(mp), _t(s1)), Normal(_t(mq), _t(s2)))
    np.testing.assert_allclose(kli.array, base.array.sum(-1), rtol=1e-12)
    with pytest.raises(NotImplementedError, match="Laplace || Normal"):
        kl_divergence(Laplace(0.0, 1.0), Normal(0.0, 1.0))


def _binary_concrete_density(y, logits, tau):
    """Maddison et al. 2017, Sec. 3.3: tau a y^(-tau-1) (1-y)^(-tau-1) /
    (a y^-tau + (1-y)^-tau)^2 with a = exp(logits)."""
    a = np.exp(logits)
    return tau * a * y ** (-tau - 1) * (1 - y) ** (-tau - 1) / (a * y ** -tau
                                                                + (1 - y) ** -tau) ** 2


def test_relaxed_bernoulli_density_and_sampling():
    logits, tau = np.array([-1.0, 0.4, 2.0]), 0.7
    y = np.array([0.1, 0.5, 0.93])
    d = RelaxedBernoulli(tau, logits=_t(logits))
    np.testing.assert_allclose(np.exp(d.log_prob(_t(y)).array),
                               _binary_concrete_density(y, logits, tau), rtol=1e-10)
    # it is a density on (0, 1)
    grid = np.linspace(1e-6, 1 - 1e-6, 400001)
    mass = np.trapezoid(np.exp(RelaxedBernoulli(2.0, logits=_t(0.4)).log_prob(_t(grid)).array),
                        grid)
    assert mass == pytest.approx(1.0, abs=1e-4)
    # draws follow the density: P(y < 1/2) = P(logistic noise < -l) = sigmoid(-l)
    s = d.rsample((40000,), generator=tl.Generator(0)).array
    assert s.shape == (40000, 3) and np.all((s > 0) & (s < 1))
    np.testing.assert_allclose((s < 0.5).mean(0), scipy.special.expit(-logits), atol=0.01)
    # low temperature: nearly binary, with the Bernoulli's probabilities
    cold = RelaxedBernoulli(0.05, probs=_t([0.2, 0.7])).sample((20000,),
                                                                generator=tl.Generator(1))
    assert np.mean(np.minimum(cold.array, 1 - cold.array) < 0.01) > 0.9
    np.testing.assert_allclose(cold.array.round().mean(0), [0.2, 0.7], atol=0.015)


def test_relaxed_one_hot_categorical_density_and_sampling():
    rng = np.random.default_rng(13)
    # K = 2 is the binary Concrete of y_1 with logits l_1 - l_2
    logits = np.array([0.3, -0.8])
    y1 = rng.uniform(0.05, 0.95, 5)
    two = RelaxedOneHotCategorical(0.6, logits=_t(logits))
    np.testing.assert_allclose(two.log_prob(_t(np.stack([y1, 1 - y1], 1))).array,
                               RelaxedBernoulli(0.6, logits=_t(logits[0] - logits[1]))
                               .log_prob(_t(y1)).array, rtol=1e-10)
    # K = 3: integrates to 1 over the simplex (density w.r.t. (y_1, y_2))
    d = RelaxedOneHotCategorical(1.5, probs=_t([0.2, 0.3, 0.5]))
    n = 800
    g = (np.arange(n) + 0.5) / n
    y1, y2 = np.meshgrid(g, g, indexing="ij")
    inside = y1 + y2 < 1
    pts = np.stack([y1[inside], y2[inside], 1 - y1[inside] - y2[inside]], 1)
    mass = np.exp(d.log_prob(_t(pts)).array).sum() / n ** 2
    assert mass == pytest.approx(1.0, abs=0.01)
    # draws: on the simplex; the argmax is Categorical(pi) at any temperature (Gumbel-max)
    s = d.rsample((30000,), generator=tl.Generator(2)).array
    assert s.shape == (30000, 3)
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(np.bincount(s.argmax(-1), minlength=3) / 30000, [0.2, 0.3, 0.5],
                               atol=0.01)


def test_mixture_same_family_matches_scipy_and_samples():
    w = np.array([0.2, 0.5, 0.3])
    mu, sd = np.array([-2.0, 0.0, 3.0]), np.array([0.5, 1.0, 0.8])
    mix = MixtureSameFamily(Categorical(probs=_t(w)), Normal(_t(mu), _t(sd)))
    x = np.linspace(-4, 5, 7)
    ref = np.log((w * scipy.stats.norm(mu, sd).pdf(x[:, None])).sum(1))
    np.testing.assert_allclose(mix.log_prob(_t(x)).array, ref, rtol=1e-10)
    assert mix.mean.item() == pytest.approx(float(w @ mu))
    s = mix.sample((40000,), generator=tl.Generator(3)).array
    assert s.shape == (40000,)
    assert s.mean() == pytest.approx(float(w @ mu), abs=0.05)
    # a mixture of 2-D Gaussians with an event shape, through Independent
    comp = Independent(Normal(_t(np.array([[0.0, 0.0], [3.0, 3.0]])), _t(np.ones((2, 2)))), 1)
    mix2 = MixtureSameFamily(Categorical(logits=_t([0.0, 0.0])), comp)
    assert mix2.event_shape == (2,) and mix2.sample((5,), generator=tl.Generator(0)).shape \
        == (5, 2)
    pt = np.array([[0.5, -0.2]])
    ref2 = np.log(0.5 * scipy.stats.multivariate_normal([0, 0]).pdf(pt[0])
                  + 0.5 * scipy.stats.multivariate_normal([3, 3]).pdf(pt[0]))
    assert mix2.log_prob(_t(pt)).item() == pytest.approx(ref2, rel=1e-10)
    with pytest.raises(ValueError, match="must end in the 2 mixture classes"):
        MixtureSameFamily(Categorical(logits=_t([0.0, 0.0])), Normal(_t(mu), _t(sd)))


def test_beta_dirichlet_sampling_moments():
    a = np.array([0.5, 2.0, 5.0])
    s = Dirichlet(_t(a)).sample((40000,), generator=tl.Generator(4)).array
    assert s.shape == (40000, 3)
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(s.mean(0), a / a.sum(), atol=0.005)
    again = Dirichlet(_t(a)).sample((40000,), generator=tl.Generator(4)).array
    np.testing.assert_array_equal(s, again)
    b = Beta(_t([2.0, 0.5]), _t([3.0, 0.5])).sample((40000,), generator=tl.Generator(5)).array
    np.testing.assert_allclose(b.mean(0), [0.4, 0.5], atol=0.01)
    np.testing.assert_allclose(b.var(0), scipy.stats.beta([2, 0.5], [3, 0.5]).var(), rtol=0.05)
    lap = Laplace(_t([1.0]), _t([2.0])).sample((40000,), generator=tl.Generator(6)).array
    assert np.median(lap) == pytest.approx(1.0, abs=0.05)
    assert lap.var() == pytest.approx(8.0, rel=0.05)
    L = _tril(np.random.default_rng(7), 2)
    mv = MultivariateNormal(_t([1.0, -1.0]), _t(L)).sample((40000,), generator=tl.Generator(8))
    np.testing.assert_allclose(np.cov(mv.array.T), L @ L.T, atol=0.06)


def _fixed(sampler):
    """rsample with the same noise on every call (central differences need it)."""
    gen = tl.Generator(3)
    state = gen.get_state()

    def draw(*params):
        gen.set_state(state)
        return sampler(*params, gen)
    return draw


@given(shapes.flatmap(lambda s: st.tuples(_floats(s, -2, 2), _floats(s, 0.3, 2),
                                          _floats(s, -3, 3), _floats(s, -2, 2),
                                          _floats(s, 0.3, 2))))
def test_laplace_gradcheck(args):
    loc, scale, x, loc2, scale2 = args
    # |x - loc| has a kink at x = loc: keep x away from it
    x = np.where(np.abs(x - loc) < 0.1, loc + 0.5, x)
    L, S, X, L2, S2 = (_t(a, True) for a in (loc, scale, x, loc2, scale2))
    assert tl.gradcheck(lambda m, s, v: Laplace(m, s).log_prob(v), [L, S, X])
    assert tl.gradcheck(lambda s: Laplace(0.0, s).entropy(), [S])
    assert tl.gradcheck(_fixed(lambda m, s, g: Laplace(m, s).rsample((2,), generator=g)),
                        [L, S])
    if np.all(np.abs(loc - loc2) > 0.1):
        assert tl.gradcheck(lambda a, b, c, d: kl_divergence(Laplace(a, b), Laplace(c, d)),
                            [L, S, L2, S2])


@given(shapes.flatmap(lambda s: st.tuples(_floats(s, 0.4, 4), _floats(s, 0.4, 4),
                                          _floats(s, 0.05, 0.95), _floats(s, 0.4, 4),
                                          _floats(s, 0.4, 4))))
def test_beta_gradcheck(args):
    a, b, x, a2, b2 = (_t(v, True) for v in args)
    assert tl.gradcheck(lambda p, q, v: Beta(p, q).log_prob(v), [a, b, x])
    assert tl.gradcheck(lambda p, q: Beta(p, q).entropy(), [a, b])
    assert tl.gradcheck(lambda p, q, r, s: kl_divergence(Beta(p, q), Beta(r, s)),
                        [a, b, a2, b2])
    assert tl.gradgradcheck(lambda p, q, v: Beta(p, q).log_prob(v), [a, b, x])


@given(st.sampled_from([(3,), (2, 4)]).flatmap(
    lambda s: st.tuples(_floats(s, 0.4, 4), _floats(s, 0.4, 4))))
def test_dirichlet_gradcheck(args):
    alpha, beta = args
    x = np.random.default_rng(0).dirichlet(np.ones(alpha.shape[-1]), alpha.shape[:-1] or None)
    A, B, X = _t(alpha, True), _t(beta, True), _t(x, True)
    assert tl.gradcheck(lambda a, v: Dirichlet(a).log_prob(v), [A, X])
    assert tl.gradcheck(lambda a: Dirichlet(a).entropy(), [A])
    assert tl.gradcheck(lambda a, b: kl_divergence(Dirichlet(a), Dirichlet(b)), [A, B])


@given(st.integers(0, 10_000), st.sampled_from([1, 2, 3]))
def test_multivariate_normal_gradcheck(seed, d):
    rng = np.random.default_rng(seed)
    loc, L, x = rng.standard_normal(d), _tril(rng, d), rng.standard_normal((2, d))
    loc2, L2 = rng.standard_normal(d), _tril(rng, d)
    M, S, X, M2, S2 = (_t(v, True) for v in (loc, L, x, loc2, L2))
    tril = np.tril(np.ones((d, d)))

    def lower(s):      # perturbations of the upper triangle must not matter
        return s * _t(tril)
    assert tl.gradcheck(lambda m, s, v: MultivariateNormal(m, lower(s), validate_args=False)
                        .log_prob(v), [M, S, X])
    assert tl.gradcheck(lambda s: MultivariateNormal(M.detach(), lower(s),
                                                     validate_args=False).entropy(), [S])
    assert tl.gradcheck(_fixed(lambda m, s, g: MultivariateNormal(
        m, lower(s), validate_args=False).rsample((2,), generator=g)), [M, S])
    assert tl.gradcheck(lambda a, b, c, e: kl_divergence(
        MultivariateNormal(a, lower(b), validate_args=False),
        MultivariateNormal(c, lower(e), validate_args=False)), [M, S, M2, S2])
    assert tl.gradgradcheck(lambda m, s, v: MultivariateNormal(m, lower(s),
                                                               validate_args=False)
                            .log_prob(v), [M, S, X])


@given(shapes.flatmap(lambda s: st.tuples(_floats(s, -2, 2), _floats(s, 0.1, 0.9))),
       st.floats(0.3, 2.0))
def test_relaxed_bernoulli_gradcheck(args, tau):
    logits, y = args
    L, Y, T = _t(logits, True), _t(y, True), _t(tau, True)
    assert tl.gradcheck(lambda l, v, t: RelaxedBernoulli(t, logits=l).log_prob(v), [L, Y, T])
    assert tl.gradcheck(_fixed(lambda l, t, g: RelaxedBernoulli(t, logits=l)
                               .rsample((2,), generator=g)), [L, T])


@given(st.sampled_from([(3,), (2, 4)]).flatmap(lambda s: _floats(s, -2, 2)),
       st.floats(0.3, 2.0))
def test_relaxed_one_hot_categorical_gradcheck(logits, tau):
    y = np.random.default_rng(1).dirichlet(np.ones(logits.shape[-1]) * 2,
                                           logits.shape[:-1] or None)
    L, Y, T = _t(logits, True), _t(y, True), _t(tau, True)
    assert tl.gradcheck(lambda l, v, t: RelaxedOneHotCategorical(t, logits=l).log_prob(v),
                        [L, Y, T])
    assert tl.gradcheck(_fixed(lambda l, t, g: RelaxedOneHotCategorical(t, logits=l)
                               .rsample((2,), generator=g)), [L, T])


@given(st.integers(0, 10_000))
def test_mixture_and_independent_gradcheck(seed):
    rng = np.random.default_rng(seed)
    W, M, S = _t(rng.standard_normal(3), True), _t(rng.standard_normal(3), True), \
        _t(rng.uniform(0.3, 2, 3), True)
    X = _t(rng.standard_normal(4), True)
    assert tl.gradcheck(lambda w, m, s, v: MixtureSameFamily(Categorical(logits=w),
                                                             Normal(m, s)).log_prob(v),
                        [W, M, S, X])
    M2, S2 = _t(rng.standard_normal((2, 3)), True), _t(rng.uniform(0.3, 2, (2, 3)), True)
    assert tl.gradcheck(lambda m, s: Independent(Normal(m, s), 1).entropy(), [M2, S2])


def test_standard_normal_and_new_argument_errors():
    z = tl.zeros(2, 3, dtype=tl.float64)
    p = standard_normal(z)
    assert p.log_prob(z).dtype == np.float64 and p.log_prob(z).shape == (2, 3)
    np.testing.assert_allclose(p.log_prob(z).array, scipy.stats.norm.logpdf(0.0))
    with pytest.raises(ValueError, match="Laplace: scale must be > 0"):
        Laplace(0.0, _t([-1.0]))
    with pytest.raises(ValueError, match="Beta: concentration0 must be > 0"):
        Beta(1.0, _t([0.0]))
    with pytest.raises(ValueError, match="Dirichlet: concentration must be > 0"):
        Dirichlet(_t([1.0, -1.0]))
    with pytest.raises(ValueError, match="lower triangular with a positive diagonal"):
        MultivariateNormal(_t([0.0, 0.0]), _t([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"loc \(\.\.\., D\) and scale_tril"):
        MultivariateNormal(_t([0.0, 0.0]), _t(np.eye(3)))
    with pytest.raises(ValueError, match="RelaxedBernoulli: temperature must be > 0"):
        RelaxedBernoulli(0.0, logits=_t([0.0]))
    with pytest.raises(NotImplementedError, match="rsample"):
        Dirichlet(_t([1.0, 1.0])).rsample()


@pytest.mark.parametrize("name", ["Gamma", "Cauchy", "OneHotCategorical"])
def test_gamma_cauchy_one_hot_categorical_match_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 3, size=(4, 3)), rng.uniform(0.5, 3, size=(4, 3))
    if name == "OneHotCategorical":
        params = [rng.normal(size=(4, 3))]
        kw = lambda p: dict(logits=p[0])  # noqa: E731
        x = np.eye(3)[rng.integers(0, 3, size=4)]
    else:
        params = [a, b] if name == "Gamma" else [rng.normal(size=(4, 3)), b]
        kw = lambda p: dict(zip(("concentration", "rate") if name == "Gamma" else  # noqa
                                ("loc", "scale"), p))
        x = rng.uniform(0.1, 4, size=(4, 3))
    ours = getattr(tl.distributions, name)(**kw([tl.tensor(p, requires_grad=True)
                                                 for p in params]))
    theirs = getattr(torch.distributions, name)(**kw([torch.tensor(p, requires_grad=True)
                                                      for p in params]))
    lp, lp_t = ours.log_prob(tl.tensor(x)), theirs.log_prob(torch.tensor(x))
    np.testing.assert_allclose(lp.detach().numpy(), lp_t.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours.entropy().detach().numpy(),
                               theirs.entropy().detach().numpy(), rtol=1e-10)
    if name == "Cauchy":
        np.testing.assert_allclose(ours.cdf(tl.tensor(x)).numpy(),
                                   theirs.cdf(torch.tensor(x)).detach().numpy(), rtol=1e-10)
    # a draw of many samples has the right statistics (medians for Cauchy: no mean)
    s = ours.sample((20000,), generator=tl.Generator(0)).numpy()
    assert s.shape == (20000, 4, 3)
    if name == "Gamma":
        np.testing.assert_allclose(s.mean(0), a / b, rtol=0.06)
    elif name == "Cauchy":
        np.testing.assert_allclose(np.median(s, 0), params[0], atol=0.1 * b.max())
    else:
        assert set(np.unique(s)) <= {0.0, 1.0} and np.all(s.sum(-1) == 1)
        np.testing.assert_allclose(s.mean(0), ours.probs.detach().numpy(), atol=0.02)
