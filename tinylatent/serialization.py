"""Save and load checkpoints: `tl.save(obj, path)`, `tl.load(path, map_location=None)`.

`obj` is any nesting of dicts, lists and tuples whose leaves are Tensors, NumPy arrays or
scalars, Python numbers (ints of any size: RNG states hold 128-bit ones), strings, bools and
None: model and optimizer state dicts, or a whole training checkpoint.

The file is an ordinary `.npz` archive (readable with `np.load`): one entry per array, plus
an entry `__header__` holding UTF-8 JSON that describes the structure, each leaf's type and
each array's dtype and shape. Nothing is pickled, and loading uses `allow_pickle=False`, so a
checkpoint from an untrusted source cannot run code.

Writing is atomic: the archive goes to a temporary file in the same directory, is flushed
and fsync'ed, then renamed over `path` with `os.replace`. A crash or an exception mid-save
leaves the previous file untouched (and removes the temporary file). The temporary file is
named `.<name>.tl-save-<pid>-<random>.tmp`, so a user can tell what it is; one left behind
by a killed save (its process no longer running) is removed by the next save of the same
file. The new file gets the mode an ordinary `open()` would give it (0666 less the umask),
and a file saved over keeps its mode.
"""
from __future__ import annotations

import glob
import io
import json
import os
import stat
import tempfile
import zipfile
from typing import Any

import numpy as np

from .backend import Device
from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError", "FORMAT", "VERSION", "check_resume_args",
           "atomic_write"]

FORMAT = "tinylatent-checkpoint"
VERSION = 1
_HEADER = "__header__"
_DEVICE_ERROR = "CUDA is not available here"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: truncated, corrupt or not a checkpoint."""


# ---------------------------------------------------------------------------- encoding
def _host_array(value) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.numpy_host()
    if isinstance(value, np.ndarray):
        return value
    return value.get()  # pragma: no cover - a CuPy array


def _encode(obj: Any, arrays: dict, where: str) -> dict:
    """The JSON node for `obj`; arrays go into `arrays` under fresh keys."""
    if obj is None:
        return {"t": "none"}
    if isinstance(obj, np.generic):   # before float: np.float64 is a subclass of float
        return _encode_array(obj, arrays, where)
    if isinstance(obj, bool):
        return {"t": "bool", "v": obj}
    if isinstance(obj, int):
        return {"t": "int", "v": str(obj)}          # a string: exact for 128-bit ints too
    if isinstance(obj, float):
        return {"t": "float", "v": repr(obj)}       # repr round-trips, also nan / inf
    if isinstance(obj, str):
        return {"t": "str", "v": obj}
    if isinstance(obj, (Tensor, np.ndarray)) or hasattr(obj, "__cuda_array_interface__"):
        return _encode_array(obj, arrays, where)
    if isinstance(obj, (list, tuple)):
        return {"t": type(obj).__name__ if type(obj) in (list, tuple) else "list",
                "items": [_encode(x, arrays, f"{where}[{i}]") for i, x in enumerate(obj)]}
    if isinstance(obj, dict):
        keys, values = [], []
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool, type(None), tuple)):
                raise TypeError(f"tl.save: {where} has a key of type {type(k).__name__}; "
                                "keys must be str, int, float, bool, None or tuples of them")
            keys.append(_encode(k, {}, f"{where} key {k!r}") if not isinstance(k, tuple)
                        else _encode(k, _NoArrays(where), f"{where} key {k!r}"))
            values.append(_encode(v, arrays, f"{where}[{k!r}]"))
        return {"t": "dict", "keys": keys, "values": values}
    if callable(getattr(obj, "state_dict", None)):    # a Module, an Optimizer, a scheduler
        raise TypeError(f"tl.save: {where} is a whole {type(obj).__name__}; save its "
                        "state_dict() instead (tl.save(model.state_dict(), path), then "
                        "model.load_state_dict(tl.load(path))): saving whole objects would "
                        "need pickle, which tinylatent never uses")
    raise TypeError(f"tl.save: cannot save {where} of type {type(obj).__name__}; supported: "
                    "dict, list, tuple, Tensor, numpy array/scalar, int, float, bool, str, "
                    "None")


def _encode_array(obj, arrays: dict, where: str) -> dict:
    kind = "tensor" if isinstance(obj, Tensor) else \
        "scalar" if isinstance(obj, np.generic) else "ndarray"
    arr = np.asarray(obj) if kind == "scalar" else _host_array(obj)
    if arr.dtype.hasobject:
        raise TypeError(f"tl.save: {where} is an array of Python objects (dtype object), "
                        "which cannot be saved without pickle")
    key = f"a{len(arrays)}"
    dtype = arr.dtype.str
    if arr.dtype.name == "bfloat16":   # .npy knows no bfloat16 ('<V2'): store its 16 bits
        arr, dtype = arr.view(np.uint16), "bfloat16"
    arrays[key] = arr
    node = {"t": kind, "key": key, "dtype": dtype, "shape": list(arr.shape)}
    if kind == "tensor":
        node["device"] = str(obj.device)
    return node


class _NoArrays(dict):
    """Arrays are not allowed inside dict keys."""

    def __init__(self, where: str):
        super().__init__()
        self.where = where

    def __setitem__(self, key, value):
        raise TypeError(f"tl.save: {self.where} has an array inside a dict key")


def _temp_prefix(path: str) -> str:
    return f".{os.path.basename(path)}.tl-save-"


def _remove_stale_temps(path: str) -> None:
    """Remove temporary files of earlier saves of `path` whose process is no longer running
    (a save killed before its rename). A running save's file is left alone, whichever
    process it belongs to; so is anything not named as our temporary files are."""
    pattern = os.path.join(glob.escape(os.path.dirname(os.path.abspath(path))),
                           glob.escape(_temp_prefix(path)) + "*.tmp")
    for tmp in glob.glob(pattern):
        pid = os.path.basename(tmp)[len(_temp_prefix(path)):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _process_alive(int(pid)):
            continue
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):   # exists (another user's) or cannot tell: keep
        return True
    return True


def _file_mode(path: str) -> int:
    """The mode to give the saved file: an existing file's, else 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)   # the only portable way to read it is to set it
        os.umask(umask)
        return 0o666 & ~umask


def _entries(obj: Any) -> dict:
    """The archive's entries: the JSON header and one array per array leaf."""
    arrays: dict[str, np.ndarray] = {}
    root = _encode(obj, arrays, "obj")
    header = json.dumps({"format": FORMAT, "version": VERSION, "root": root},
                        allow_nan=False, separators=(",", ":"))
    entries = {_HEADER: np.frombuffer(header.encode("utf-8"), dtype=np.uint8)}
    entries.update(arrays)
    return entries


def save(obj: Any, path) -> None:
    """Write `obj` to `path` atomically as an .npz archive with a JSON header (no pickle).

    `path` may also be a binary file object (anything with `write`, e.g. io.BytesIO or
    open(name, "wb")), as in PyTorch; the archive is written at its position, and atomicity
    is then the caller's business. A whole Module or Optimizer is refused: save its
    state_dict(), as PyTorch recommends (a whole object would need pickle)."""
    if hasattr(path, "write"):
        np.savez(path, **_entries(obj))
        return
    path = os.fspath(path)
    if not path:
        raise ValueError("tl.save: the path is empty; give a file name such as 'model.npz'")
    if os.path.isdir(path):
        raise IsADirectoryError(f"tl.save: '{path}' is a directory; give a file name")
    entries = _entries(obj)
    atomic_write(path, lambda f: np.savez(f, **entries))


def atomic_write(path, write) -> None:
    """Call write(f) on a binary temporary file in `path`'s directory, flush and fsync it,
    then rename it over `path` (os.replace): readers see the old file or the whole new one,
    never a part. On any exception the temporary file is removed and `path` is untouched.
    Used by `save` and by tinylatent.data.save_word_vectors."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f"{_temp_prefix(path)}{os.getpid()}-",
                               suffix=".tmp")
    try:
        os.chmod(tmp, _file_mode(path))   # mkstemp makes it 0600 whatever the umask
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())   # the bytes are on disk before the rename makes them live
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort; not possible on every OS)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


# ---------------------------------------------------------------------------- decoding
def _decode(node: dict, archive, device, path: str) -> Any:
    kind = node["t"]
    if kind == "none":
        return None
    if kind == "bool":
        return bool(node["v"])
    if kind == "int":
        return int(node["v"])
    if kind == "float":
        return float(node["v"])
    if kind == "str":
        return str(node["v"])
    if kind in ("tensor", "ndarray", "scalar"):
        _check_declared_size(archive, node["key"], path)
        arr = archive[node["key"]]
        bits = node["dtype"] == "bfloat16"     # saved as its uint16 bits
        if arr.dtype.str != ("<u2" if bits else node["dtype"]) \
                or list(arr.shape) != node["shape"]:
            raise CheckpointError(f"tl.load: '{path}': array {node['key']} has dtype "
                                  f"{arr.dtype.str} shape {list(arr.shape)}, the header says "
                                  f"{node['dtype']} {node['shape']}")
        if bits:
            try:
                from .tensor import bfloat16_dtype
                arr = arr.view(bfloat16_dtype())
            except AttributeError as e:
                raise CheckpointError(f"tl.load: '{path}': array {node['key']} is bfloat16: "
                                      f"{e}") from None
        if kind == "scalar":
            return arr[()]
        if kind == "ndarray":
            return arr
        dev = Device(device if device is not None else node.get("device", "cpu"))
        if dev.type != "cpu":
            from .backend import cuda_available
            if not cuda_available():
                raise RuntimeError(f"tl.load: '{path}' holds tensors saved on {dev}, but "
                                   f"{_DEVICE_ERROR}; pass map_location='cpu'")
        return Tensor(arr, device=dev)
    if kind == "list":
        return [_decode(x, archive, device, path) for x in node["items"]]
    if kind == "tuple":
        return tuple(_decode(x, archive, device, path) for x in node["items"])
    if kind == "dict":
        return {_hashable(_decode(k, archive, device, path)): _decode(v, archive, device, path)
                for k, v in zip(node["keys"], node["values"])}
    raise CheckpointError(f"tl.load: '{path}': unknown node type {kind!r} in the header")


def _check_declared_size(archive, key: str, path: str) -> None:
    """Compare the size an entry's .npy header declares with the entry's real size before
    NumPy allocates it: a corrupt or hostile header claiming 2**42 float64 must be an error
    naming the file, not a 32 TiB allocation."""
    name = key + ".npy"
    try:
        info = archive.zip.getinfo(name)
    except KeyError:
        raise CheckpointError(f"tl.load: '{path}': the header names array {key}, which the "
                              "archive does not hold") from None
    with archive.zip.open(name) as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
        header_len = f.tell()
    declared = dtype.itemsize
    for n in shape:
        declared *= n
    if declared > info.file_size - header_len:
        raise CheckpointError(f"tl.load: '{path}': array {key} declares shape {list(shape)} "
                              f"of {dtype} ({declared} bytes) but its entry holds only "
                              f"{info.file_size - header_len} bytes")


def _hashable(key):
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def load(path, map_location: str | Device | None = None, weights_only: bool = True) -> Any:
    """Read a file written by `save`. Tensors come back with their dtype, requires_grad=False,
    on `map_location` if given, else on the device they were saved from. `path` may be a
    binary file object (anything with `read`). `weights_only` is accepted for PyTorch's
    signature: loading never unpickles, so it is always weights-only."""
    device = str(Device(map_location)) if map_location is not None else None
    if hasattr(path, "read"):
        source = path
        if not (callable(getattr(source, "seekable", None)) and source.seekable()):
            source = io.BytesIO(source.read())    # np.load needs to seek in a zip
        path = str(getattr(path, "name", "<file object>"))
        start = source.tell()
        magic = source.read(4)
        source.seek(start)
    else:
        path = source = os.fspath(path)
        if not path:
            raise ValueError("tl.load: the path is empty; give the checkpoint's file name")
        if not os.path.exists(path):
            raise FileNotFoundError(f"tl.load: no such file: '{path}'")
        with open(path, "rb") as f:
            magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise CheckpointError(f"tl.load: '{path}' is not a tinylatent checkpoint (not an .npz "
                              f"archive: it starts with {magic!r})")
    try:
        archive = np.load(source, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise CheckpointError(f"tl.load: '{path}' is a single .npy array, not a "
                                  "tinylatent checkpoint (.npz with a header)")
        with archive:
            if _HEADER not in archive.files:
                raise CheckpointError(f"tl.load: '{path}' is an .npz file but not a "
                                      "tinylatent checkpoint (no __header__ entry)")
            header = json.loads(archive[_HEADER].tobytes().decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise CheckpointError(f"tl.load: '{path}' is not a tinylatent checkpoint "
                                      f"(format {header.get('format')!r})")
            if header.get("version") != VERSION:
                raise CheckpointError(f"tl.load: '{path}' has checkpoint format version "
                                      f"{header.get('version')!r}; this tinylatent reads "
                                      f"version {VERSION}")
            return _decode(header["root"], archive, device, path)
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(f"tl.load: '{path}' is corrupt (its header is nested too "
                              "deeply to be a checkpoint)") from None
    except RuntimeError as exc:
        if _DEVICE_ERROR in str(exc):   # ours: tensors saved on a GPU, no CUDA here
            raise
        # zipfile's "encrypted, password required" and similar
        raise CheckpointError(f"tl.load: '{path}' is corrupt or not a checkpoint "
                              f"(RuntimeError: {exc})") from exc
    except (zipfile.BadZipFile, ValueError, KeyError, EOFError, OSError, UnicodeDecodeError,
            TypeError, AttributeError, NotImplementedError, MemoryError,
            zipfile.LargeZipFile) as exc:
        raise CheckpointError(f"tl.load: '{path}' is truncated or corrupt "
                              f"({type(exc).__name__}: {exc})") from exc


# ---------------------------------------------------------------------------- resuming
def check_resume_args(saved: dict | None, current: dict, may_change=(), ignore=("resume",),
                      log=print) -> None:
    """Compare the command-line arguments a checkpoint was written with to this run's.

    Arguments in `may_change` (e.g. "epochs": train for longer; "device") take this run's
    value, and each difference is reported through `log` ("which value wins"). Any other
    difference (the learning rate, the batch size, the model's shape, the seed) would make
    the resumed run neither the old run continued nor a new run, so it is refused: a
    ValueError lists every such argument with both values. Arguments in `ignore` are not
    compared. A checkpoint without saved arguments (`saved` None) is accepted, with a note.
    """
    if saved is None:
        log("resume: the checkpoint records no arguments; they cannot be compared")
        return
    differ = [k for k in sorted(set(saved) | set(current))
              if k not in ignore and saved.get(k) != current.get(k)]
    for k in differ:
        if k in may_change:
            log(f"resume: --{k.replace('_', '-')} was {saved.get(k)!r} in the checkpoint, "
                f"{current.get(k)!r} now: using {current.get(k)!r}")
    refused = [k for k in differ if k not in may_change]
    if refused:
        lines = "; ".join(f"--{k.replace('_', '-')}: checkpoint {saved.get(k)!r}, "
                          f"now {current.get(k)!r}" for k in refused)
        raise ValueError(f"resume: the checkpoint was written with different arguments "
                         f"({lines}). Run again with the checkpoint's values to continue it, "
                         f"or write to another --out to start afresh (only "
                         f"{', '.join('--' + m.replace('_', '-') for m in may_change) or 'none'}"
                         " may change on resume)")
