"""Moving MNIST: shapes, determinism, bouncing inside the frame, the arrow-of-time variants,
per-digit colours and pixel labels."""
import numpy as np
import pytest

from tinylatent.data.moving_mnist import _trajectories, moving_mnist


@pytest.fixture(scope="module")
def digits():
    # two synthetic 28x28 "digits" (a filled square and a ring) with known pixels
    glyphs = np.zeros((2, 28, 28), dtype=np.uint8)
    glyphs[0, 8:20, 8:20] = 255
    glyphs[1, 4:24, 4:24] = 200
    glyphs[1, 8:20, 8:20] = 0
    return glyphs, np.array([3, 7])


def test_shapes_range_and_seeded_determinism(digits):
    m = moving_mnist(3, num_frames=10, digits=digits, generator=0)
    assert m.videos.shape == (3, 10, 1, 64, 64) and m.videos.dtype == np.float32
    assert m.ids.shape == (3, 10, 64, 64) and m.labels.shape == (3, 2)
    assert set(np.unique(m.labels)) <= {3, 7}
    assert 0.0 <= m.videos.min() and m.videos.max() <= 1.0
    again = moving_mnist(3, num_frames=10, digits=digits, generator=0)
    np.testing.assert_array_equal(again.videos, m.videos)
    other = moving_mnist(3, num_frames=10, digits=digits, generator=1)
    assert not np.array_equal(other.videos, m.videos)
    with pytest.raises(ValueError, match="variant must be one of"):
        moving_mnist(1, variant="spin", digits=digits)


def test_embedded_mnist_digits_by_default():
    m = moving_mnist(2, num_frames=3, generator=0)
    assert m.videos.shape == (2, 3, 1, 64, 64) and m.labels.max() <= 9
    assert m.videos.reshape(2, 3, -1).sum(-1).min() > 50      # real strokes are drawn


def test_digits_bounce_and_stay_whole(digits):
    # every frame shows the whole square (144 pixels of 1.0), never cut by the border
    m = moving_mnist(8, num_frames=40, num_digits=1, digits=(digits[0][:1], digits[1][:1]),
                     speed=(4.0, 6.0), generator=3)
    counts = (m.videos[:, :, 0] == 1.0).sum(axis=(2, 3))
    assert (counts == 144).all()
    paths = _trajectories(np.random.default_rng(0), 50, 60, 36.0, (3.0, 6.0), "bounce", 0, 1)
    assert paths.min() >= 0 and paths.max() <= 36.0
    steps = np.linalg.norm(np.diff(paths, axis=1), axis=-1)
    assert steps.max() <= 6.0 + 1e-9                        # reflection never speeds up
    assert (np.sign(np.diff(paths[..., 1], axis=1)) < 0).any()   # some digits turned back


def test_pixel_ids_and_colours(digits):
    one = moving_mnist(4, num_frames=6, num_digits=1, digits=digits, generator=0)
    np.testing.assert_array_equal(one.ids == 1, one.videos[:, :, 0] > 0.3)
    # one coloured digit: every pixel is the digit's colour times the gray intensity
    c1 = moving_mnist(4, num_frames=6, num_digits=1, digits=digits, colors=True, generator=0)
    gray = moving_mnist(4, num_frames=6, num_digits=1, digits=digits, generator=0)
    assert c1.videos.shape == (4, 6, 3, 64, 64)
    np.testing.assert_allclose(c1.videos, gray.videos * c1.colors[:, 0, None, :, None, None],
                               atol=1e-6)
    m = moving_mnist(4, num_frames=6, num_digits=2, digits=digits, colors=True, generator=0)
    assert not np.allclose(m.colors[:, 0], m.colors[:, 1])
    np.testing.assert_allclose(m.colors.max(axis=-1), 1.0)            # bright, saturated hues
    assert set(np.unique(m.ids)) == {0, 1, 2}


def test_fading_is_time_asymmetric(digits):
    square = (digits[0][:1], digits[1][:1])            # peak intensity 1.0
    m = moving_mnist(5, num_frames=12, num_digits=1, variant="fading", fade=0.8, digits=square,
                     generator=0)
    peak = m.videos.reshape(5, 12, -1).max(axis=-1)                   # (N, T)
    np.testing.assert_allclose(peak, np.broadcast_to(0.8 ** np.arange(12), (5, 12)), rtol=1e-6)
    # forward videos always darken, reversed ones brighten: a perfect arrow-of-time cue
    total = m.videos.sum(axis=(2, 3, 4))
    assert (np.diff(total, axis=1) < 0).all()
    assert (np.diff(total[:, ::-1], axis=1) > 0).all()


def _apex_changes(restitution):
    """(#successive apexes lower than the one before, #higher) over 200 gravity paths."""
    limit = 36.0
    paths = _trajectories(np.random.default_rng(0), 200, 60, limit, (2.0, 5.0), "gravity",
                          0.6, restitution)
    y = paths[..., 0]                                     # y grows downwards; floor at limit
    apex = (y[:, 1:-1] < y[:, :-2]) & (y[:, 1:-1] <= y[:, 2:]) & (y[:, 1:-1] > 0.5)
    lower = higher = 0
    for s in range(len(y)):
        height = limit - y[s, 1:-1][apex[s]]
        height = height[height > 5.0]        # small hops are dominated by frame sampling
        lower += int((np.diff(height) < 0).sum())
        higher += int((np.diff(height) > 0).sum())
    return lower, higher, y[:, -20:].mean() - y[:, :20].mean()


def test_gravity_bounces_lose_height():
    # inelastic floor: every apex is lower than the one before (measured 254 lower, 0 higher),
    # so a reversed video, whose apexes rise, is detectable; digits settle towards the floor
    lower, higher, settle = _apex_changes(0.7)
    assert lower > 100 and higher == 0 and settle > 5.0
    # the control: an elastic floor keeps the heights (measured 239 lower, 261 higher)
    lower, higher, settle = _apex_changes(1.0)
    assert abs(lower - higher) < 0.2 * (lower + higher) and abs(settle) < 2.0
    g = 0.6
    paths = _trajectories(np.random.default_rng(1), 50, 30, 36.0, (2.0, 5.0), "gravity", g, 0.7)
    vy = np.diff(paths[..., 0], axis=1)
    # speeds stay below 9 px/frame, so three frames all 9 px from the walls had no bounce
    assert np.abs(vy).max() < 9
    inside = (paths[..., 0] > 9) & (paths[..., 0] < 27)
    free = inside[:, :-2] & inside[:, 1:-1] & inside[:, 2:]
    assert free.sum() > 100
    # between bounces the vertical speed grows by g each frame
    np.testing.assert_allclose(np.diff(vy, axis=1)[free][:100], g, atol=1e-9)
