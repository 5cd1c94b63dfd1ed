"""The C++ CPU kernels of the FIR filters (upfirdn2d and its up/down/filter forms; the fused
bicubic downsample of the pixel loss) against the plain-PyTorch references, by the rules of
tests/test_ops_cpu_layers.py (forward, backward, float64 gradcheck, the flash-attention budget for
every claimed dtype, odd shapes)."""
from __future__ import annotations

import pytest
import torch
from op_checks import (
    LOW,
    grads,
    needs_cpp,
    within_budget,
)
from torch.autograd import gradcheck

from rlse_fast.ops import (
    bias_act,
    downsample2d,
    filter2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)
from rlse_fast.ops.downsample_loss import _downsample_loss_ref, downsample_loss
from rlse_fast.ops.upfirdn2d import _upfirdn2d_ref

pytestmark = needs_cpp


# --- upfirdn2d -----------------------------------------------------------------------------------

F2D = setup_filter([1, 3, 3, 1])                  # what StyleGAN2 uses: 4x4, 2-D
F1D = setup_filter([1, 3, 3, 1], separable=True)  # the same taps, separable
F_ODD = torch.tensor([[0.1, -0.4, 0.2, 0.3, 0.05], [0.5, 0.2, -0.1, 0.0, 0.25], [0.3, 0.1, 0.6, -0.2, 0.1]])
F_1D5 = torch.tensor([0.2, -0.5, 1.0, 0.4, 0.1])
# Square but not an outer product g g^T: the kernels must not take F2D's separable shortcut.
F_SQ = torch.outer(torch.tensor([1.0, 3.0, 3.0, 1.0]), torch.tensor([1.0, 2.0, 3.0, 1.0])) / 48

# (name, op) with op(x, f, impl) -> tensor
UPFIRDN_CASES = [
    ("upsample2d", lambda x, f, impl: upsample2d(x, f, impl=impl)),
    ("downsample2d", lambda x, f, impl: downsample2d(x, f, impl=impl)),
    ("filter2d", lambda x, f, impl: filter2d(x, f, impl=impl)),
    ("up2_pad", lambda x, f, impl: upfirdn2d(x, f, up=2, padding=[2, 1, 1, 2], gain=4, impl=impl)),
    ("down2_pad", lambda x, f, impl: upfirdn2d(x, f, down=2, padding=[1, 2, 2, 1], impl=impl)),
    ("up3_down2_negpad", lambda x, f, impl: upfirdn2d(x, f, up=3, down=2, padding=[-1, 2, 3, -2], impl=impl)),
    ("flip_gain", lambda x, f, impl: upfirdn2d(x, f, padding=[1, 2, 0, 3], flip_filter=True, gain=2.5, impl=impl)),
    ("aniso", lambda x, f, impl: upfirdn2d(x, f, up=[2, 1], down=[1, 3], padding=[0, 3, -1, 4], impl=impl)),
    ("up4_down3", lambda x, f, impl: upfirdn2d(x, f, up=4, down=3, padding=[3, 0, 2, 1], impl=impl)),
    ("crop", lambda x, f, impl: upfirdn2d(x, f, padding=[-2, 3, 1, -1], impl=impl)),
]
FILTERS = [("f2d", F2D), ("f1d", F1D), ("odd2d", F_ODD), ("odd1d", F_1D5), ("sq2d", F_SQ)]


@pytest.mark.parametrize("shape", [(1, 3, 5, 9), (2, 2, 7, 13)], ids=str)
@pytest.mark.parametrize("fname,f", FILTERS, ids=[n for n, _ in FILTERS])
@pytest.mark.parametrize("name,op", UPFIRDN_CASES, ids=[n for n, _ in UPFIRDN_CASES])
def test_upfirdn2d_matches_ref(name, op, fname, f, shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    y0, (g0,) = grads(lambda x: op(x, f, "ref"), x)
    y1, (g1,) = grads(lambda x: op(x, f, "cpp"), x)
    assert y1.shape == y0.shape
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g0, rtol=1e-5, atol=1e-5)


def test_upfirdn2d_no_filter_and_1x1():
    x = torch.randn(2, 3, 5, 7)
    for kw in [dict(up=2, padding=[0, 1, 1, 0]), dict(down=3, padding=2)]:
        torch.testing.assert_close(upfirdn2d(x, None, impl="cpp", **kw), _upfirdn2d_ref(x, None, **kw))


@pytest.mark.parametrize("name,op", UPFIRDN_CASES, ids=[n for n, _ in UPFIRDN_CASES])
def test_upfirdn2d_gradcheck(name, op):
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    for f in (F_ODD.double(), F_1D5.double()):
        assert gradcheck(lambda x: op(x, f, "cpp"), (x,))


def test_upfirdn2d_second_order():
    # The backward is itself the autograd Function, so it differentiates again.
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x: upsample2d(x, F_ODD.double(), impl="cpp"), (x,))


@pytest.mark.parametrize("dtype", LOW + [torch.float32])
@pytest.mark.parametrize("name", ["upsample2d", "downsample2d", "up3_down2_negpad"])
def test_upfirdn2d_dtype_budget(dtype, name):
    op = dict(UPFIRDN_CASES)[name]
    torch.manual_seed(0)
    x = torch.randn(2, 3, 11, 13).to(dtype)
    for f in (F2D, F1D):
        y64, (g64,) = grads(lambda x: op(x, f.double(), "ref"), x.double())
        y_low, (g_low,) = grads(lambda x: op(x, f, "ref"), x)
        y, (g,) = grads(lambda x: op(x, f, "cpp"), x)
        assert y.dtype == g.dtype == dtype
        within_budget(y, y64, y_low, f"{name} forward")
        within_budget(g, g64, g_low, f"{name} backward")


def test_channels_last_in_channels_last_out():
    """A channels-last x through the C++ ops: the same values as NCHW, forward and backward, and
    channels-last out (bias_act runs the NHWC view; the upfirdn2d bindings convert there and back)."""
    cl = torch.channels_last
    x = torch.randn(2, 3, 9, 7, generator=torch.Generator().manual_seed(3))
    b = torch.randn(3, generator=torch.Generator().manual_seed(4))
    f = setup_filter([1, 3, 3, 1])
    cases = [
        ("bias_act", lambda x, b: bias_act(x, b, act="lrelu", impl="cpp"), (x, b)),
        ("upsample2d", lambda x: upsample2d(x, f, impl="cpp"), (x,)),
        ("downsample2d", lambda x: downsample2d(x, f, impl="cpp"), (x,)),
    ]
    for name, fn, inputs in cases:
        y0, g0 = grads(fn, *inputs)
        y1, g1 = grads(fn, inputs[0].contiguous(memory_format=cl), *inputs[1:],
                       upstream=torch.randn(y0.shape, generator=torch.Generator().manual_seed(1)).contiguous(memory_format=cl))
        assert y1.is_contiguous(memory_format=cl) and not y1.is_contiguous(), name
        torch.testing.assert_close(y1, y0, msg=name)
        for a, r in zip(g1, g0):
            torch.testing.assert_close(a, r, msg=name)


def test_upfirdn2d_filter_grad_falls_back_under_auto():
    x = torch.randn(1, 1, 6, 6)
    f = F2D.clone().requires_grad_(True)
    upsample2d(x, f).sum().backward()  # auto -> ref, which differentiates w.r.t. f
    assert f.grad is not None
    with pytest.raises(RuntimeError, match="filter"):
        upsample2d(x, f, impl="cpp")


def test_separable_form_factors_exact_outer_products_only():
    """The CUDA wrapper's rule, the C++ kernel's: a square 2-D filter that is exactly outer(g, g)
    becomes g; anything else stays as it is. Checked once per tensor, again after an in-place change."""
    from rlse_fast.ops.upfirdn2d import separable_form

    f = F2D.clone()
    g = separable_form(f)
    assert g.ndim == 1 and torch.equal(torch.outer(g, g), f)
    assert separable_form(f) is g  # cached
    for other in (F_SQ, F_ODD, F_1D5, -F2D, F2D.clone().requires_grad_(True), None):
        assert separable_form(other) is other
    f[0, 0] += 0.01  # no longer an outer product: the cache must not answer
    assert separable_form(f) is f
    f[0, 0] -= 0.01
    assert torch.equal(separable_form(f), g)


# --- downsample_loss -----------------------------------------------------------------------------

DL_CASES = [  # (factor, shape of y)
    (1, (2, 3, 5, 9)),
    (2, (2, 3, 14, 26)),
    (4, (1, 3, 28, 20)),
    (8, (2, 1, 24, 40)),
    (16, (1, 2, 32, 48)),
    (32, (1, 1, 64, 96)),
]


@pytest.mark.parametrize("factor,shape", DL_CASES, ids=[f"x{f}" for f, _ in DL_CASES])
def test_downsample_loss_matches_ref(factor, shape):
    torch.manual_seed(0)
    y = torch.randn(shape)
    x = torch.randn(shape[0], shape[1], shape[2] // factor, shape[3] // factor)
    l0, (gy0, gx0) = grads(lambda y, x: _downsample_loss_ref(y, x, factor), y, x)
    l1, (gy1, gx1) = grads(lambda y, x: downsample_loss(y, x, factor, impl="cpp"), y, x)
    assert l1.shape == (shape[0],) and l1.dtype == torch.float32
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gy1, gy0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx1, gx0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("factor,shape", [(1, (2, 2, 3, 5)), (2, (1, 2, 6, 10)), (4, (2, 1, 8, 12)),
                                          (8, (1, 1, 16, 24))])
def test_downsample_loss_gradcheck(factor, shape):
    torch.manual_seed(0)
    y = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x = torch.randn(shape[0], shape[1], shape[2] // factor, shape[3] // factor, dtype=torch.float64,
                    requires_grad=True)
    assert gradcheck(lambda y, x: downsample_loss(y, x, factor, impl="cpp"), (y, x))


def test_downsample_loss_large_factor():
    torch.manual_seed(0)
    y = torch.randn(1, 1, 128, 192)
    x = torch.randn(1, 1, 2, 3)
    l0, (g0,) = grads(lambda y: _downsample_loss_ref(y, x, 64), y)
    l1, (g1,) = grads(lambda y: downsample_loss(y, x, 64, impl="cpp"), y)
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g0, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", LOW + [torch.float32])
@pytest.mark.parametrize("factor", [2, 8])
def test_downsample_loss_dtype_budget(dtype, factor):
    torch.manual_seed(0)
    y = torch.randn(2, 3, 48, 32).to(dtype)
    x = (torch.randn(2, 3, 48 // factor, 32 // factor) * 0.1).to(dtype)

    def unfused(y, x):  # the reference computed entirely in y's precision
        from rlse_fast.downsample import bicubic_downsample_ref

        d = bicubic_downsample_ref(y, factor) - x
        return (d * d).sum((1, 2, 3))

    l64, (g64,) = grads(lambda y: _downsample_loss_ref(y, x.double(), factor), y.double())
    l_low, (g_low,) = grads(lambda y: unfused(y, x), y)
    l, (g,) = grads(lambda y: downsample_loss(y, x, factor, impl="cpp"), y)
    assert l.dtype == torch.float32 and g.dtype == dtype
    within_budget(l, l64, l_low, "loss")
    within_budget(g, g64, g_low, "dy")


def test_downsample_loss_checks_shapes():
    y = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match="shape"):
        downsample_loss(y, torch.randn(1, 3, 4, 4), 2, impl="cpp")
    with pytest.raises(ValueError, match="power of two"):
        downsample_loss(y, torch.randn(1, 3, 4, 4), 3, impl="cpp")
    with pytest.raises(RuntimeError, match="too small"):
        downsample_loss(torch.randn(1, 1, 16, 16), torch.randn(1, 1, 1, 1), 16, impl="cpp")
