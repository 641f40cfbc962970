"""CLIP two-tower model (models/clip.py): the symmetric loss is the mean of both directions
(float64, written out), the learned temperature starts at 0.07 and the logit scale is
clamped at 100 as in the paper, and a short training on MNIST with generated captions
classifies zero-shot within 5 points of a linear probe on the same frozen image features."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent.eval import hit_rate_at_k, linear_probe
from tinylatent.models.clip import CLIP, Captions, TEMPLATES, clip_loss


def _ce_rows(s):
    s = s - s.max(1, keepdims=True)
    return -(np.diag(s) - np.log(np.exp(s).sum(1)))


def test_symmetric_loss_is_the_mean_of_both_directions_float64():
    s = np.random.default_rng(0).standard_normal((6, 6)) * 3
    ref = 0.5 * (_ce_rows(s).mean() + _ce_rows(s.T).mean())
    t = tl.tensor(s, requires_grad=True)
    np.testing.assert_allclose(clip_loss(t).item(), ref, rtol=1e-12)
    assert tl.gradcheck(clip_loss, [t])


def test_model_logits_are_scaled_cosines_and_the_scale_is_clamped():
    tl.manual_seed(0)
    model = CLIP(image_size=8, hidden_channels=(2,), hidden_features=6, latent_features=4,
                 in_features=40)
    cap = Captions()
    rng = np.random.default_rng(0)
    x = tl.tensor(rng.random((5, 1, 8, 8)).astype(np.float32))
    tok = tl.tensor(cap.tokens(cap.sample(np.arange(5), rng)))
    np.testing.assert_allclose(model.scale().item(), 1 / 0.07, rtol=1e-5)
    with tl.no_grad():
        i, t = model.encode(x).numpy(), model.encode_text(tok).numpy()
        logits = model.logits(x, tok).numpy()
    np.testing.assert_allclose(np.linalg.norm(i, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(logits, (i @ t.T) / 0.07, rtol=1e-4, atol=1e-5)
    model.logit_scale.array[...] = np.log(1000.0)         # beyond the clip: exp(t) = 100
    loss, metrics = model.loss((x, tok))
    assert metrics["logit_scale"].item() == pytest.approx(100.0, rel=1e-5)
    loss.backward()
    assert model.logit_scale.grad.item() == 0.0           # clamped: no gradient
    with pytest.raises(ValueError, match="expected a batch"):
        model.loss(x)


def test_captions_use_templates_and_synonyms():
    cap = Captions()
    texts = cap.sample(np.array([7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0]), np.random.default_rng(0))
    assert len({t for t in texts[:10]}) > 1                       # random template / name
    assert all(any(n in t for n in cap.names[7]) for t in texts[:10])
    assert len(cap.prompts(0)) == len(TEMPLATES) * len(cap.names[0])
    tok = cap.tokens(texts)
    assert tok.shape == (11, cap.length) and tok.min() >= 0 and len(cap.vocab) < 64


@pytest.mark.slow
def test_zero_shot_is_within_five_points_of_a_linear_probe():
    x, y = tl.data.load_mnist("mnist", "train", download=False)
    xt, yt = tl.data.load_mnist("mnist", "test", download=False)
    x, xt = (v.astype(np.float32)[:, None] / 255.0 for v in (x, xt))   # (N, 1, 28, 28)
    cap = Captions()
    tl.manual_seed(0)
    model = CLIP()
    opt = tl.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(2):
        perm = rng.permutation(len(x))
        for b in range(0, len(x) - 127, 128):
            i = perm[b:b + 128]
            tok = tl.tensor(cap.tokens(cap.sample(y[i], rng)))
            loss, _ = model.loss((tl.tensor(x[i]), tok))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with tl.no_grad():                                      # frozen towers from here on
        w = model.zero_shot_weights(cap).numpy()
        e = np.concatenate([model.encode(tl.tensor(x[k:k + 1000])).numpy()
                            for k in range(0, len(x), 1000)])
        et = model.encode(tl.tensor(xt)).numpy()
        t = model.encode_text(tl.tensor(cap.tokens(cap.sample(yt, rng)))).numpy()
    zero_shot = float(((et @ w.T).argmax(1) == yt).mean())
    probe = linear_probe(e, y, et, yt)
    r1 = hit_rate_at_k(et, yt, t, yt, k=1, metric="cosine")
    print({"zero_shot": zero_shot, "probe": probe, "image->text R@1": r1})
    assert abs(zero_shot - probe) <= 0.05 and zero_shot > 0.85, (zero_shot, probe)
    assert r1 > 0.85, r1
