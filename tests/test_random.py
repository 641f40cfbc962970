"""Randomness (tinylatent/random.py): seeding, Generator streams and their saved state,
distributions' basic statistics and dtypes."""
import json

import numpy as np
import pytest

import tinylatent as tl


def _draws(generator=None):
    return [tl.randn(3, 2, generator=generator).numpy(),
            tl.rand(4, generator=generator).numpy(),
            tl.randint(0, 10, (5,), generator=generator).numpy(),
            tl.bernoulli(tl.full((6,), 0.5), generator=generator).numpy(),
            tl.normal(1.0, 2.0, (3,), generator=generator).numpy(),
            tl.uniform(-1.0, 1.0, (3,), generator=generator).numpy(),
            tl.randperm(7, generator=generator).numpy(),
            tl.random.dropout_mask((4, 4), 0.5, generator=generator).numpy()]


def _same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_manual_seed_reproduces():
    tl.manual_seed(123)
    first = _draws()
    tl.manual_seed(123)
    _same(first, _draws())
    tl.manual_seed(124)
    assert not np.array_equal(first[0], _draws()[0])


def test_generator_is_independent_of_default_stream():
    g1, g2 = tl.Generator(7), tl.Generator(7)
    a = _draws(g1)
    tl.randn(100)                      # the default stream moves; g2 does not
    _same(a, _draws(g2))


def test_generator_state_round_trip_reproduces_draws():
    g = tl.Generator(5)
    tl.randn(10, generator=g)
    state = json.loads(json.dumps(g.get_state()))   # plain JSON-able integers
    a = _draws(g)
    g.set_state(state)
    _same(a, _draws(g))
    h = tl.Generator(999)
    h.set_state(state)
    _same(a, _draws(h))


def test_global_rng_state_round_trip():
    tl.manual_seed(3)
    state = tl.get_rng_state()
    a = _draws()
    tl.set_rng_state(state)
    _same(a, _draws())


def test_dtypes_shapes_and_ranges():
    assert tl.randn(2, 3).dtype == np.float32 and tl.randn((2, 3)).shape == (2, 3)
    assert tl.randn(2, dtype=tl.float64).dtype == np.float64
    assert tl.randn(2, requires_grad=True).requires_grad
    assert tl.randint(5, size=(100,)).dtype == np.int64
    r = tl.randint(2, 5, (1000,)).numpy()
    assert r.min() >= 2 and r.max() < 5
    u = tl.rand(1000).numpy()
    assert (u >= 0).all() and (u < 1).all()
    p = tl.randperm(10).numpy()
    assert sorted(p.tolist()) == list(range(10)) and p.dtype == np.int64
    b = tl.bernoulli(tl.tensor([0.0, 1.0])).numpy()
    assert b.tolist() == [0.0, 1.0]
    assert tl.randn().shape == () and tl.normal(size=()).shape == ()
    x = tl.randn(2, 3, dtype=tl.float64)
    assert tl.randn_like(x).dtype == np.float64 and tl.rand_like(x).shape == (2, 3)


def test_basic_statistics():
    tl.manual_seed(0)
    z = tl.normal(2.0, 3.0, (20000,)).numpy()
    assert abs(z.mean() - 2.0) < 0.1 and abs(z.std() - 3.0) < 0.1
    u = tl.uniform(-2.0, 4.0, (20000,)).numpy()
    assert abs(u.mean() - 1.0) < 0.1 and u.min() >= -2.0 and u.max() < 4.0
    b = tl.bernoulli(tl.full((20000,), 0.3)).numpy()
    assert abs(b.mean() - 0.3) < 0.02


def test_dropout_mask_is_inverted():
    tl.manual_seed(1)
    m = tl.random.dropout_mask((200, 200), 0.25).numpy()
    np.testing.assert_allclose(np.unique(m), [0.0, 1.0 / 0.75], rtol=1e-6)
    assert abs(m.mean() - 1.0) < 0.02 and abs((m == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(tl.random.dropout_mask((3,), 0.0).numpy(), np.ones(3))
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\), got 1.0"):
        tl.random.dropout_mask((3,), 1.0)
