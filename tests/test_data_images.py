"""Image data: augmentations, Colored MNIST, the CIFAR-10 binary loader (on files we write)."""
import hashlib
import io
import tarfile

import numpy as np
import pytest

from tinylatent.data import cifar
from tinylatent.data.cifar import CIFAR10, CIFARFormatError, load_cifar10, read_cifar_bin
from tinylatent.data.colored_mnist import (BACKGROUND_SV, FOREGROUND_SV, ColoredMNIST,
                                           colorize_digits, palette)
from tinylatent.data.transforms import (LUMA, ColorJitter, Compose, Cutout, GaussianNoise,
                                        Grayscale, RandomAffine, RandomErasing,
                                        RandomGrayscale, RandomHorizontalFlip,
                                        RandomResizedCrop, RandomRot90, RandomRotation,
                                        _rotation_about_centre, affine_grid_sample,
                                        hsv_to_rgb, rgb_to_hsv, rot90)
from tinylatent.tensor import Tensor

ALL = [RandomResizedCrop(8, scale=(0.3, 1.0)), RandomHorizontalFlip(), RandomRot90(),
       RandomRotation(20), RandomAffine(10, (0.1, 0.1), (0.8, 1.2), 10), GaussianNoise(0.1),
       Cutout(3), RandomErasing(p=1.0), ColorJitter(0.4, 0.4, 0.4, 0.1), RandomGrayscale(0.5)]


def _images(b=5, c=3, h=8, w=8, seed=0):
    return np.random.default_rng(seed).random((b, c, h, w)).astype(np.float32)


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
def test_transform_shapes_types_and_seeded_determinism(t):
    batch = _images()
    out = t(batch, generator=np.random.default_rng(3))
    assert out.shape == batch.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, t(batch, generator=np.random.default_rng(3)))
    single = t(batch[0], generator=1)
    assert single.shape == batch[0].shape
    as_tensor = t(Tensor._make(batch), generator=np.random.default_rng(3))
    assert isinstance(as_tensor, Tensor) and not as_tensor.requires_grad
    np.testing.assert_array_equal(as_tensor.array, out)
    outs = [t(batch, generator=s) for s in range(6)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])     # it is random


def test_bad_input_named():
    with pytest.raises(ValueError, match=r"RandomRotation: expected an image .* shape \(8, 8\)"):
        RandomRotation(10)(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="ColorJitter: needs RGB images with 3 channels, got 2"):
        ColorJitter(0.5)(np.zeros((2, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"ColorJitter \(saturation and hue\): needs RGB"):
        ColorJitter(0.5, saturation=0.2)(np.zeros((2, 1, 4, 4)))
    with pytest.raises(ValueError, match="rot90: odd multiples"):
        rot90(np.zeros((1, 4, 6)), 1)


def test_flips_and_right_angle_rotations_are_exact():
    x = _images()
    flip = RandomHorizontalFlip(p=1.0)
    np.testing.assert_array_equal(flip(x), x[..., ::-1])
    np.testing.assert_array_equal(flip(flip(x)), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x), x)
    y = x
    for _ in range(4):
        y = rot90(y, 1)
    np.testing.assert_array_equal(y, x)
    rotated, k = RandomRot90().sample(x, generator=0)
    for img, r, kk in zip(x, rotated, k):
        np.testing.assert_array_equal(r, np.rot90(img, kk, axes=(1, 2)))


def _grid_sample_loops(x, m, out_hw, fill):
    """affine_grid_sample written out pixel by pixel: each of the four taps reads the image
    where it lies inside, else `fill`."""
    B, C, H, W = x.shape
    oh, ow = out_hw
    out = np.zeros((B, C, oh, ow))
    for b in range(B):
        for i in range(oh):
            for j in range(ow):
                sx, sy = m[b] @ np.array([j, i, 1.0])
                x0, y0 = int(np.floor(sx)), int(np.floor(sy))
                for yy, xx, w in ((y0, x0, (1 - (sy - y0)) * (1 - (sx - x0))),
                                  (y0, x0 + 1, (1 - (sy - y0)) * (sx - x0)),
                                  (y0 + 1, x0, (sy - y0) * (1 - (sx - x0))),
                                  (y0 + 1, x0 + 1, (sy - y0) * (sx - x0))):
                    inside = 0 <= yy < H and 0 <= xx < W
                    out[b, :, i, j] += w * (x[b, :, yy, xx] if inside else fill)
    return out


@pytest.mark.parametrize("out_hw, fill", [(None, 0.0), ((5, 12), -0.5)])
def test_affine_grid_sample_against_a_loop_over_pixels(out_hw, fill):
    """Random affine maps that reach well outside the image (every tap of some pixels is
    outside, others straddle the border), several channels, another output size."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 7, 9))
    m = rng.standard_normal((3, 2, 3)) * [0.6, 0.6, 4.0] + [[1, 0, 0], [0, 1, 0]]
    hw = out_hw or (7, 9)
    np.testing.assert_allclose(affine_grid_sample(x, m, out_hw, fill),
                               _grid_sample_loops(x, m, hw, fill), rtol=1e-12, atol=1e-12)


def test_bilinear_warps_against_exact_cases():
    x = _images(b=2, h=9, w=9)
    # rotating by 90 degrees maps pixel centres onto pixel centres: equals np.rot90 (CCW)
    m = np.stack([_rotation_about_centre(90, 9, 9)] * 2)
    np.testing.assert_allclose(affine_grid_sample(x, m), np.rot90(x, 1, axes=(2, 3)), atol=1e-6)
    np.testing.assert_allclose(RandomRotation(0.0)(x), x, atol=1e-6)
    # an integer shift moves pixels and fills the uncovered column
    shift = np.array([[[1, 0, -2], [0, 1, 0]]] * 2, dtype=np.float64)   # out(x) = in(x - 2)
    out = affine_grid_sample(x, shift, fill=-1.0)
    np.testing.assert_allclose(out[..., 2:], x[..., :-2], atol=1e-6)
    assert (out[..., :2] == -1.0).all()
    # half a pixel between two pixels is their mean
    half = np.array([[[1, 0, 0.5], [0, 1, 0]]] * 2)
    np.testing.assert_allclose(affine_grid_sample(x, half)[..., :-1],
                               (x[..., :-1] + x[..., 1:]) / 2, atol=1e-6)
    # the whole image at scale 1 and aspect 1 is an identity crop
    same = RandomResizedCrop(9, scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, generator=0)
    np.testing.assert_allclose(same, x, atol=1e-6)
    constant = np.full((3, 3, 16, 16), 0.7, dtype=np.float32)
    np.testing.assert_allclose(RandomResizedCrop(5)(constant, generator=0), 0.7, atol=1e-6)


def test_noise_and_erasing():
    x = np.full((64, 1, 16, 16), 0.5, dtype=np.float32)
    noisy = GaussianNoise(0.1, clip=None)(x, generator=0)
    assert abs((noisy - x).std() - 0.1) < 0.005 and abs((noisy - x).mean()) < 0.005
    assert GaussianNoise(1.0)(x, generator=0).min() >= 0.0                   # clipped
    cut = Cutout(4)(np.ones((50, 2, 10, 10), np.float32), generator=0)
    zeros = (cut == 0).all(axis=1).sum(axis=(1, 2))
    assert zeros.max() == 16 and zeros.min() >= 4                        # clipped at borders
    np.testing.assert_array_equal(RandomErasing(p=0.0)(x, generator=0), x)
    erased = RandomErasing(p=1.0, value=0.0)(x, generator=0)
    fraction = (erased == 0).mean(axis=(1, 2, 3))
    assert (fraction > 0).all() and (fraction <= 0.34).all()


def test_colour_transforms():
    x = _images(c=3)
    np.testing.assert_allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-6)
    np.testing.assert_allclose(ColorJitter()(x, generator=0), x)
    gray = Grayscale()(x)
    np.testing.assert_allclose(gray[:, 0], LUMA[0] * x[:, 0] + LUMA[1] * x[:, 1]
                               + LUMA[2] * x[:, 2], rtol=1e-6)
    assert Grayscale(3)(x).shape == x.shape
    grey_rgb = np.repeat(x[:, :1], 3, axis=1)
    np.testing.assert_allclose(Grayscale(3)(grey_rgb), grey_rgb, atol=1e-6)
    # hue jitter keeps the luma-independent quantities: value (max channel) and saturation
    hue = ColorJitter(hue=0.5)(x, generator=0)
    np.testing.assert_allclose(rgb_to_hsv(hue)[:, 1:], rgb_to_hsv(x)[:, 1:], atol=1e-5)
    assert np.abs(hue - x).max() > 0.1
    assert RandomGrayscale(p=1.0)(x).std(axis=1).max() < 1e-6
    bright = ColorJitter(brightness=0.5)(x, generator=0)
    ratio = bright.sum(axis=(1, 2, 3)) / x.sum(axis=(1, 2, 3))
    assert ((ratio > 0.4) & (ratio < 1.51)).all()


def test_colour_jitter_on_grey_is_brightness_then_contrast_about_the_image_mean():
    x = _images(c=1)
    out = ColorJitter(brightness=0.4, contrast=0.4)(x, generator=np.random.default_rng(3))
    rng = np.random.default_rng(3)                  # the same draws, in the same order
    b = rng.uniform(0.6, 1.4, size=len(x))[:, None, None, None]
    bright = (x * b).clip(0, 1)
    c = rng.uniform(0.6, 1.4, size=len(x))[:, None, None, None]
    mean = bright.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, (c * bright + (1 - c) * mean).clip(0, 1), rtol=1e-5,
                               atol=1e-6)


def test_compose_threads_one_generator():
    aug = Compose([RandomHorizontalFlip(), RandomRotation(15), GaussianNoise(0.05)])
    x = _images()
    np.testing.assert_array_equal(aug(x, generator=np.random.default_rng(7)),
                                  aug(x, generator=np.random.default_rng(7)))
    import tinylatent as tl
    tl.manual_seed(5)
    a = aug(x)
    tl.manual_seed(5)
    np.testing.assert_array_equal(a, aug(x))                       # default stream is seeded


def test_colorize_digits():
    digits = np.zeros((200, 6, 6), dtype=np.uint8)
    digits[:, 2:4, 2:4] = 255
    rgb, fg, bg = colorize_digits(digits, num_colors=6, generator=0)
    assert rgb.shape == (200, 3, 6, 6) and (fg != bg).all()
    assert set(fg) == set(range(6)) and set(bg) == set(range(6))
    fg_colors, bg_colors = palette(6, *FOREGROUND_SV), palette(6, *BACKGROUND_SV)
    np.testing.assert_allclose(rgb[:, :, 3, 3], fg_colors[fg], atol=1e-6)   # stroke pixels
    np.testing.assert_allclose(rgb[:, :, 0, 0], bg_colors[bg], atol=1e-6)   # background
    luma = Grayscale()(rgb)[:, 0]
    assert (luma[:, 3, 3] > luma[:, 0, 0]).all()             # the digit shows in grayscale
    for k in (2, 6, 12, 360):                                # for any palette size
        fg_luma, bg_luma = palette(k, *FOREGROUND_SV) @ LUMA, palette(k, *BACKGROUND_SV) @ LUMA
        assert fg_luma.min() > bg_luma.max() + 0.1
    again = colorize_digits(digits, num_colors=6, generator=0)
    np.testing.assert_array_equal(again[0], rgb)


def test_colored_mnist_dataset():
    ds = ColoredMNIST("test", generator=0, transform=RandomHorizontalFlip(p=1.0))
    assert len(ds) == 1000
    x, digit, fg, bg = ds.take(np.arange(4))
    assert x.shape == (4, 3, 28, 28) and int(fg.array[0]) != int(bg.array[0])
    plain = ColoredMNIST("test", generator=0)
    np.testing.assert_array_equal(x.array, plain.take(np.arange(4))[0].array[..., ::-1])
    np.testing.assert_array_equal(ds[0][0].array, x.array[0])


def _records(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 256, size=(n, 3, 32, 32)).astype(np.uint8)
    raw = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1).tobytes()
    return images, labels, raw


def _write_cifar(folder):
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for k, name in enumerate(cifar.FILES["train"] + cifar.FILES["test"]):
        images, labels, raw = _records(3 + k, seed=k)
        (folder / name).write_bytes(raw)
        written[name] = (images, labels)
    return written


def test_cifar_binary_records_round_trip(tmp_path):
    written = _write_cifar(tmp_path / "cifar-10-batches-bin")
    x, y = load_cifar10("train", data_dir=tmp_path)
    assert x.shape == (3 + 4 + 5 + 6 + 7, 3, 32, 32) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:3], written["data_batch_1.bin"][0])
    np.testing.assert_array_equal(y[3:7], written["data_batch_2.bin"][1])
    xt, yt = load_cifar10("test", data_dir=tmp_path / "cifar-10-batches-bin")
    np.testing.assert_array_equal(xt, written["test_batch.bin"][0])
    ds = CIFAR10("test", data_dir=tmp_path, transform=RandomHorizontalFlip(p=1.0))
    img, label = ds[0]
    np.testing.assert_allclose(img.array, written["test_batch.bin"][0][0, :, :, ::-1] / 255.0,
                               rtol=1e-6)
    assert int(label) == written["test_batch.bin"][1][0] and ds.classes[0] == "airplane"


def test_cifar_corrupt_files_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    _write_cifar(folder)
    raw = (folder / "data_batch_3.bin").read_bytes()
    (folder / "data_batch_3.bin").write_bytes(raw[:-100])
    with pytest.raises(CIFARFormatError, match="data_batch_3.bin: .* not a whole number"):
        load_cifar10("train", data_dir=tmp_path)
    bad = bytearray(raw)
    bad[3073] = 42                                        # the second record's label byte
    (folder / "data_batch_3.bin").write_bytes(bytes(bad))
    with pytest.raises(CIFARFormatError, match="data_batch_3.bin: record 1 has label 42"):
        read_cifar_bin(folder / "data_batch_3.bin")


def _archive(tmp_path):
    src = tmp_path / "src"
    written = _write_cifar(src / "cifar-10-batches-bin")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    return buffer.getvalue(), written


def test_cifar_archive_checked_then_unpacked(tmp_path):
    blob, written = _archive(tmp_path)
    home = tmp_path / "data"
    home.mkdir()
    (home / cifar.ARCHIVE).write_bytes(blob)
    with pytest.raises(CIFARFormatError, match="cifar-10-binary.tar.gz: SHA-256 .* != expected "
                                               + cifar.ARCHIVE_SHA256):
        load_cifar10("test", data_dir=home)               # ours is not the official archive
    x, y = load_cifar10("test", data_dir=home, archive_sha256=hashlib.sha256(blob).hexdigest())
    np.testing.assert_array_equal(y, written["test_batch.bin"][1])
    assert (home / "cifar-10-batches-bin" / "data_batch_5.bin").is_file()
    # a truncated archive with a matching checksum is still refused, naming the file
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / cifar.ARCHIVE).write_bytes(blob[:len(blob) // 2])
    with pytest.raises(CIFARFormatError, match="cifar-10-binary.tar.gz: corrupt archive"):
        load_cifar10("test", data_dir=cut,
                     archive_sha256=hashlib.sha256(blob[:len(blob) // 2]).hexdigest())


def test_cifar_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no CIFAR-10 binary files in data_dir"):
        load_cifar10("train", data_dir=tmp_path / "nowhere")
    monkeypatch.setenv("TINYLATENT_DATA", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"not embedded and was not found \(offline"):
        load_cifar10("train")                          # conftest sets TINYLATENT_OFFLINE=1
    _write_cifar(tmp_path / "cache" / "cifar-10" / "cifar-10-batches-bin")
    assert load_cifar10("test")[0].shape == (8, 3, 32, 32)        # the cache is used
    with pytest.raises(ValueError, match="split must be"):
        load_cifar10("valid")


def test_transforms_plug_into_mnist_and_the_dataloader():
    from tinylatent.data import MNIST, DataLoader
    aug = Compose([RandomResizedCrop(28, scale=(0.6, 1.0)), RandomRotation(10)])
    ds = MNIST("test", transform=aug)
    x, y = next(iter(DataLoader(ds, batch_size=16)))
    assert x.shape == (16, 1, 28, 28) and y.shape == (16,)
    plain = MNIST("test").take(np.arange(16))[0].array
    assert not np.allclose(x.array, plain)                         # augmented on every draw
    assert abs(float(x.array.mean()) - float(plain.mean())) < 0.05
