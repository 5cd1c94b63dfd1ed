"""The Triton kernels (rlse_fast/ops/triton_kernels) against the plain-PyTorch references.

Without a GPU they run on CPU tensors under the Triton interpreter: TRITON_INTERPRET=1 must be set
before triton decorates the kernels, hence at the top of this module, before any import of them.
The interpreter costs milliseconds per program instance, so shapes are tiny. With a GPU, the same
tests run the compiled kernels on CUDA tensors. float32, float64 (gradcheck) and bfloat16 (the
interpreter supports it) forward and backward; reduced precision under the flash-attention budget.
"""
import os

import torch

from op_checks import (adain_inputs, assert_adain_matches_ref, assert_adain_within_budget, assert_modulate_matches_ref,
                       assert_taps_last_is_a_layout_change, grads, skip_unless_interpreted_as_asked, within_budget)

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

triton = pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from torch.autograd import gradcheck  # noqa: E402

from rlse_fast.ops import bias_act, dispatch  # noqa: E402
from rlse_fast.ops.bias_act import _bias_act_ref  # noqa: E402
from rlse_fast.ops.downsample_loss import _downsample_loss_ref, downsample_loss  # noqa: E402
from rlse_fast.ops.modulate import _modulate_ref, modulate  # noqa: E402

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# The interpreter's own use of numpy.
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0 to a scalar:DeprecationWarning")


@pytest.fixture(scope="module", autouse=True)
def kernels_match_device():
    """The kernels must have been decorated in the mode this module asked for."""
    from rlse_fast.ops import triton_ops
    from rlse_fast.ops.triton_kernels.bias_act import bias_act_kernel

    skip_unless_interpreted_as_asked(bias_act_kernel, DEV)
    return triton_ops


def rand(*shape, dtype=torch.float32, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device=DEV, dtype=dtype)


# --- dispatch ----------------------------------------------------------------------------------


def test_auto_never_sends_cpu_tensors_to_the_interpreter():
    x = torch.randn(3, 4)
    assert dispatch.pick("bias_act", "auto", x) is not dispatch._REGISTRY["bias_act"]["triton"][0]
    assert dispatch.pick("downsample_loss", "auto", x) is not dispatch._REGISTRY["downsample_loss"]["triton"][0]
    if DEV.type == "cpu":  # by name it runs
        assert dispatch.pick("bias_act", "triton", x) is dispatch._REGISTRY["bias_act"]["triton"][0]


# --- bias_act ----------------------------------------------------------------------------------

CASES = [((2, 5, 3, 7), 1), ((3, 17), 1), ((5, 3, 7), 0), ((1100,), 0)]
ACTS = [("linear", None), ("relu", None), ("lrelu", None), ("lrelu", -0.3)]


@pytest.mark.parametrize("shape,dim", CASES)
@pytest.mark.parametrize("act,alpha", ACTS)
@pytest.mark.parametrize("clamp", [None, 0.8])
def test_bias_act_matches_ref(shape, dim, act, alpha, clamp):
    x, b = rand(*shape), rand(shape[dim], seed=1)
    kw = dict(dim=dim, act=act, alpha=alpha, clamp=clamp)
    y0, g0 = grads(lambda x, b: _bias_act_ref(x, b, **kw), x, b)
    y1, g1 = grads(lambda x, b: bias_act(x, b, impl="triton", **kw), x, b)
    torch.testing.assert_close(y1, y0, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g1[0], g0[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g1[1], g0[1], rtol=1e-5, atol=1e-5)


def test_bias_act_without_bias():
    x = rand(3, 4, 5)
    for kw in (dict(act="lrelu", gain=0.5), dict(act="relu", clamp=0.3), dict(act="linear", gain=2.0)):
        y0, g0 = grads(lambda x: _bias_act_ref(x, None, **kw), x)
        y1, g1 = grads(lambda x: bias_act(x, None, impl="triton", **kw), x)
        torch.testing.assert_close(y1, y0, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(g1[0], g0[0], rtol=1e-6, atol=1e-6)


def test_bias_act_gradcheck():
    x = rand(2, 3, 2, dtype=torch.float64).requires_grad_(True)
    b = rand(3, dtype=torch.float64, seed=2).requires_grad_(True)
    for act, alpha, clamp in (("lrelu", None, 0.7), ("relu", None, None), ("lrelu", -0.3, None)):
        assert gradcheck(lambda x, b: bias_act(x, b, act=act, alpha=alpha, clamp=clamp, impl="triton"), (x, b),
                         fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("act,clamp", [("lrelu", None), ("relu", 0.9)])
def test_bias_act_low_precision_budget(dtype, act, clamp):
    kw = dict(dim=1, act=act, clamp=clamp)
    xl, bl, up = rand(3, 37, 11, seed=3).to(dtype), rand(37, seed=4).to(dtype), rand(3, 37, 11, seed=5).to(dtype)
    y64, g64 = grads(lambda x, b: _bias_act_ref(x, b, **kw), xl.double(), bl.double(), upstream=up.double())
    yr, gr = grads(lambda x, b: _bias_act_ref(x, b, **kw), xl, bl, upstream=up)
    yk, gk = grads(lambda x, b: bias_act(x, b, impl="triton", **kw), xl, bl, upstream=up)
    assert yk.dtype == dtype and gk[0].dtype == dtype
    within_budget(yk, y64, yr, f"bias_act {act} {dtype} forward")
    within_budget(gk[0], g64[0], gr[0], f"bias_act {act} {dtype} dx")


# --- downsample_loss -----------------------------------------------------------------------------

LOSS_CASES = [((2, 3, 12, 10), 2), ((1, 2, 20, 28), 4), ((1, 1, 24, 16), 8), ((1, 1, 32, 48), 16),
              ((2, 2, 5, 7), 1)]


@pytest.mark.parametrize("shape,factor", LOSS_CASES)
def test_downsample_loss_matches_ref(shape, factor):
    B, C, H, W = shape
    y, x = rand(*shape), rand(B, C, H // factor, W // factor, seed=2)
    up = torch.rand(B, generator=torch.Generator().manual_seed(3)) + 0.5
    l0, g0 = grads(lambda y, x: _downsample_loss_ref(y, x, factor), y, x, upstream=up)
    l1, g1 = grads(lambda y, x: downsample_loss(y, x, factor, impl="triton"), y, x, upstream=up)
    assert l1.shape == (B,) and l1.dtype == torch.float32
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1[0], g0[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1[1], g0[1], rtol=1e-5, atol=1e-5)


def test_downsample_loss_gradcheck():
    y = rand(1, 2, 8, 12, dtype=torch.float64).requires_grad_(True)
    x = rand(1, 2, 2, 3, dtype=torch.float64, seed=2).requires_grad_(True)
    assert gradcheck(lambda y, x: downsample_loss(y, x, 4, impl="triton"), (y, x), fast_mode=True)


def test_downsample_loss_bf16_budget():
    factor, (B, C, H, W) = 4, (2, 3, 24, 20)
    yl = rand(B, C, H, W).to(torch.bfloat16)
    x = rand(B, C, H // factor, W // factor, seed=2)
    up = torch.rand(B, generator=torch.Generator().manual_seed(3)) + 0.5
    l64, g64 = grads(lambda y: _downsample_loss_ref(y, x.double(), factor), yl.double(), upstream=up)
    lr, gr = grads(lambda y: _downsample_loss_ref(y, x, factor), yl, upstream=up)
    lk, gk = grads(lambda y: downsample_loss(y, x, factor, impl="triton"), yl, upstream=up)
    assert lk.dtype == torch.float32 and gk[0].dtype == torch.bfloat16
    within_budget(lk, l64, lr, "downsample_loss bf16 loss")
    within_budget(gk[0], g64[0], gr[0], "downsample_loss bf16 dy")


def test_downsample_loss_rejects_small_images():
    with pytest.raises(ValueError, match="too small"):
        downsample_loss(rand(1, 1, 16, 16), rand(1, 1, 1, 1), 16, impl="triton")


# --- modulate ----------------------------------------------------------------------------------

MODULATE_CASES = [  # (weight shape, batch): shared, per-sample and (1, ...) weights; 3x3 and 1x1 taps
    ((5, 7, 3, 3), 2),
    ((2, 3, 6, 3, 3), 2),
    ((1, 4, 9, 1, 1), 3),
]


@pytest.fixture
def no_fallback():
    """Every call in the test ran the kernels: none gave up for the reference."""
    from rlse_fast.ops import triton_ops

    yield
    assert triton_ops.MODULATE_ERROR is None, triton_ops.MODULATE_ERROR


@pytest.mark.parametrize("shape,batch", MODULATE_CASES, ids=str)
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulate_matches_ref(shape, batch, demodulate, no_fallback):
    w, s = rand(*shape), rand(batch, shape[-3], seed=2) + 1
    assert_modulate_matches_ref("triton", w, s, demodulate)


def test_modulate_gradcheck(no_fallback):
    w = rand(2, 3, 4, 3, 3, dtype=torch.float64).requires_grad_(True)
    s = rand(2, 4, dtype=torch.float64, seed=2).requires_grad_(True)
    assert gradcheck(lambda w, s: modulate(w, s, impl="triton"), (w, s), fast_mode=True)


def test_modulate_bf16_budget(no_fallback):
    w, s = rand(2, 4, 11, 3, 3), rand(2, 11, seed=2) + 1
    y64, g64 = grads(lambda w, s: _modulate_ref(w, s), w.double(), s.double())
    yr, gr = grads(lambda w, s: _modulate_ref(w, s), w.bfloat16(), s.bfloat16())
    yk, gk = grads(lambda w, s: modulate(w, s, impl="triton"), w.bfloat16(), s.bfloat16())
    assert yk.dtype == torch.bfloat16 and gk[0].dtype == torch.bfloat16 and gk[1].dtype == torch.bfloat16
    within_budget(yk, y64, yr, "modulate bf16 out")
    within_budget(gk[0], g64[0], gr[0], "modulate bf16 dweight")
    within_budget(gk[1], g64[1], gr[1], "modulate bf16 dstyles")


def test_modulate_writes_out_dtype(no_fallback):
    """fp32 weights, bf16 result (the convolution's dtype under autocast): as casting the reference's
    result, forward and backward; the gradients keep the inputs' dtypes."""
    w, s = rand(2, 5, 7, 3, 3), rand(2, 7, seed=2) + 1

    def run(fn):
        return grads(lambda w, s: fn(w, s), w, s)

    y0, g0 = run(lambda w, s: _modulate_ref(w, s).to(torch.bfloat16))
    y1, g1 = run(lambda w, s: modulate(w, s, impl="triton", out_dtype=torch.bfloat16))
    assert y1.dtype == torch.bfloat16 and g1[0].dtype == torch.float32 and g1[1].dtype == torch.float32
    torch.testing.assert_close(y1.float(), y0.float(), rtol=8e-3, atol=1e-5)  # at most a bf16 rounding apart
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape,batch", MODULATE_CASES, ids=str)
@pytest.mark.parametrize("out_dtype", [None, torch.bfloat16], ids=["fp32", "bf16-out"])
def test_modulate_taps_last_is_a_layout_change(shape, batch, out_dtype, no_fallback):
    """The kernel writes (B, O, kh, kw, I) memory itself (the per-face conv's weight layout) and its
    backward reads the gradient through its strides: the contiguous run's bits both ways."""
    w, s = rand(*shape), rand(batch, shape[-3], seed=2) + 1
    assert_taps_last_is_a_layout_change("triton", w, s, out_dtype=out_dtype)
    assert_taps_last_is_a_layout_change("triton", w, s, demodulate=False, out_dtype=out_dtype)


# --- adain_epilogue (StyleGAN v1) ----------------------------------------------------------------


@pytest.fixture
def adain_block(monkeypatch, kernels_match_device):
    """Small tiles, so that tiny interpreted planes still split over several programs (the kernels
    run the same code for the 4,096-element tiles of a GPU)."""
    monkeypatch.setattr(kernels_match_device, "ADAIN_BLOCK", 16)


@pytest.mark.parametrize("batch,c,h,w,per_sample,noise_batch", [(2, 3, 5, 5, False, 1), (1, 2, 7, 3, True, 1),
                                                                (3, 2, 4, 9, True, 3), (2, 1, 9, 11, False, 0)])
def test_adain_epilogue_matches_ref(adain_block, batch, c, h, w, per_sample, noise_batch):
    """Forward and every input's gradient against the reference, odd sizes: planes of 15 to 99
    elements over 16-element tiles (one to seven tiles, a ragged last one)."""
    assert_adain_matches_ref("triton", adain_inputs(batch, c, h, w, per_sample, noise_batch, device=DEV))


def test_adain_epilogue_untrained_noise_and_whole_plane_tile():
    """The layers' usual case: a constant noise map and untrained strength; one tile per plane."""
    inputs = adain_inputs(2, 3, 6, 5, False, 1, device=DEV)
    assert_adain_matches_ref("triton", inputs, trained=(True, False, False, True, True, True))


def test_adain_epilogue_bf16_budget(adain_block):
    assert_adain_within_budget("triton", adain_inputs(2, 2, 6, 7, True, 1, dtype=torch.bfloat16, device=DEV))


def test_adain_epilogue_gradcheck(adain_block):
    """fast_mode (a random projection of the Jacobian): the full check costs a minute of interpreter."""
    from rlse_fast.ops.adain import adain_epilogue

    inputs = [t.requires_grad_(True) for t in adain_inputs(1, 2, 5, 4, True, 1, dtype=torch.float64, device=DEV)]
    assert gradcheck(lambda *a: adain_epilogue(*a, impl="triton"), inputs, atol=1e-6, fast_mode=True)
