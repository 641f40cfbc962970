"""Metric learning (models/metric_learning.py): the mining against brute force, the losses
against direct float64 formulas, and a training run on MNIST classes 0-4 evaluated on the
unseen classes 5-9 with the encoder frozen."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinylatent as tl
from tinylatent.eval import hit_rate_at_k
from tinylatent.models import SiameseNet, TripletNet
from tinylatent.models.metric_learning import (batch_hard_triplets, contrastive_loss,
                                               n_pair_partners, pair_indices,
                                               semi_hard_triplets, switch_negatives)

labels_and_points = st.integers(2, 9).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 2), min_size=n, max_size=n), st.integers(0, 10 ** 6)))


def _sq_dist(z):
    return ((z[:, None] - z[None]) ** 2).sum(-1)


@settings(max_examples=60, deadline=None)
@given(labels_and_points)
def test_batch_hard_picks_the_hardest_by_brute_force(case):
    y, seed = np.asarray(case[0]), case[1]
    d = _sq_dist(np.random.default_rng(seed).standard_normal((len(y), 3)))
    a, p, n = batch_hard_triplets(d, y)
    expect = []
    for i in range(len(y)):
        pos = [j for j in range(len(y)) if y[j] == y[i] and j != i]
        neg = [j for j in range(len(y)) if y[j] != y[i]]
        if pos and neg:
            expect.append((i, max(pos, key=lambda j: d[i, j]), min(neg, key=lambda j: d[i, j])))
    assert list(zip(a, p, n)) == expect


@settings(max_examples=60, deadline=None)
@given(labels_and_points)
def test_semi_hard_picks_the_closest_negative_beyond_the_positive(case):
    y, seed = np.asarray(case[0]), case[1]
    d = _sq_dist(np.random.default_rng(seed).standard_normal((len(y), 3)))
    got = list(zip(*semi_hard_triplets(d, y)))
    expect = []
    for i in range(len(y)):
        neg = [j for j in range(len(y)) if y[j] != y[i]]
        for k in range(len(y)):
            if y[k] != y[i] or k == i or not neg:
                continue
            semi = [j for j in neg if d[i, j] > d[i, k]]
            expect.append((i, k, min(semi, key=lambda j: d[i, j]) if semi
                           else max(neg, key=lambda j: d[i, j])))
    assert got == expect
    for a, p, n in got:          # positives never appear as negatives
        assert y[a] == y[p] and a != p and y[n] != y[a]


@settings(max_examples=40, deadline=None)
@given(labels_and_points)
def test_switch_negatives_swaps_for_a_third_image_of_the_anchors_class(case):
    """rho-regularisation (Roth et al. 2020): rho = 0 keeps every negative; rho = 1 swaps
    each one whose class has a third image for such an image (never a or p)."""
    y, seed = np.asarray(case[0]), case[1]
    d = _sq_dist(np.random.default_rng(seed).standard_normal((len(y), 3)))
    a, p, n = semi_hard_triplets(d, y)
    rng = np.random.default_rng(seed)
    np.testing.assert_array_equal(switch_negatives(a, p, n, y, 0.0, rng), n)
    swapped = switch_negatives(a, p, n, y, 1.0, rng)
    for i, j, k, s in zip(a, p, n, swapped):
        third = (y == y[i]).sum() >= 3
        assert (s == k) if not third else (y[s] == y[i] and s != i and s != j)


def test_switch_negatives_swaps_a_fraction_rho_uniformly():
    y = np.repeat(np.arange(2), 6)                               # 2 classes of 6
    a, p = np.nonzero((y[:, None] == y[None]) & ~np.eye(12, dtype=bool))
    a, p = np.tile(a, 200), np.tile(p, 200)                      # 12,000 triplets
    n = np.where(y[a] == 0, 11, 0)                               # a negative each
    s = switch_negatives(a, p, n, y, 0.3, np.random.default_rng(0))
    swapped = y[s] == y[a]
    assert abs(swapped.mean() - 0.3) < 0.015, swapped.mean()
    counts = np.bincount(s[swapped & (y[a] == 0)], minlength=6)[:6]   # 4 candidates each
    assert counts.min() > 0.8 * counts.mean(), counts


@settings(max_examples=40, deadline=None)
@given(labels_and_points)
def test_n_pair_negatives_never_hold_a_positive(case):
    y = np.asarray(case[0])
    a, p, mask = n_pair_partners(y)
    assert np.all(y[a] == y[p]) and np.all(a != p)
    for s in range(len(a)):
        for t in range(len(a)):
            # the diagonal is the positive's own logit (0); off it, only other classes
            assert mask[s, t] == (s == t or y[a[t]] != y[a[s]])


def test_losses_equal_direct_float64_formulas():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((10, 4))
    y = np.array([0, 1, 0, 2, 1, 1, 0, 2, 3, 0])
    zt = tl.tensor(z, requires_grad=True)
    # contrastive loss, Hadsell et al. eq. 4, each kind of pair averaged
    i, j, sim = pair_indices(y)
    dist = np.sqrt(((z[i] - z[j]) ** 2).sum(1))
    ref = 0.5 * (dist[sim] ** 2).mean() + 0.5 * (np.maximum(0, 1.5 - dist[~sim]) ** 2).mean()
    got = contrastive_loss(zt[i], zt[j], sim, margin=1.5)
    np.testing.assert_allclose(got.item(), ref, rtol=1e-10)
    assert tl.gradcheck(lambda v: contrastive_loss(v[i], v[j], sim, margin=1.5), [zt])
    # masked N-pair loss (Sohn 2016 eq. 3), row by row
    a, p, mask = n_pair_partners(y)
    rows = []
    for s in range(len(a)):
        neg = [t for t in range(len(a)) if y[a[t]] != y[a[s]]]
        e = [z[a[s]] @ z[p[t]] - z[a[s]] @ z[p[s]] for t in neg]
        rows.append(np.log1p(np.exp(e).sum()))
    model = TripletNet(objective="n_pair", l2_reg=0.0, image_size=8, hidden_channels=(2,),
                       hidden_features=4, latent_features=4)
    model.encoder = tl.nn.Identity()                    # the loss on given embeddings
    loss, metrics = model.loss(zt, y)
    np.testing.assert_allclose(loss.item(), np.mean(rows), rtol=1e-10)
    assert metrics["tuples"].item() == len(a)


def test_rho_regularised_triplet_loss_equals_the_formula_on_switched_triplets():
    """TripletNet(rho=0.5): FaceNet's loss on the semi-hard triplets whose negatives
    switch_negatives swapped, drawn from tl.manual_seed's stream."""
    rng = np.random.default_rng(4)
    z = rng.standard_normal((12, 4))
    y = np.array([0, 1, 0, 2, 1, 1, 0, 2, 2, 0, 1, 0])
    model = TripletNet(rho=0.5, image_size=8, hidden_channels=(2,), hidden_features=4,
                       latent_features=4)
    model.encoder = tl.nn.Identity()
    tl.manual_seed(7)
    got = model.loss(tl.tensor(z), y)[0].item()
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    a, p, n = semi_hard_triplets(_sq_dist(u), y)
    tl.manual_seed(7)
    from tinylatent.data.transforms import as_numpy_generator
    n2 = switch_negatives(a, p, n, y, 0.5, as_numpy_generator(None))
    assert (n2 != n).any() and (y[n2] == y[a]).any()
    ref = np.maximum(0, ((u[a] - u[p]) ** 2).sum(1) - ((u[a] - u[n2]) ** 2).sum(1) + 0.2)
    np.testing.assert_allclose(got, ref.mean(), rtol=1e-6)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="objective must be"):
        TripletNet(objective="quadruplet")
    with pytest.raises(ValueError, match=r"rho must lie in \[0, 1\]"):
        TripletNet(rho=1.5)
    with pytest.raises(ValueError, match="objective='triplet' only"):
        TripletNet(rho=0.5, objective="n_pair")
    model = TripletNet(image_size=8, hidden_channels=(2,), hidden_features=4)
    with pytest.raises(ValueError, match=r"ConvEncoder: expected images \(B, 1, 8, 8\)"):
        model.encode(tl.zeros(3, 1, 9, 9))
    with pytest.raises(ValueError, match="no triplet in the batch"):
        model.loss(tl.zeros(3, 1, 8, 8), np.array([0, 1, 2]))


def _split():
    x, y = tl.data.load_mnist("mnist", "train", download=False)
    xt, yt = tl.data.load_mnist("mnist", "test", download=False)
    x, xt = (v.astype(np.float32)[:, None] / 255.0 for v in (x, xt))   # (N, 1, 28, 28)
    return x[y < 5], y[y < 5], xt[yt >= 5], yt[yt >= 5]


@pytest.mark.slow
def test_triplet_net_on_seen_classes_retrieves_unseen_classes():
    """Trained on digits 0-4 only; recall@1 (hit rate) among test digits 5-9 with the
    encoder frozen, against nearest neighbours on raw pixels on the same queries."""
    x, y, xq, yq = _split()
    tl.manual_seed(0)
    model = TripletNet(latent_features=128)
    opt = tl.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(4):
        perm = rng.permutation(len(x))
        for b in range(0, len(x) - 127, 128):
            loss, _ = model.loss(tl.tensor(x[perm[b:b + 128]]), y[perm[b:b + 128]])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with tl.no_grad():                                  # frozen encoder
        trunk = model.features(tl.tensor(xq)).numpy()
        emb = model.encode(tl.tensor(xq)).numpy()
    raw = xq.reshape(len(xq), -1)
    r1 = {name: hit_rate_at_k(v, yq, v, yq, k=1, metric="cosine", exclude_self=True)
          for name, v in (("raw", raw), ("trunk", trunk), ("embedding", emb))}
    print(r1)
    assert r1["trunk"] > r1["raw"], r1          # measured 0.940 vs 0.934: a narrow win
    # the 128-d embedding itself specialises to the seen classes: measured 0.844, BELOW raw
    # pixels (the goal is not met by the embedding; see the example for Fashion-MNIST)
    assert r1["embedding"] > 0.7, r1


def test_linear_head_batch_norm_and_augmentation_options():
    """hidden_features=0: the embedding is one Linear of the conv features, initialised
    semi-orthogonal (a projection that nearly keeps the features' angles); batch_norm puts
    a BatchNorm2d after each convolution; augment shifts / rotates the labelled images in
    training mode only (in eval mode the loss is that of the images as given)."""
    tl.manual_seed(0)
    model = TripletNet(image_size=8, hidden_channels=(2, 3), hidden_features=0,
                       latent_features=5, batch_norm=True, augment=True)
    assert isinstance(model.encoder.fc, tl.nn.Linear) and model.encoder.fc.weight.shape[1] == 12
    w = model.encoder.fc.weight.detach().numpy()            # (5, 12): orthonormal rows, b = 0
    np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-6)
    assert not model.encoder.fc.bias.detach().numpy().any()
    assert sum(isinstance(m, tl.nn.BatchNorm2d) for m in model.encoder.features) == 2
    x = tl.tensor(np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32))
    y = np.array([0, 0, 1, 1, 2, 2])
    loss, _ = model.loss(x, y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with tl.no_grad():
        first, again = model.loss(x, y)[0].item(), model.loss(x, y)[0].item()
        z = model.encode(x).numpy()
    assert first == again                                 # no augmentation in eval mode
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)


def test_protocol_script_holds_a_seen_digit_out_and_restores_the_mining(tmp_path):
    """scripts/metric_protocol.py (the README's way of choosing settings): one epoch with
    digit 4 held out, rho 0.5; the mining functions it wraps are put back afterwards."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "scripts" / "metric_protocol.py"
    spec = importlib.util.spec_from_file_location("metric_protocol", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    import tinylatent.models.metric_learning as metric
    before = metric.semi_hard_triplets
    mean, raw = script.main(["--epochs", "1", "--held-out", "4", "--rho", "0.5",
                             "--out", str(tmp_path / "p.jsonl")])
    assert metric.semi_hard_triplets is before
    assert mean.shape == (1, 2) and 0.5 < mean.min() <= 1 and 0.5 < raw <= 1
    import json
    (line,) = (tmp_path / "p.jsonl").read_text().splitlines()
    assert json.loads(line)["args"]["rho"] == 0.5
    assert json.loads(line)["embedding"] == [mean[0, 0]]


MNIST_RECIPE = ["--rho", "0.5", "--margin", "0.05", "--epochs", "2"]  # chosen: README row


def _triplet_example(dataset, tmp_path):
    if dataset == "fashion-mnist":
        try:
            tl.data.load_mnist("fashion-mnist", "test", download=False)
        except FileNotFoundError as e:
            pytest.skip(f"full Fashion-MNIST not found (offline, no cache): {e}")
    from example_runner import load_example
    extra = ["--dataset", dataset, "--epochs", "2"] if dataset == "fashion-mnist" else \
        MNIST_RECIPE
    _, res = load_example("contrastive").main(["--model", "triplet", "--latent-features", "512",
                                               "--hidden-features", "0", "--lr", "3e-4",
                                               "--out", str(tmp_path)] + extra)
    return res


@pytest.mark.long
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_triplet_conv_trunk_beats_raw_pixels_on_unseen_classes(dataset, tmp_path):
    """examples/contrastive.py --model triplet --latent-features 512 --hidden-features 0
    --lr 3e-4, MNIST with --rho 0.5 --margin 0.05 --epochs 2, Fashion with --dataset
    fashion-mnist --epochs 2, trained on classes 0-4: recall@1 among test images of 5-9 of
    the FROZEN conv trunk above raw pixels. Measured: MNIST 0.944 vs 0.934; Fashion-MNIST
    0.928 vs 0.908."""
    res = _triplet_example(dataset, tmp_path)
    assert res["conv trunk"] > res["raw pixels"], res


@pytest.mark.long
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_triplet_embedding_beats_raw_pixels_on_unseen_classes(dataset, tmp_path):
    """The same runs, the embedding itself (unit length, 512-d, a linear map of the trunk
    initialised semi-orthogonal; lr, epochs, init and MNIST's rho / margin chosen on classes
    0-4 with one held out, never on 5-9). Measured: Fashion-MNIST 0.914 vs raw 0.908 (met,
    narrowly); MNIST 0.936 vs raw 0.934 (met by one query of 500; FaceNet's margin 0.2
    without rho, 10 epochs: 0.920)."""
    res = _triplet_example(dataset, tmp_path)
    assert res["embedding"] > res["raw pixels"], res
