"""MNIST-family data (MNIST, Fashion-MNIST, any IDX file) with an offline fallback.

Where the images come from, in order (the loader prints once which one it used):
  1. `data_dir` if given, else the cache `$TINYLATENT_DATA` (default ~/.cache/tinylatent)/<name>:
     the standard IDX files `train-images-idx3-ubyte(.gz)` etc., gzipped or not. A .gz file
     found in the cache is checked against its SHA-256 the first time it is used, and the
     check is recorded next to it (`<file>.sha256`), so later uses do not hash it again;
  2. a download from the standard public mirrors into that directory, each file verified by
     its SHA-256 and renamed into place only when it matches (skipped with download=False or
     TINYLATENT_OFFLINE=1);
  4. MNIST only, and only when no `data_dir` was given: the embedded real 5,000-image subset
     (4,000 train / 1,000 test) that ships with tinylatent (see embedded/README.md). An
     explicit `data_dir` is a promise: if it does not exist or lacks a file, loading raises.
Nothing is unpickled; a truncated or corrupt file raises an error naming the file.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import sys
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..tensor import Tensor
from .dataset import TensorDataset

__all__ = ["read_idx", "load_mnist", "MNIST", "FashionMNIST", "cache_dir", "EMBEDDED_MNIST",
           "IDXFormatError"]

EMBEDDED_MNIST = Path(__file__).parent / "embedded" / "mnist_5k.npz"
# where system packages put datasets (Debian: dataset-fashion-mnist); checked after the cache
SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"),)

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

# Mirrors and SHA-256 of the official .gz files (the same sums torchvision and TFDS check).
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz":
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz":
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz":
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz":
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
DOWNLOAD_TIMEOUT_S = 10.0
MAX_DOWNLOAD_BYTES = 64 * 2**20

# IDX type codes (http://yann.lecun.com/exdb/mnist/, bottom of the page); data is big-endian
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_announced: set = set()   # (dataset, source) pairs already reported: say it once
_unreachable: dict = {}   # dataset -> why its download failed, so we try once per process


class IDXFormatError(ValueError):
    """A file that is not a valid IDX file (bad magic, wrong size, broken gzip)."""


def read_idx(path: "str | os.PathLike") -> np.ndarray:
    """Parse one IDX file (gzipped or raw) into a NumPy array in native byte order.

    Layout: 2 zero bytes, a type code, ndim; then ndim big-endian uint32 sizes; then the data.
    The byte count must match the header exactly, so truncated files are caught.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise IDXFormatError(f"{path}: corrupt or truncated gzip data ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise IDXFormatError(f"{path}: bad IDX magic number {raw[:4].hex() or '(empty)'}; "
                             "expected 0000 then a type code (08 = uint8) and ndim")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + math.prod(shape) * dtype.itemsize   # Python ints: cannot overflow
    if len(raw) != expected:
        raise IDXFormatError(f"{path}: wrong size: the header says shape {shape} "
                             f"({expected} bytes in all) but the file has {len(raw)} bytes"
                             + (" (truncated?)" if len(raw) < expected else ""))
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def cache_dir() -> Path:
    """`$TINYLATENT_DATA`, or ~/.cache/tinylatent."""
    env = os.environ.get("TINYLATENT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tinylatent"


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def _download(dataset: str, fname: str, directory: Path) -> Path:
    """Fetch one .gz file, check its SHA-256, then rename it into place (atomic)."""
    expected = SHA256[dataset][fname]
    errors = []
    for mirror in MIRRORS[dataset]:
        url = mirror + fname
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                blob = response.read(MAX_DOWNLOAD_BYTES + 1)
        except Exception as e:  # network errors of every kind: try the next mirror
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        digest = hashlib.sha256(blob).hexdigest()
        if digest != expected:
            errors.append(f"{url}: SHA-256 {digest} != expected {expected}; refused")
            continue
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=fname, suffix=".part", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, directory / fname)
        except OSError as e:   # a full disk, a file size limit...: leave no .part behind
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise OSError(f"downloaded {url} ({len(blob)} bytes, SHA-256 verified) but could "
                          f"not write it to {directory / fname}: "
                          f"{e.strerror or e} (errno {e.errno})") from e
        _record_verified(directory / fname, digest)
        return directory / fname
    raise OSError(f"could not download {fname}: " + "; ".join(errors))


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stamp(path: Path, digest: str) -> str:
    st = path.stat()
    return f"{digest} {st.st_size} {st.st_mtime_ns}\n"


def _record_verified(path: Path, digest: str) -> None:
    try:
        _sidecar(path).write_text(_stamp(path, digest))
    except OSError:   # a read-only cache: verified again next time, no harm
        pass


def _verify_cached(dataset: str, path: Path) -> None:
    """Check a cached official .gz file against its SHA-256 once, and record that it passed
    (digest, size and mtime in `<file>.sha256`); a file changed since is checked again."""
    expected = SHA256[dataset].get(path.name)
    if expected is None:          # an uncompressed file: no published sum to check
        return
    try:
        if _sidecar(path).read_text() == _stamp(path, expected):
            return
    except OSError:
        pass
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise IDXFormatError(f"{path}: SHA-256 {digest} does not match the published "
                             f"{expected} for {dataset} {path.name}; the cached file is "
                             "corrupt or not the official one: delete it (it will be "
                             "downloaded again) or pass its directory as data_dir")
    _record_verified(path, digest)


def _announce(dataset: str, source: str, message: str) -> None:
    if (dataset, source) not in _announced:
        _announced.add((dataset, source))
        print(f"tinylatent: {message}", file=sys.stderr)


def _offline(download: bool) -> bool:
    return not download or os.environ.get("TINYLATENT_OFFLINE", "") not in ("", "0")


def load_mnist(dataset: str = "mnist", split: str = "train", data_dir=None,
               download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int64 (N,) of MNIST or Fashion-MNIST.

    dataset: "mnist" | "fashion-mnist"; split: "train" | "test". See the module docstring for
    where the data comes from.
    """
    images, labels, _ = _load(dataset, split, data_dir, download)
    return images, labels


def _load(dataset: str, split: str, data_dir, download: bool):
    """load_mnist, plus where the data came from: "files" or "embedded"."""
    dataset = dataset.lower().replace("_", "-")
    if dataset not in SHA256:
        raise ValueError(f"load_mnist: dataset must be one of {sorted(SHA256)}, got {dataset!r}")
    if split not in FILES:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    directory = Path(data_dir).expanduser() if data_dir is not None else cache_dir() / dataset
    if data_dir is not None and not directory.is_dir():
        raise FileNotFoundError(f"load_mnist: data_dir {directory} does not exist (or is not "
                                "a directory)")
    stems = FILES[split]
    paths = [_find(directory, s) for s in stems]
    if data_dir is None:
        for path in paths:
            if path is not None:
                _verify_cached(dataset, path)
    source = f"{directory}"
    if data_dir is None and None in paths:
        for root in SYSTEM_DATA_DIRS:
            found = [_find(root / dataset, s) for s in stems]
            if None not in found:
                paths, source = found, f"{root / dataset} (a system package's copy)"
                break
    problems = []
    if None in paths and not _offline(download):
        if dataset in _unreachable:
            problems.append(_unreachable[dataset])
        else:
            try:
                paths = [p or _download(dataset, s + ".gz", directory)
                         for p, s in zip(paths, stems)]
                source = f"{directory} (downloaded, SHA-256 verified)"
            except OSError as e:
                _unreachable[dataset] = str(e)
                problems.append(str(e))
    if None not in paths:
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        if images.dtype != np.uint8 or images.ndim != 3 or labels.ndim != 1 \
                or len(images) != len(labels):
            raise IDXFormatError(f"{paths[0]} / {paths[1]}: images {images.dtype} "
                                 f"{images.shape} and labels {labels.shape} are not uint8 "
                                 "(N, H, W) images with (N,) labels")
        _announce(dataset, source, f"{dataset} from {source}")
        return images.astype(np.uint8), labels.astype(np.int64), "files"
    where = (f"put {stems[0]}.gz and {stems[1]}.gz (or uncompressed) in {directory}"
             + (" or pass data_dir (--data-dir)" if data_dir is None else ""))
    why = "offline" if _offline(download) else "download failed: " + "; ".join(problems)
    if data_dir is not None:
        missing = [s for s, p in zip(stems, paths) if p is None]
        raise FileNotFoundError(f"load_mnist: data_dir {directory} lacks "
                                f"{' and '.join(m + '(.gz)' for m in missing)} for {dataset} "
                                f"{split} ({why}); the embedded subset is used only when no "
                                "data_dir is given")
    if dataset != "mnist":
        raise FileNotFoundError(f"load_mnist: no {dataset} {split} files found ({why}): {where}.")
    with np.load(EMBEDDED_MNIST, allow_pickle=False) as z:
        images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    _announce(dataset, "embedded", f"MNIST from the embedded 5,000-image subset, 4,000 train / "
                                   f"1,000 test ({why}). For full MNIST, {where}.")
    return images.astype(np.uint8), labels.astype(np.int64), "embedded"


class MNIST(TensorDataset):
    """MNIST-family images as float32 in [0, 1] with int64 labels: items are (x, y).

    x has shape (1, 28, 28), or (784,) with flatten=True. `transform`, if given, maps a batch
    of images (a NumPy/CuPy array (B, ...)) to a new batch; it runs on every batch drawn, so
    random augmentations differ per epoch. `source` says where the images came from:
    "files" (a directory or a download) or "embedded" (the offline 5,000-image subset).
    """

    def __init__(self, split: str = "train", dataset: str = "mnist", data_dir=None,
                 download: bool = True, flatten: bool = False,
                 transform: Callable | None = None):
        images, labels, self.source = _load(dataset.lower().replace("_", "-"), split, data_dir,
                                            download)
        x = images.astype(np.float32) / 255.0           # (N, 28, 28)
        x = x.reshape(len(x), -1) if flatten else x[:, None]   # (N, 784) or (N, 1, 28, 28)
        super().__init__(Tensor._make(x), Tensor._make(labels))
        self.split, self.dataset_name, self.transform = split, dataset, transform

    def take(self, indices: np.ndarray):
        x, y = super().take(indices)
        if self.transform is not None:
            x = Tensor._make(self.transform(x.array))
        return x, y

    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        if self.transform is not None:
            x = Tensor._make(self.transform(x.array[None])[0])
        return x, y


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao et al. 2017): same format as MNIST, ten clothing classes."""

    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")

    def __init__(self, split: str = "train", data_dir=None, download: bool = True,
                 flatten: bool = False, transform: Callable | None = None):
        super().__init__(split, "fashion-mnist", data_dir, download, flatten, transform)
