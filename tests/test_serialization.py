"""tl.save / tl.load: round trips of every supported type, atomic writes, corrupt files."""
import json
import os
import zipfile

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.serialization import CheckpointError


def _same(a, b):
    """Deep equality that also checks types and dtypes."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, tl.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and not b.requires_grad
        np.testing.assert_array_equal(a.array, b.array)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_round_trip_every_supported_type(tmp_path):
    gen = tl.Generator(7)
    gen.manual_seed(7)
    tl.randn(5, generator=gen)  # advance, so the state is not the seed's
    obj = {
        "f32": tl.randn(3, 4, requires_grad=True),
        "f64": tl.tensor(np.linspace(0, 1, 5), dtype="float64"),
        "i64": tl.arange(6).reshape(2, 3),
        "bool": tl.tensor(np.array([True, False])),
        "scalar_tensor": tl.tensor(2.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "np_int8": np.arange(-3, 3, dtype=np.int8),
        "np_u16": np.arange(4, dtype=np.uint16),
        "np_c128": np.array([1 + 2j]),
        "np_str": np.array(["ab", "cde"]),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "np_scalars": [np.float32(1.5), np.int64(-7), np.bool_(True)],
        "ints": [0, -1, 2 ** 127 + 12345, -(2 ** 100)],
        "floats": [0.1, -1e-300, float("inf"), float("-inf"), float("nan")],
        "bools": (True, False),
        "strings": ["", "héllo ✓", "a\nb\"c"],
        "none": None,
        "nested": {"list": [[1, [2, (3, {"deep": np.ones(2)})]]], "tuple": ()},
        7: "int key",
        (1, "k"): "tuple key",
        None: "none key",
        "rng": gen.get_state(),
    }
    tl.save(obj, tmp_path / "ck.npz")
    back = tl.load(tmp_path / "ck.npz")
    _same(obj | {"f32": obj["f32"].detach()}, back)
    # the RNG state really restores the stream
    gen2 = tl.Generator(0)
    gen2.set_state(back["rng"])
    np.testing.assert_array_equal(tl.randn(4, generator=gen).array,
                                  tl.randn(4, generator=gen2).array)
    # a plain np.load can read it, and nothing inside is pickled
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as z:
        header = json.loads(z["__header__"].tobytes())
        assert header["version"] == 1 and len(z.files) > 10


def test_top_level_leaves_and_str_paths(tmp_path):
    for obj in [tl.ones(2), 3, "x", None, [1, 2], np.float64(2.0)]:
        path = str(tmp_path / "leaf.ckpt")        # no .npz suffix is added
        tl.save(obj, path)
        assert os.listdir(tmp_path) == ["leaf.ckpt"]
        _same(obj if not isinstance(obj, tl.Tensor) else obj, tl.load(path))


def test_map_location_and_device_errors(tmp_path):
    tl.save({"w": tl.ones(2)}, tmp_path / "a.npz")
    assert tl.load(tmp_path / "a.npz", map_location="cpu")["w"].device == tl.device("cpu")
    # a tensor saved on a GPU, loaded where there is none
    with zipfile.ZipFile(tmp_path / "a.npz") as z:
        arrays = {n[:-4]: np.load(z.open(n)) for n in z.namelist()}
    header = json.loads(arrays["__header__"].tobytes())
    header["root"]["values"][0]["device"] = "cuda:0"
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "gpu.npz", **arrays)
    if not tl.backend.cuda_available():
        with pytest.raises(RuntimeError, match="map_location='cpu'"):
            tl.load(tmp_path / "gpu.npz")
    assert tl.load(tmp_path / "gpu.npz", map_location="cpu")["w"].shape == (2,)


def test_unsupported_values_name_where_they_are(tmp_path):
    with pytest.raises(TypeError, match=r"obj\['model'\]\[1\].*set"):
        tl.save({"model": [1, {2}]}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="dtype object"):
        tl.save({"a": np.array([None, 1])}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="key of type"):
        tl.save({frozenset(): 1}, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_file_objects_round_trip_as_in_pytorch(tmp_path):
    import io
    model = tl.nn.Linear(3, 2)
    state = {"model": dict(model.state_dict()), "step": 7, "rng": np.arange(3)}
    buf = io.BytesIO()
    tl.save(state, buf)
    buf.seek(0)
    _same(state, tl.load(buf))
    with open(tmp_path / "c.npz", "wb") as f:         # an ordinary file opened by the caller
        tl.save(state, f)
    with open(tmp_path / "c.npz", "rb") as f:
        _same(state, tl.load(f, weights_only=True))

    class Unseekable(io.RawIOBase):                     # e.g. a pipe or a socket stream
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self.data.readinto(b)
    _same(state, tl.load(Unseekable(buf.getvalue())))
    with pytest.raises(CheckpointError, match="<file object>.*not a tinylatent"):
        tl.load(io.BytesIO(b"garbage!"))


def test_whole_modules_and_optimizers_are_refused_with_the_way_out(tmp_path):
    model = tl.nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"whole Linear; save its state_dict\(\)"):
        tl.save(model, tmp_path / "m.npz")
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"obj\['opt'\] is a whole SGD; save its state_dict"):
        tl.save({"opt": opt}, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_interrupted_save_keeps_the_old_file_and_leaves_no_litter(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    old = {"epoch": 1, "w": tl.ones(1000)}
    tl.save(old, path)
    before = path.read_bytes()
    import numpy.lib.format as fmt
    real_write = fmt.write_array
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:           # header and one array already written
            raise KeyboardInterrupt("power cut")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(fmt, "write_array", failing_write)
    with pytest.raises(KeyboardInterrupt):
        tl.save({"epoch": 2, "w": tl.zeros(1000), "b": tl.zeros(5), "c": tl.zeros(3)}, path)
    assert len(calls) == 3
    monkeypatch.setattr(fmt, "write_array", real_write)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ck.npz"]
    _same({"epoch": 1, "w": tl.ones(1000)}, tl.load(path))
    # and a later save succeeds normally
    tl.save({"epoch": 3}, path)
    assert tl.load(path) == {"epoch": 3}


def test_a_failing_array_conversion_midway_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    tl.save({"a": 1}, path)
    before = path.read_bytes()

    class Exploding(np.ndarray):
        def __array_finalize__(self, obj):
            pass

    bad = np.ones(3).view(Exploding)
    real = np.asanyarray

    def asanyarray(a, *args, **kwargs):
        if isinstance(a, Exploding):
            raise MemoryError("conversion failed")
        return real(a, *args, **kwargs)

    monkeypatch.setattr(np, "asanyarray", asanyarray)
    with pytest.raises(MemoryError):
        tl.save({"ok": np.zeros(4), "bad": bad}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ck.npz"]


def _checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    tl.save({"epoch": 4, "w": tl.randn(64, 32), "b": tl.randn(32)}, path)
    return path


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_file_names_the_file(tmp_path, keep):
    path = _checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="model.npz"):
        tl.load(path)


def test_flipped_bytes_name_the_file(tmp_path):
    path = _checkpoint(tmp_path)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    failures = 0
    for trial in range(40):
        corrupt = bytearray(data)
        pos = int(rng.integers(0, len(data)))
        corrupt[pos] ^= 0xFF
        path.write_bytes(bytes(corrupt))
        try:
            tl.load(path)
        except CheckpointError as exc:
            assert "model.npz" in str(exc)
            failures += 1
    # zip CRCs catch a flip in any stored member; only flips in a few zip metadata fields
    # (e.g. timestamps) may go unnoticed
    assert failures >= 30


def test_other_files_name_the_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.txt.*not an .npz"):
        tl.load(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.ones(3))
    with pytest.raises(CheckpointError, match="plain.npz.*no __header__"):
        tl.load(plain)
    npy = tmp_path / "one.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(CheckpointError, match="one.npy"):
        tl.load(npy)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        tl.load(tmp_path / "missing.npz")


def _rewrite_header(path, edit):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["__header__"].tobytes())
    edit(header)
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def test_wrong_header_version_or_format_or_shape(tmp_path):
    path = _checkpoint(tmp_path)
    _rewrite_header(path, lambda h: h.update(version=99))
    with pytest.raises(CheckpointError, match="model.npz.*version 99"):
        tl.load(path)
    path = _checkpoint(tmp_path)
    _rewrite_header(path, lambda h: h.update(format="something-else"))
    with pytest.raises(CheckpointError, match="model.npz.*not a tinylatent"):
        tl.load(path)
    path = _checkpoint(tmp_path)
    _rewrite_header(path, lambda h: h["root"]["values"][1].update(shape=[3]))
    with pytest.raises(CheckpointError, match="model.npz.*header says"):
        tl.load(path)
    path = _checkpoint(tmp_path)
    _rewrite_header(path, lambda h: h["root"]["values"][1].update(key="a99"))
    with pytest.raises(CheckpointError, match="model.npz"):
        tl.load(path)
