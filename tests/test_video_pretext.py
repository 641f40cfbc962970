"""Video pretext tasks (tinylatent/models/video_pretext.py): the ConvLSTM cell against
nn.LSTMCell, causality of the frame predictor, the baselines and clip reversal exactly; the
trained figures (next-frame MSE below copy-last and linear extrapolation, arrow of time
>= 90% on gravity) under `-m long`, through examples/video_pretext.py."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl
from tinylatent import nn
from tinylatent.models import ArrowOfTime, FramePredictor
from tinylatent.models.video_pretext import (ConvLSTMCell, copy_last_mse,
                                             linear_extrapolation_mse, reverse_clips)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")


def test_convlstm_with_1x1_kernel_is_an_lstm_cell_at_every_pixel():
    tl.manual_seed(0)
    lstm = nn.LSTMCell(3, 4)
    cell = ConvLSTMCell(3, 4, kernel_size=1)
    w = np.concatenate([lstm.weight_ih.detach().numpy(),
                        lstm.weight_hh.detach().numpy()], 1)            # (4H, in + H)
    with tl.no_grad():
        cell.conv.weight.copy_(tl.tensor(w[:, :, None, None]))
        cell.conv.bias.copy_(tl.tensor(lstm.bias_ih.detach().numpy() +
                                      lstm.bias_hh.detach().numpy()))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    h0 = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    c0 = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    with tl.no_grad():
        h, c = cell(tl.tensor(x), (tl.tensor(h0), tl.tensor(c0)))
        flat = lambda a: tl.tensor(a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1]))  # noqa: E731
        h_ref, c_ref = lstm(flat(x), (flat(h0), flat(c0)))
    back = lambda t: t.numpy().reshape(2, 5, 5, 4).transpose(0, 3, 1, 2)  # noqa: E731
    np.testing.assert_allclose(h.numpy(), back(h_ref), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.numpy(), back(c_ref), rtol=1e-5, atol=1e-6)


def test_frame_predictor_is_causal_and_rollout_continues_it():
    tl.manual_seed(0)
    model = FramePredictor(image_size=8, hidden_channels=4, kernel_size=3)
    rng = np.random.default_rng(1)
    x = rng.random((2, 6, 1, 8, 8)).astype(np.float32)
    x2 = x.copy()
    x2[:, 4:] = rng.random((2, 2, 1, 8, 8))            # change frames 4 and 5 only
    a = model.predict_next(tl.tensor(x)).numpy()       # predictions of frames 1..5
    b = model.predict_next(tl.tensor(x2)).numpy()
    np.testing.assert_array_equal(a[:, :3], b[:, :3])  # frames 1..3 see frames 0..2 only
    assert np.abs(a[:, 4] - b[:, 4]).max() > 0         # frame 5's prediction sees frame 4
    roll = model.rollout(tl.tensor(x[:, :3]), 2).numpy()
    np.testing.assert_allclose(roll[:, 0], a[:, 2], rtol=1e-6)  # = next after 3 true frames
    fed = x[:, :5].copy()                               # frame 4 is unused (nothing after)
    fed[:, 3] = roll[:, 0]                              # feeding the prediction back
    np.testing.assert_allclose(roll[:, 1], model.predict_next(tl.tensor(fed)).numpy()[:, 3],
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"FramePredictor: expected videos \(B, T >= 2"):
        model.loss(tl.zeros(2, 1, 1, 8, 8))


def test_baselines_on_a_constructed_video():
    x = np.zeros((1, 4, 1, 1, 3), np.float32)
    x[0, :, 0, 0] = [[0, 0, 0], [0.2, 0, 0], [0.4, 0, 0], [0.6, 0, 1]]
    np.testing.assert_allclose(copy_last_mse(x), (3 * 0.04 + 1) / 9, rtol=1e-6)
    # linear extrapolation is exact on the ramp, misses the jump at the end
    np.testing.assert_allclose(linear_extrapolation_mse(x), 1 / 6, rtol=1e-6)


def test_reverse_clips_pairs_each_clip_with_its_reversal():
    x = np.arange(2 * 3 * 1 * 2 * 2, dtype=np.float32).reshape(2, 3, 1, 2, 2)
    both, y = reverse_clips(tl.tensor(x))
    np.testing.assert_array_equal(y.numpy(), [1, 0, 1, 0])
    np.testing.assert_array_equal(both.numpy()[0], x[0])
    np.testing.assert_array_equal(both.numpy()[3], x[1, ::-1])
    with pytest.raises(ValueError, match=r"ArrowOfTime: expected clips \(B, 8, 1, 32, 32\)"):
        ArrowOfTime().loss(tl.zeros(2, 7, 1, 32, 32))


def _example():
    path = Path(__file__).resolve().parent.parent / "examples" / "video_pretext.py"
    spec = importlib.util.spec_from_file_location("video_pretext_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_short_runs(tmp_path):
    example = _example()
    tiny = ["--epochs", "1", "--num-train", "16", "--num-test", "4", "--num-frames", "6",
            "--hidden-channels", "4", "--limit-train-batches", "1"]
    r = example.main(tiny + ["--out", str(tmp_path / "p")])
    assert r["copy_last_mse"] > 0 and np.isfinite(r["test_mse"])
    assert (tmp_path / "p" / "rollout.png").read_bytes()[:4] == b"\x89PNG"
    r = example.main(tiny + ["--task", "arrow", "--out", str(tmp_path / "a")])
    assert r["variant"] == "gravity" and 0 <= r["test_accuracy"] <= 1
    r = example.main(tiny + ["--task", "order", "--out", str(tmp_path / "o")])
    assert r["variant"] == "bounce" and 0 <= r["test_accuracy"] <= 1


@pytest.mark.long
def test_frame_prediction_figure(tmp_path):
    """examples/video_pretext.py --task predict defaults: next-frame MSE below copying the
    last frame and below linear extrapolation, on held-out videos. Measured: 0.00969 vs
    copy-last 0.01940 vs linear extrapolation 0.02302 (per pixel, 200 test videos)."""
    r = _example().main(["--out", str(tmp_path)])
    print(r)
    assert r["test_mse"] < r["copy_last_mse"] and r["test_mse"] < r["linear_extrapolation_mse"]


@pytest.mark.long
def test_arrow_of_time_figure(tmp_path):
    """examples/video_pretext.py --task arrow --num-train 4000 (gravity): >= 90% on held-out
    clips. Measured 0.920 (with the default 1,000 videos it overfits: 0.795 after 4 epochs)."""
    r = _example().main(["--task", "arrow", "--num-train", "4000", "--out", str(tmp_path)])
    print(r)
    assert r["test_accuracy"] >= 0.9


def test_order_tuples_follow_the_shuffle_and_learn_sampling():
    from tinylatent.models.order_verification import order_tuples
    n, t = 200, 10
    # pixel (1, 1) of frame t holds t (which frame it is); pixel (0, 0) carries the motion
    v = np.zeros((n, t, 1, 2, 2), np.float32)
    v[:] = np.arange(t, dtype=np.float32)[None, :, None, None, None]
    v[:, 5:, 0, 0, 0] += 100 * (np.arange(1, 6) % 2)   # frames 5..9 flicker: high motion
    tuples, y = order_tuples(tl.tensor(v), generator=1)
    idx = tuples.numpy()[:, :, 0, 1, 1].astype(int)        # which frames were taken
    y = y.numpy()
    assert tuples.shape == (n, 3, 1, 2, 2) and 0.35 < y.mean() < 0.65
    fwd = np.where(idx[:, :1] < idx[:, 2:], idx, idx[:, ::-1])   # undo the random reversal
    assert np.all(fwd[:, 2] - fwd[:, 0] == 2)                  # b and d around c
    np.testing.assert_array_equal(y == 1, fwd[:, 1] == fwd[:, 0] + 1)   # (b, c, d)
    assert set(fwd[y == 0, 1] - fwd[y == 0, 0]) == {-1, 3}      # (b, a, d) or (b, e, d)
    assert 0.3 < (idx[:, 0] > idx[:, 2]).mean() < 0.7          # reversed half the time
    # windows come from the high-motion half: here the windows starting at a >= 3
    assert (np.minimum(fwd[:, 0] - 1, fwd[:, 1]) >= 3).all()
    with pytest.raises(ValueError, match="need >= 5 frames"):
        order_tuples(tl.zeros(2, 4, 1, 2, 2))


@pytest.mark.long
def test_order_verification_figure(tmp_path):
    """examples/video_pretext.py --task order --num-train 4000 --epochs 5: in-order vs
    shuffled tuples of held-out bouncing digits. Measured 0.940 (epochs 1-5: 0.81, 0.90,
    0.89, 0.875, 0.94 on 200 test videos; 1,000 training videos gave 0.645 after 4)."""
    r = _example().main(["--task", "order", "--num-train", "4000", "--epochs", "5",
                         "--out", str(tmp_path)])
    print(r)
    assert r["test_accuracy"] >= 0.8
