"""bfloat16 tensors (issue 15): tl.bfloat16 is ml_dtypes' NumPy dtype, the one CuPy's bfloat16
arrays use. On the CPU every op runs its reference in that dtype (NumPy with ml_dtypes); on a
GPU the fused kernels have _bf16 versions (tests/test_kernels_cuda_emu.py runs them through
the CUDA emulation). These tests check that bfloat16 is a floating dtype everywhere (autograd,
promotion, random numbers, modules), that the ops NumPy would widen stay bfloat16, and that a
model trains in it."""
import sys

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.ops.fast import fast_backend

ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes "
                                "(pip install -e '.[test]')")
BF16 = np.dtype(ml_dtypes.bfloat16)
F = tl.nn.functional


def test_the_dtype_is_ml_dtypes_bfloat16_and_floating():
    assert tl.bfloat16 == BF16 and "bfloat16" in dir(tl)
    x = tl.tensor([1.0, 2.5, -3.0], dtype=tl.bfloat16)
    assert x.dtype == BF16 and x.is_floating_point() and tl.is_floating_point(x)
    assert not tl.arange(3).is_floating_point()
    assert "dtype=bfloat16" in repr(x)
    assert tl.ones(2).bfloat16().dtype == BF16
    x.requires_grad_()                       # a floating dtype may require grad
    with pytest.raises(RuntimeError, match="only floating tensors"):
        tl.arange(3).requires_grad_()


def test_without_ml_dtypes_the_error_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)     # import ml_dtypes now fails
    with pytest.raises(AttributeError, match="ml_dtypes"):
        tl.bfloat16


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_random_numbers_in_16_bit_dtypes(name):
    """NumPy's generators draw float32/64 only: 16-bit samples are float32 draws rounded
    once, so they are the float32 stream's values."""
    dtype = getattr(tl, name)
    a = tl.randn(1000, dtype=dtype, generator=tl.Generator(3))
    b = tl.randn(1000, dtype=tl.float32, generator=tl.Generator(3))
    assert a.dtype == dtype
    np.testing.assert_array_equal(a.numpy(), b.numpy().astype(dtype))
    u = tl.rand(1000, dtype=dtype, generator=tl.Generator(4)).numpy().astype(np.float32)
    assert u.min() >= 0 and u.max() <= 1 and abs(u.mean() - 0.5) < 0.05
    assert tl.bernoulli(tl.full((5,), 0.5, dtype=dtype)).dtype == dtype


def test_ops_numpy_would_widen_stay_bfloat16():
    """NumPy with ml_dtypes returns float32 from matmul and clip, and float32 from where
    with a Python float first; einsum refuses bfloat16. Each stays bfloat16 here, its value
    the float32 computation's rounded once."""
    rng = np.random.default_rng(0)
    a32 = rng.standard_normal((3, 5, 4)).astype(BF16).astype(np.float32)
    b32 = rng.standard_normal((3, 4, 6)).astype(BF16).astype(np.float32)
    a, b = tl.tensor(a32.astype(BF16)), tl.tensor(b32.astype(BF16))
    cases = {"matmul": (a @ b, a32 @ b32),
             "matmul 2-D": (a[0] @ b[0], a32[0] @ b32[0]),
             "einsum": (tl.einsum("bij,bjk->bik", a, b), a32 @ b32),
             "clamp": (a.clamp(-0.5, 0.5), np.clip(a32, -0.5, 0.5)),
             "where": (tl.where(a > 0, -np.inf, a), np.where(a32 > 0, -np.inf, a32))}
    for name, (got, want) in cases.items():
        assert got.dtype == BF16, f"{name}: {got.dtype}"
        np.testing.assert_allclose(got.numpy().astype(np.float32), want.astype(BF16)
                                   .astype(np.float32), rtol=2 ** -7, err_msg=name)


def test_promotion_as_pytorch():
    x = tl.ones(3, dtype=tl.bfloat16)
    assert (x + tl.ones(3)).dtype == np.float32          # bfloat16 with float32: float32
    assert (x * 2.5).dtype == BF16 and (x + tl.arange(3)).dtype == BF16
    assert (tl.arange(3) / x).dtype == BF16


def test_no_cpu_kernel_takes_bfloat16():
    x = tl.ones(2, 3, dtype=tl.bfloat16)
    for op in ("gelu", "layer_norm", "attention", "conv", "lstm", None):
        assert fast_backend(x, op=op) is None


class Net(tl.nn.Module):
    """One of each layer whose op has a fused kernel on the GPU."""

    def __init__(self):
        super().__init__()
        self.conv = tl.nn.Conv2d(1, 4, 3, padding=1)
        self.emb = tl.nn.Embedding(10, 16)
        self.lstm = tl.nn.LSTM(16, 16, batch_first=True)
        self.attn = tl.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
        self.norm = tl.nn.LayerNorm(16)
        self.head = tl.nn.Linear(16 + 4, 3)

    def forward(self, img, ids):
        f = F.gelu(self.conv(img)).mean(axis=(2, 3))                 # (B, 4)
        h = self.attn(self.lstm(self.emb(ids))[0])                   # (B, T, 16)
        return self.head(tl.cat([self.norm(h).mean(axis=1), f], axis=1))


def test_gradients_are_bfloat16_and_near_the_float32_ones():
    """Forward and backward through every layer in bfloat16: each gradient is bfloat16 and
    within a few percent (of its largest entry) of the float32 gradient of the same weights."""
    tl.manual_seed(0)
    net = Net()
    rng = np.random.default_rng(1)
    img = rng.standard_normal((4, 1, 6, 6))
    ids = tl.tensor(rng.integers(0, 10, (4, 5)))
    y = tl.tensor(rng.integers(0, 3, 4))
    grads = {}
    for dtype in (tl.bfloat16, tl.float32):
        net.to(tl.bfloat16).to(dtype)             # the same bfloat16-rounded weights
        net.zero_grad()
        loss = F.cross_entropy(net(tl.tensor(img).to(tl.bfloat16).to(dtype), ids), y)
        loss.backward()
        assert loss.dtype == dtype
        grads[dtype] = {n: p.grad for n, p in net.named_parameters()}
    for name, g in grads[tl.bfloat16].items():
        ref = grads[tl.float32][name].numpy()
        assert g.dtype == BF16, name
        scale = np.abs(ref).max()
        np.testing.assert_allclose(g.numpy().astype(np.float32), ref, rtol=0,
                                   atol=0.05 * scale + 1e-6, err_msg=name)


def test_an_mlp_trains_in_bfloat16():
    """Adam on bfloat16 weights (the state in bfloat16 too) fits two Gaussian blobs."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 256)
    x = rng.standard_normal((256, 8)) + 1.5 * (2 * y[:, None] - 1)
    x, y = tl.tensor(x).to(tl.bfloat16), tl.tensor(y)
    tl.manual_seed(2)
    model = tl.nn.Sequential(tl.nn.Linear(8, 32), tl.nn.GELU(), tl.nn.LayerNorm(32),
                             tl.nn.Linear(32, 2)).to(tl.bfloat16)
    opt = tl.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.float().item()) if first is None else first
    assert all(p.dtype == BF16 for p in model.parameters())
    acc = float((model(x).argmax(1) == y).float().mean().item())
    assert float(loss.float().item()) < 0.3 * first and acc > 0.95


def test_checkpoints_keep_bfloat16_bit_for_bit(tmp_path):
    """.npy has no bfloat16 (it would read back as raw 'V2' bytes): tl.save stores the 16
    bits and the header's dtype, tl.load views them as bfloat16 again, without pickle."""
    tl.manual_seed(5)
    model = tl.nn.Linear(3, 2).to(tl.bfloat16)
    opt = tl.optim.Adam(model.parameters())
    model(tl.ones(4, 3, dtype=tl.bfloat16)).sum().backward()
    opt.step()
    path = tmp_path / "ckpt.npz"
    tl.save({"model": model.state_dict(), "opt": opt.state_dict(),
             "array": model.weight.detach().numpy()}, path)
    ckpt = tl.load(path)
    assert ckpt["array"].dtype == BF16
    again = tl.nn.Linear(3, 2).to(tl.bfloat16)
    again.load_state_dict(ckpt["model"])
    for p, q in zip(model.parameters(), again.parameters()):
        assert q.dtype == BF16
        np.testing.assert_array_equal(p.detach().numpy().view(np.uint16),
                                      q.detach().numpy().view(np.uint16))
    tl.optim.Adam(again.parameters()).load_state_dict(ckpt["opt"])
    wide = tl.nn.Linear(3, 2)                    # into a float32 model: exact (a widening)
    wide.load_state_dict(ckpt["model"])
    np.testing.assert_array_equal(wide.weight.detach().numpy(),
                                  model.weight.detach().numpy().astype(np.float32))


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_16_bit_sums_accumulate_in_float32(name):
    """NumPy sums bfloat16 in bfloat16, where 10,000 ones stop at 256 (256 + 1 rounds back
    to 256). sum and mean accumulate 16-bit tensors in float32 and round once, as PyTorch."""
    dtype = getattr(tl, name)
    x = tl.ones(100, 100, dtype=dtype, requires_grad=True)
    s = x.sum()
    assert s.dtype == dtype    # 10,000 rounded once: 9,984 in bfloat16's 8 bits
    assert float(s.float().item()) == float(np.float32(10000).astype(dtype))
    assert float(x.mean().float().item()) == 1.0
    np.testing.assert_array_equal(x.sum(axis=0).detach().float().numpy(), np.full(100, 100.0))
    s.backward()
    assert x.grad.dtype == dtype
    r = tl.randn(4096, dtype=dtype, generator=tl.Generator(0))
    exact = r.numpy().astype(np.float64).sum()
    assert abs(float(r.sum().float().item()) - exact) <= abs(exact) * 2 ** -7 + 1e-3
