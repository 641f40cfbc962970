"""CIFAR-10 (Krizhevsky 2009) from the official BINARY distribution; nothing is unpickled.

The binary version, `cifar-10-binary.tar.gz`, holds `cifar-10-batches-bin/data_batch_1.bin`
... `data_batch_5.bin` (training, 10,000 images each) and `test_batch.bin`. Each file is a
run of 3,073-byte records: one label byte (0-9), then 1,024 red, 1,024 green and 1,024 blue
bytes of a 32x32 image in row-major order. (The "python version" of the same data is a
pickle, which this loader never reads.)

Where the images come from, in order (the loader says which):
  1. `data_dir` if given: the .bin files in it or in its `cifar-10-batches-bin/`, or the
     archive `cifar-10-binary.tar.gz` in it (checked against `archive_sha256`, then unpacked
     next to it). If none is there, that is an error: an explicit directory is never
     silently replaced by another source.
  2. else the cache `$TINYLATENT_DATA` (default ~/.cache/tinylatent)/cifar-10, the same way;
  3. else a download of the archive from the official site into the cache, verified by its
     SHA-256 before it is renamed into place (skipped with download=False or
     TINYLATENT_OFFLINE=1);
  4. else an error saying where to put the files: CIFAR-10 (170 MB) is not embedded.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np

from .mnist import _announce, _offline, cache_dir
from .transforms import ImageTensorDataset

__all__ = ["read_cifar_bin", "load_cifar10", "CIFAR10", "CIFARFormatError", "CIFAR10_CLASSES"]

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
ARCHIVE = "cifar-10-binary.tar.gz"
# SHA-256 of the official archive (170,052,171 bytes; its published MD5 is
# c32a1d4ab5d03f1284b67883e8d87530), the sum other loaders check too (e.g. MLDatasets.jl)
ARCHIVE_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
FOLDER = "cifar-10-batches-bin"
FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
RECORD = 1 + 3 * 32 * 32
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
DOWNLOAD_TIMEOUT_S = 30.0


class CIFARFormatError(ValueError):
    """A CIFAR-10 file that is truncated, corrupt, or fails its checksum."""


def read_cifar_bin(path: "str | os.PathLike") -> tuple:
    """One binary batch file -> (images uint8 (N, 3, 32, 32), labels int64 (N,))."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) == 0 or len(raw) % RECORD:
        raise CIFARFormatError(f"{path}: {len(raw)} bytes is not a whole number of "
                               f"{RECORD}-byte CIFAR-10 records (truncated or not CIFAR-10?)")
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)    # (N, 3073)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise CIFARFormatError(f"{path}: record {bad} has label {labels[bad]}; CIFAR-10 labels "
                               "are 0-9 (is this the CIFAR-100 or a corrupt file?)")
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()       # channel planes, row-major
    return images, labels


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(archive: Path, expected_sha256: str) -> Path:
    """Check the archive's SHA-256, then extract the six .bin files (by name) next to it."""
    digest = _sha256(archive)
    if digest != expected_sha256:
        raise CIFARFormatError(f"{archive}: SHA-256 {digest} != expected {expected_sha256}; "
                               "refusing a corrupt or different archive (delete it to retry)")
    target = archive.parent / FOLDER
    target.mkdir(parents=True, exist_ok=True)
    wanted = {f"{FOLDER}/{name}" for names in FILES.values() for name in names}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            missing = sorted(wanted - set(members))
            if missing:
                raise CIFARFormatError(f"{archive}: lacks {missing}")
            for name in sorted(wanted):
                data = tar.extractfile(members[name]).read()
                # written under our own name, never a path taken from the archive
                fd, tmp = tempfile.mkstemp(suffix=".part", dir=target)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, target / Path(name).name)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise CIFARFormatError(f"{archive}: corrupt archive ({type(e).__name__}: {e})") from None
    return target


def _bin_dir(directory: Path, archive_sha256: str) -> Path | None:
    """The folder holding all six .bin files under `directory`, unpacking the archive if needed."""
    names = FILES["train"] + FILES["test"]
    for folder in (directory, directory / FOLDER):
        if all((folder / n).is_file() for n in names):
            return folder
    if (directory / ARCHIVE).is_file():
        return _unpack(directory / ARCHIVE, archive_sha256)
    return None


def _download(directory: Path) -> Path:
    """Stream the archive to a temporary file, hashing it; rename into place only if it matches."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=ARCHIVE, suffix=".part", dir=directory)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f, \
                urllib.request.urlopen(URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
            for chunk in iter(lambda: response.read(2**20), b""):
                digest.update(chunk)
                f.write(chunk)
        if digest.hexdigest() != ARCHIVE_SHA256:
            raise OSError(f"{URL}: SHA-256 {digest.hexdigest()} != expected {ARCHIVE_SHA256}; "
                          "refused")
        os.replace(tmp, directory / ARCHIVE)
    except Exception as e:  # network errors of every kind, and a bad checksum
        if os.path.exists(tmp):
            os.remove(tmp)
        raise OSError(f"could not download {URL}: {getattr(e, 'reason', e)}") from None
    return directory / ARCHIVE


def load_cifar10(split: str = "train", data_dir=None, download: bool = True,
                 archive_sha256: str = ARCHIVE_SHA256) -> tuple:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) of CIFAR-10; see the module docstring.

    archive_sha256: the checksum an archive must have (the official one by default).
    """
    if split not in FILES:
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
        folder = _bin_dir(directory, archive_sha256) if directory.is_dir() else None
        if folder is None:
            raise FileNotFoundError(
                f"load_cifar10: no CIFAR-10 binary files in data_dir={directory}: put "
                f"{ARCHIVE} (from {URL}) or the {FOLDER}/*.bin files there")
        source = str(folder)
    else:
        directory = cache_dir() / "cifar-10"
        folder, source = _bin_dir(directory, archive_sha256), None
        if folder is None:
            if _offline(download):
                why = "offline (download=False or TINYLATENT_OFFLINE=1)"
            else:
                try:
                    _download(directory)
                    folder = _unpack(directory / ARCHIVE, archive_sha256)
                    source = f"{folder} (downloaded, SHA-256 verified)"
                except OSError as e:
                    why = str(e)
            if folder is None:
                raise FileNotFoundError(
                    f"load_cifar10: CIFAR-10 is not embedded and was not found ({why}). "
                    f"Download {URL} (SHA-256 {ARCHIVE_SHA256}) into {directory}, or pass "
                    "data_dir")
        source = source or str(folder)
    parts = [read_cifar_bin(folder / name) for name in FILES[split]]
    _announce("cifar-10", source, f"CIFAR-10 {split} from {source}")
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


class CIFAR10(ImageTensorDataset):
    """CIFAR-10 as float32 (3, 32, 32) in [0, 1] with int64 labels: items (x, y).

    `transform` maps a batch (B, 3, 32, 32) array to a new batch on every draw (see
    tinylatent.data.transforms), so random augmentations differ per epoch.
    """

    classes = CIFAR10_CLASSES

    def __init__(self, split: str = "train", data_dir=None, download: bool = True,
                 transform: Callable | None = None, archive_sha256: str = ARCHIVE_SHA256):
        images, labels = load_cifar10(split, data_dir, download, archive_sha256)
        super().__init__(images.astype(np.float32) / 255.0, labels)
        self.split, self.transform = split, transform
