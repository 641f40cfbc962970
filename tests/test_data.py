"""tinylatent.data: DataLoader batching, IDX parsing, corrupt files, the offline fallback."""
import gzip
import hashlib

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.data import (MNIST, DataLoader, Dataset, IDXFormatError, Subset, TensorDataset,
                             load_mnist, random_split, read_idx)
from tinylatent.data import mnist as mnist_mod


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test touches the network; the cache is an empty temp dir."""
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")
    monkeypatch.setenv("TINYLATENT_DATA", str(tmp_path / "cache"))

    def no_network(*a, **k):
        raise AssertionError("a test tried to open a URL")
    monkeypatch.setattr(mnist_mod.urllib.request, "urlopen", no_network)
    monkeypatch.setattr(mnist_mod, "SYSTEM_DATA_DIRS", ())   # this machine's packages: no


# ---------------------------------------------------------------- DataLoader

def test_batches_cover_dataset_in_order():
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    y = np.arange(10)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    assert all(isinstance(t, tl.Tensor) for b in batches for t in b)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x)


def test_drop_last_and_len():
    ds = TensorDataset(np.zeros((10, 2)))
    assert len(DataLoader(ds, 4)) == 3 and len(DataLoader(ds, 4, drop_last=True)) == 2
    assert [b[0].shape[0] for b in DataLoader(ds, 4, drop_last=True)] == [4, 4]
    assert [b[0].shape[0] for b in DataLoader(ds, 5, drop_last=True)] == [5, 5]


def test_shuffle_is_a_permutation_and_reproducible():
    y = np.arange(100)
    ds = TensorDataset(y)

    def epoch(loader):
        return np.concatenate([b[0].numpy() for b in loader])
    a = DataLoader(ds, 16, shuffle=True, generator=tl.Generator(7))
    b = DataLoader(ds, 16, shuffle=True, generator=tl.Generator(7))
    e1, e2 = epoch(a), epoch(a)
    np.testing.assert_array_equal(np.sort(e1), y)          # every item once
    assert not np.array_equal(e1, y)                        # actually shuffled
    assert not np.array_equal(e1, e2)                       # a new order each epoch
    np.testing.assert_array_equal(e1, epoch(b))             # same seed, same orders
    np.testing.assert_array_equal(e2, epoch(b))
    tl.manual_seed(3)
    g1 = epoch(DataLoader(ds, 16, shuffle=True))
    tl.manual_seed(3)
    np.testing.assert_array_equal(g1, epoch(DataLoader(ds, 16, shuffle=True)))


class Squares(Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        return np.float32(i) ** 2, {"i": i}


def test_generic_dataset_is_collated_item_by_item():
    batches = list(DataLoader(Squares(), batch_size=3))
    x, d = batches[0]
    np.testing.assert_array_equal(x.numpy(), [0, 1, 4])
    np.testing.assert_array_equal(d["i"].numpy(), [0, 1, 2])
    assert batches[-1][0].shape == (1,)


def test_subset_and_random_split():
    ds = TensorDataset(np.arange(20))
    parts = random_split(ds, [15, 5], generator=tl.Generator(0))
    idx = np.concatenate([p.indices for p in parts])
    np.testing.assert_array_equal(np.sort(idx), np.arange(20))
    fast = np.concatenate([b[0].numpy() for b in DataLoader(parts[1], 2)])
    np.testing.assert_array_equal(fast, parts[1].indices)   # Subset of a TensorDataset: fast path
    assert [len(p) for p in random_split(ds, [0.5, 0.5])] == [10, 10]
    assert int(Subset(ds, [3, 1])[1][0]) == 1
    with pytest.raises(ValueError, match="sum to"):
        random_split(ds, [3, 4])


def test_bad_arguments():
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=0)


# ---------------------------------------------------------------- IDX files

def idx_bytes(arr: np.ndarray, code=0x08) -> bytes:
    dt = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return head + arr.astype(dt).tobytes()


def write_mnist_like(directory, n=6, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, (img, lab) in mnist_mod.FILES.items():
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for stem, arr in ((img, images), (lab, labels)):
            blob = idx_bytes(arr)
            if gz:
                (directory / (stem + ".gz")).write_bytes(gzip.compress(blob))
            else:
                (directory / stem).write_bytes(blob)
        out[split] = (images, labels)
    return out


@pytest.mark.parametrize("gz", [True, False])
def test_load_from_data_dir(tmp_path, gz):
    truth = write_mnist_like(tmp_path / "d", gz=gz)
    for split in ("train", "test"):
        x, y = load_mnist("fashion-mnist", split, data_dir=tmp_path / "d")
        assert x.dtype == np.uint8 and y.dtype == np.int64 and x.shape == (6, 28, 28)
        np.testing.assert_array_equal(x, truth[split][0])
        np.testing.assert_array_equal(y, truth[split][1])


def test_cache_dir_is_used(tmp_path, monkeypatch):
    truth = write_mnist_like(tmp_path / "cache" / "mnist", n=3)
    # cached .gz files are checked against the published sums: make these the published ones
    monkeypatch.setitem(mnist_mod.SHA256, "mnist", {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (tmp_path / "cache" / "mnist").iterdir()})
    x, y = load_mnist("mnist", "test")
    np.testing.assert_array_equal(x, truth["test"][0])


def test_system_package_copy_is_used_after_the_cache(tmp_path, monkeypatch, capsys):
    # Debian's dataset-fashion-mnist recompresses the .gz files: their bytes differ from the
    # published sums, and they are still read (dpkg verified them); a cached copy comes first
    truth = write_mnist_like(tmp_path / "usr" / "fashion-mnist", n=3)
    monkeypatch.setattr(mnist_mod, "SYSTEM_DATA_DIRS", (tmp_path / "nowhere", tmp_path / "usr"))
    x, y = load_mnist("fashion-mnist", "train")
    np.testing.assert_array_equal(x, truth["train"][0])
    np.testing.assert_array_equal(y, truth["train"][1])
    assert "system package" in capsys.readouterr().err
    cached = write_mnist_like(tmp_path / "cache" / "fashion-mnist", n=2)
    monkeypatch.setitem(mnist_mod.SHA256, "fashion-mnist", {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (tmp_path / "cache" / "fashion-mnist").iterdir()})
    x, _ = load_mnist("fashion-mnist", "train")
    np.testing.assert_array_equal(x, cached["train"][0])
    # an explicit data_dir is a promise: the system copy does not stand in for it
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks"):
        load_mnist("fashion-mnist", "train", data_dir=tmp_path / "empty")


def test_read_idx_other_dtypes(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    (tmp_path / "a").write_bytes(idx_bytes(a, 0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), a)
    f = np.linspace(-1, 1, 5).astype(np.float32)
    (tmp_path / "f.gz").write_bytes(gzip.compress(idx_bytes(f, 0x0D)))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.gz"), f)


def test_corrupt_files_name_the_file(tmp_path):
    good = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    cases = {
        "truncated-idx3-ubyte": (good[:-10], "wrong size"),
        "trailing-idx3-ubyte": (good + b"xx", "wrong size"),
        "badmagic-idx3-ubyte": (b"\x12\x34" + good[2:], "bad IDX magic"),
        "empty-idx3-ubyte": (b"", "bad IDX magic"),
        "short-header-idx3-ubyte": (good[:9], "truncated IDX header"),
        "truncated-gz-idx3-ubyte.gz": (gzip.compress(good)[:-30], "gzip"),
        "badcrc-gz-idx3-ubyte.gz": (gzip.compress(good)[:-8] + b"\0" * 8, "gzip"),
    }
    for name, (blob, msg) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(IDXFormatError, match=msg) as info:
            read_idx(tmp_path / name)
        assert name in str(info.value)


def test_truncated_file_in_data_dir_raises_not_falls_back(tmp_path):
    write_mnist_like(tmp_path, n=4)
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(IDXFormatError, match="t10k-images-idx3-ubyte.gz"):
        load_mnist("mnist", "test", data_dir=tmp_path)


# ---------------------------------------------------------------- embedded fallback

def test_embedded_fallback_is_real_balanced_mnist(capsys):
    mnist_mod._announced.clear()
    x, y = load_mnist("mnist", "train")
    xt, yt = load_mnist("mnist", "test")
    assert x.shape == (4000, 28, 28) and xt.shape == (1000, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y), [400] * 10)
    np.testing.assert_array_equal(np.bincount(yt), [100] * 10)
    # MNIST-like pixels: mostly background, strokes up to 255, a centred mass
    assert x.max() == 255 and 0.75 < (x == 0).mean() < 0.85
    assert 100 < x.mean() * 784 / 255 < 130        # ~ 103 "ink" pixels per digit, on average
    assert x[:, :, :3].mean() < 1 and x[:, 10:18, 10:18].mean() > 60
    # train and test do not share images
    tr = {hashlib.sha1(a.tobytes()).digest() for a in x}
    assert not any(hashlib.sha1(a.tobytes()).digest() in tr for a in xt)
    err = capsys.readouterr().err
    assert err.count("embedded 5,000-image subset") == 1   # said once, not per split


def test_fashion_mnist_without_files_says_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz.*fashion-mnist"):
        load_mnist("fashion-mnist", "test")
    with pytest.raises(ValueError, match="dataset must be"):
        load_mnist("cifar")


def test_download_is_checked_and_atomic(tmp_path, monkeypatch):
    """A mirror serving the wrong bytes is refused; right bytes land in the cache dir."""
    monkeypatch.delenv("TINYLATENT_OFFLINE")
    truth = write_mnist_like(tmp_path / "src", n=2)
    blobs = {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}

    class Response:
        def __init__(self, blob):
            self.blob = blob

        def read(self, n=-1):
            return self.blob

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    served = []

    def fake_urlopen(url, timeout):
        assert timeout <= 30
        served.append(url)
        return Response(blobs[url.rsplit("/", 1)[1]])
    monkeypatch.setattr(mnist_mod.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setitem(mnist_mod.SHA256, "fashion-mnist",
                        {k: hashlib.sha256(v).hexdigest() for k, v in blobs.items()})
    x, y = load_mnist("fashion-mnist", "test")
    np.testing.assert_array_equal(y, truth["test"][1])
    cached = sorted(p.name for p in (tmp_path / "cache" / "fashion-mnist").iterdir())
    assert cached == ["t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz.sha256",
                      "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz.sha256"]  # no .part
    # the wrong checksum: refused, nothing written, and (for MNIST) the embedded fallback
    monkeypatch.setitem(mnist_mod.SHA256, "mnist",
                        {k: "0" * 64 for k in mnist_mod.SHA256["mnist"]})
    mnist_mod._unreachable.clear()
    x, y = load_mnist("mnist", "test")
    assert x.shape == (1000, 28, 28)
    assert not (tmp_path / "cache" / "mnist").exists()
    assert "SHA-256" in mnist_mod._unreachable["mnist"]
    mnist_mod._unreachable.clear()


def test_mnist_dataset_and_loader():
    ds = MNIST("test", flatten=True)
    x, y = next(iter(DataLoader(ds, batch_size=32)))
    assert x.shape == (32, 784) and x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    img = MNIST("test", transform=lambda b: 1.0 - b)
    x1, _ = img[0]
    assert x1.shape == (1, 28, 28) and float(x1.max()) == 1.0
    xb, _ = next(iter(DataLoader(img, batch_size=4)))
    np.testing.assert_allclose(xb.numpy()[0], x1.numpy())


def test_make_grid():
    from tinylatent.data import make_grid
    imgs = np.arange(3 * 4, dtype=np.float64).reshape(3, 2, 2)
    g = make_grid(imgs, ncol=2, padding=1, pad_value=-1)
    assert g.shape == (2 * 4, 2 * 4)
    np.testing.assert_array_equal(g[1:3, 1:3], imgs[0])
    np.testing.assert_array_equal(g[1:3, 5:7], imgs[1])
    np.testing.assert_array_equal(g[5:7, 1:3], imgs[2])
    assert (g[4:, 4:] == -1).all()                            # the missing 4th tile
    flat = make_grid(tl.tensor(imgs.reshape(3, 4)), ncol=3)   # flat square images, a Tensor
    assert flat.shape == (4, 12)
    np.testing.assert_array_equal(make_grid(imgs[:, None], ncol=2, padding=1, pad_value=-1), g)
    with pytest.raises(ValueError, match="make_grid"):
        make_grid(np.zeros((2, 5)))


def test_images_and_labels_must_pair_up(tmp_path):
    write_mnist_like(tmp_path, n=4)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(5, np.uint8))))
    with pytest.raises(IDXFormatError, match="t10k-labels-idx1-ubyte.gz.*not uint8"):
        load_mnist("mnist", "test", data_dir=tmp_path)


def test_save_image_grid_writes_the_grid(tmp_path):
    import matplotlib
    import matplotlib.image
    from tinylatent.data import save_image_grid
    backend = matplotlib.get_backend()
    imgs = np.zeros((3, 4, 4))
    imgs[1] = 1.0                                        # one white tile among black ones
    save_image_grid(imgs, tmp_path / "grid.png", ncol=3, title="three tiles")
    png = matplotlib.image.imread(tmp_path / "grid.png")[..., :3].mean(-1)   # (H, W) grey
    assert matplotlib.get_backend() == backend
    assert png.max() == 1.0 and png.min() == 0.0
    with pytest.raises(ValueError, match="make_grid"):
        save_image_grid(np.zeros((2, 3, 4, 5)), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_redraw_loader_draws_afresh_when_a_draw_is_used_up_and_resumes_exactly():
    from tinylatent.data import RedrawLoader
    draws = []

    def draw(rng):                        # 10 items a draw, each the draw's own random number
        draws.append(float(rng.random()))
        return TensorDataset(np.full(10, draws[-1]), np.arange(10))

    loader = RedrawLoader(draw, batch_size=4, steps=5, generator=tl.Generator(7))
    assert len(loader) == 5
    first = [(x.numpy(), i.numpy()) for x, i in loader]
    assert len(draws) == 3 and len(set(draws)) == 3      # 2 full batches a draw (drop_last)
    assert [len(i) for _, i in first] == [4] * 5
    assert [x[0] for x, _ in first] == [draws[0]] * 2 + [draws[1]] * 2 + [draws[2]]
    for k in (0, 2):                      # each draw shuffled, no item twice within a draw
        i = np.concatenate([first[k][1], first[k + 1][1]])
        assert len(set(i)) == 8 and not (i == np.arange(8)).all()
    state = loader.generator.get_state()  # what Trainer checkpoints after a pass
    second = [x.numpy()[0] for x, _ in loader]
    assert second[0] not in draws[:3]     # a new pass starts from a new draw
    again = RedrawLoader(draw, 4, 5, generator=tl.Generator(123))
    again.generator.set_state(state)
    assert [x.numpy()[0] for x, _ in again] == second
    with pytest.raises(ValueError, match="steps"):
        RedrawLoader(draw, 4, 0)
    with pytest.raises(ValueError, match="no batch"):
        list(RedrawLoader(lambda rng: TensorDataset(np.zeros(3)), 4, 2))
