"""GPU backend basics: device queries answer without CuPy, CUDA tensors move explicitly,
mixing devices raises an error naming both, DLPack exchange. GPU parts skip with a reason."""
import numpy as np
import pytest

import tinylatent as tl

GPU = tl.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="CUDA unavailable: "
                               + (tl.cuda.unavailable_reason() or "no GPU"))


def test_queries_answer_without_a_gpu():
    assert isinstance(tl.cuda.is_available(), bool)
    if not GPU:
        assert tl.cuda.device_count() == 0
        assert tl.cuda.unavailable_reason()  # says why, in words
        tl.cuda.synchronize()                 # a no-op, not an error
    else:
        assert tl.cuda.device_count() >= 1 and tl.cuda.unavailable_reason() == ""


def test_device_parsing():
    assert tl.device("cuda") == tl.device("cuda:0") == "cuda:0"
    assert str(tl.device("cpu")) == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tl.device("tpu")


@pytest.mark.skipif(GPU, reason="checks the error raised when there is no GPU")
def test_moving_to_cuda_without_gpu_says_why():
    with pytest.raises(RuntimeError, match=r"CUDA is not available: .*use device='cpu'"):
        tl.randn(2, 3).to("cuda")


@needs_gpu
def test_roundtrip_grad_and_device_mixing():
    x = tl.randn(3, 4, requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda:0"
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match=r"cpu and cuda:0"):
        x + y
    z = tl.zeros(2, 2, device="cuda")
    assert z.device == "cuda:0"


@needs_gpu
def test_dlpack_and_cuda_array_interface_share_memory():
    import cupy as cp
    t = tl.randn(4, 5, device="cuda")
    a = cp.from_dlpack(t)
    a[0, 0] = 42.0
    assert float(t[0, 0].item()) == 42.0
    assert t.__cuda_array_interface__["shape"] == (4, 5)
    back = tl.tensor(cp.arange(3.0))
    assert back.device == "cuda:0"


@needs_gpu
def test_fast_kernels_run_on_gpu_and_match_cpu():
    from tinylatent.ops import contrastive, conv
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
    cpu = conv.conv2d(tl.tensor(x), tl.tensor(w), padding=1).numpy()
    gpu = conv.conv2d(tl.tensor(x, device="cuda"), tl.tensor(w, device="cuda"), padding=1)
    assert gpu.grad_fn is None and gpu.device == "cuda:0"
    np.testing.assert_allclose(gpu.numpy(), cpu, rtol=1e-10)
    z1, z2 = rng.standard_normal((16, 8)), rng.standard_normal((16, 8))
    a = contrastive.nt_xent(tl.tensor(z1, device="cuda"), tl.tensor(z2, device="cuda"), 0.1)
    np.testing.assert_allclose(a.item(), contrastive.nt_xent(tl.tensor(z1), tl.tensor(z2),
                                                             0.1).item(), rtol=1e-10)
