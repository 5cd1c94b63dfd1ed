"""The CUDA kernel downsample_loss (csrc/cuda/downsample_loss.cu: the bicubic downscale and the
pixel loss fused) against the plain-PyTorch reference: forward, backward, float64 gradcheck, reduced
precision under the flash-attention budget, on the 'emulated' and 'cuda' backends
(tests/cuda_emulation.py).
"""
from __future__ import annotations

import pytest
import torch
from cuda_emulation import BACKENDS, LOW, backend_impls, rand
from op_checks import grads, within_budget
from torch.autograd import gradcheck

from rlse_fast.ops.downsample_loss import _downsample_loss_ref


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    """(op functions, device) of one backend."""
    return backend_impls(request.param)


# --- downsample_loss -------------------------------------------------------------------------------

LOSS_CASES = [  # (shape of y, factor)
    ((2, 3, 12, 10), 2),     # thread-per-output horizontal pass
    ((1, 2, 20, 28), 4),
    ((2, 1, 24, 16), 8),     # 32 taps: warp-per-output horizontal pass
    ((1, 2, 32, 48), 16),    # 64 taps, h = 2: reflections on both sides of every window
    ((3, 2, 5, 7), 1),       # identity
]


@pytest.mark.parametrize("shape,factor", LOSS_CASES)
def test_downsample_loss_matches_ref(backend, shape, factor):
    impls, dev = backend
    B, C, H, W = shape
    y, x = rand(*shape, device=dev), rand(B, C, H // factor, W // factor, device=dev, seed=2)
    up = torch.rand(B, generator=torch.Generator().manual_seed(3)) + 0.5
    l0, g0 = grads(lambda y, x: _downsample_loss_ref(y, x, factor), y, x, upstream=up)
    l1, g1 = grads(lambda y, x: impls["downsample_loss"](y, x, factor), y, x, upstream=up)
    assert l1.shape == (B,) and l1.dtype == torch.float32
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1[0], g0[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1[1], g0[1], rtol=1e-5, atol=1e-5)


def test_downsample_loss_several_chunks(backend):
    """Wide images split each low-res row over several blocks (2048 padded columns per block)."""
    impls, dev = backend
    y, x = rand(1, 1, 128, 2048, device=dev), rand(1, 1, 2, 32, device=dev, seed=2)
    l0 = _downsample_loss_ref(y, x, 64)
    l1 = impls["downsample_loss"](y, x, 64)
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("factor,W", [(2, 4200), (1, 2100), (2, 4000)])
def test_downsample_loss_backward_wide_rows(backend, factor, W):
    """The backward keeps a low-res row of up to 2048 columns in shared memory; a wider one
    (2100 here) is summed where it is needed. Both against the reference."""
    impls, dev = backend
    y, x = rand(1, 2, 4, W, device=dev), rand(1, 2, 4 // factor, W // factor, device=dev, seed=2)
    up = torch.tensor([1.5])
    l0, g0 = grads(lambda y: _downsample_loss_ref(y, x, factor), y, upstream=up)
    l1, g1 = grads(lambda y: impls["downsample_loss"](y, x, factor), y, upstream=up)
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(g1[0], g0[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("factor,shape", [(2, (1, 2, 4, 6)), (4, (2, 1, 8, 12))])
def test_downsample_loss_gradcheck(backend, factor, shape):
    impls, dev = backend
    B, C, H, W = shape
    y = rand(*shape, device=dev, dtype=torch.float64).requires_grad_(True)
    x = rand(B, C, H // factor, W // factor, device=dev, dtype=torch.float64, seed=2).requires_grad_(True)
    assert gradcheck(lambda y, x: impls["downsample_loss"](y, x, factor), (y, x))


@pytest.mark.parametrize("dtype", LOW)
def test_downsample_loss_low_precision_budget(backend, dtype):
    impls, dev = backend
    factor, (B, C, H, W) = 4, (2, 3, 24, 20)
    yl = rand(B, C, H, W, device=dev).to(dtype)
    x = rand(B, C, H // factor, W // factor, device=dev, seed=2)
    up = torch.rand(B, generator=torch.Generator().manual_seed(3)) + 0.5
    l64, g64 = grads(lambda y: _downsample_loss_ref(y, x.double(), factor), yl.double(), upstream=up)
    lr, gr = grads(lambda y: _downsample_loss_ref(y, x, factor), yl, upstream=up)
    lk, gk = grads(lambda y: impls["downsample_loss"](y, x, factor), yl, upstream=up)
    assert lk.dtype == torch.float32 and gk[0].dtype == dtype
    within_budget(lk, l64, lr, f"downsample_loss {dtype} loss")
    within_budget(gk[0], g64[0], gr[0], f"downsample_loss {dtype} dy")
