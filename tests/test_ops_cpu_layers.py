"""The C++ CPU kernels of a layer's own ops (bias_act; modulate, the per-face weight
modulation; adain_epilogue, StyleGAN v1's layer epilogue) against the plain-PyTorch references: forward, backward, float64
gradcheck, and every claimed dtype under the flash-attention error budget (the kernel's error
against a float64 reference is at most 2x that of the reference op run in the same precision).
Odd shapes throughout, so that no size is a multiple of a tile or a vector width.
"""
from __future__ import annotations

import pytest
import torch
from op_checks import (
    LOW,
    adain_inputs,
    assert_adain_matches_ref,
    assert_adain_within_budget,
    assert_modulate_matches_ref,
    assert_taps_last_is_a_layout_change,
    grads,
    needs_cpp,
    within_budget,
)
from torch.autograd import gradcheck

from rlse_fast.ops import (
    bias_act,
    modulate,
)
from rlse_fast.ops.adain import adain_epilogue
from rlse_fast.ops.bias_act import _bias_act_ref
from rlse_fast.ops.modulate import _modulate_ref

pytestmark = needs_cpp


# --- bias_act ------------------------------------------------------------------------------------

BIAS_ACT_CASES = [  # (shape, dim)
    ((1, 3, 5, 9), 1),
    ((2, 7, 13), 1),
    ((3, 5), 1),      # fully connected: the bias dimension is the innermost
    ((5, 3, 7), 0),
    ((4, 3, 11), 2),
    ((7,), 0),        # 1-D: the bias gradient is dx itself
]
ACTS = [("linear", None), ("relu", None), ("lrelu", None), ("lrelu", -0.3)]


@pytest.mark.parametrize("shape,dim", BIAS_ACT_CASES)
@pytest.mark.parametrize("act,alpha", ACTS)
@pytest.mark.parametrize("clamp", [None, 0.8])
@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_act_matches_ref(shape, dim, act, alpha, clamp, with_bias):
    torch.manual_seed(0)
    x = torch.randn(shape)
    b = torch.randn(shape[dim]) if with_bias else None
    kw = dict(dim=dim, act=act, alpha=alpha, clamp=clamp)
    args = (x,) if b is None else (x, b)

    def run(impl):
        return lambda x, b=None: bias_act(x, b, impl=impl, **kw)

    y0, g0 = grads(run("ref"), *args)
    y1, g1 = grads(run("cpp"), *args)
    torch.testing.assert_close(y1, y0, rtol=1e-6, atol=1e-6)
    for a, r in zip(g1, g0):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("act,alpha", ACTS)
@pytest.mark.parametrize("clamp", [None, 0.8])
def test_bias_act_gradcheck(act, alpha, clamp):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda x, b: bias_act(x, b, act=act, alpha=alpha, gain=1.7, clamp=clamp, impl="cpp"), (x, b))


@pytest.mark.parametrize("dtype", LOW + [torch.float32])
@pytest.mark.parametrize("act,clamp", [("linear", 2.0), ("lrelu", None), ("lrelu", 2.0), ("relu", 1.0)])
def test_bias_act_dtype_budget(dtype, act, clamp):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 13).to(dtype)
    b = torch.randn(5).to(dtype)
    kw = dict(act=act, clamp=clamp)
    y64, (dx64, db64) = grads(lambda x, b: _bias_act_ref(x, b, **kw), x.double(), b.double())
    y_low, (dx_low, db_low) = grads(lambda x, b: _bias_act_ref(x, b, **kw), x, b)
    y, (dx, db) = grads(lambda x, b: bias_act(x, b, impl="cpp", **kw), x, b)
    assert y.dtype == dx.dtype == dtype
    within_budget(y, y64, y_low, "forward")
    within_budget(dx, dx64, dx_low, "dx")
    within_budget(db, db64, db_low, "db")


def test_bias_act_identity_returns_input():
    x = torch.randn(2, 3)
    assert bias_act(x, None, act="linear", impl="cpp") is x


# --- modulate ------------------------------------------------------------------------------------

MODULATE_CASES = [  # (weight shape, batch): shared and per-sample weights, odd sizes, 1x1 and 3x3 taps
    ((5, 7, 3, 3), 3),
    ((3, 5, 7, 3, 3), 3),
    ((1, 6, 9, 1, 1), 2),   # a (1, ...) weight broadcast over the batch
    ((2, 13, 11, 1, 1), 2),
    ((17, 3, 3, 3), 1),
]


@pytest.mark.parametrize("shape,batch", MODULATE_CASES, ids=str)
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulate_matches_ref(shape, batch, demodulate):

    torch.manual_seed(0)
    w, s = torch.randn(shape), torch.randn(batch, shape[-3]) + 1
    assert_modulate_matches_ref("cpp", w, s, demodulate)


@pytest.mark.parametrize("impl", ["cpp", "ref"])
@pytest.mark.parametrize("out_dtype", [None, torch.bfloat16], ids=["fp32", "bf16-out"])
def test_modulate_taps_last_is_a_layout_change(impl, out_dtype):
    """taps_last=True: the same values stored as (B, O, kh, kw, I) (by a copy here), the same gradients."""
    torch.manual_seed(0)
    for shape, batch in MODULATE_CASES:
        w, s = torch.randn(shape), torch.randn(batch, shape[-3]) + 1
        assert_taps_last_is_a_layout_change(impl, w, s, out_dtype=out_dtype)


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulate_gradcheck(per_sample, demodulate):

    torch.manual_seed(0)
    w = torch.randn(*((2,) if per_sample else ()), 3, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda w, s: modulate(w, s, demodulate, impl="cpp"), (w, s))


@pytest.mark.parametrize("dtype", LOW + [torch.float32])
def test_modulate_dtype_budget(dtype):

    torch.manual_seed(0)
    w, s = torch.randn(3, 9, 37, 3, 3), torch.randn(3, 37) + 1
    y64, g64 = grads(lambda w, s: _modulate_ref(w, s), w.double(), s.double())
    y_low, g_low = grads(lambda w, s: _modulate_ref(w, s), w.to(dtype), s.to(dtype))
    y, g = grads(lambda w, s: modulate(w, s, impl="cpp"), w.to(dtype), s.to(dtype))
    assert y.dtype == dtype and g[0].dtype == dtype and g[1].dtype == dtype
    within_budget(y, y64, y_low, "out")
    for name, a, a64, a_low in zip(("dweight", "dstyles"), g, g64, g_low):
        within_budget(a, a64, a_low, name)


def test_modulate_only_the_needed_gradients():

    w, s = torch.randn(2, 3, 4, 3, 3, requires_grad=True), torch.randn(2, 4)
    modulate(w, s, impl="cpp").sum().backward()
    assert w.grad.shape == w.shape and s.grad is None
    w, s = torch.randn(3, 4, 3, 3), torch.randn(2, 4, requires_grad=True)
    modulate(w, s, impl="cpp").square().sum().backward()
    assert s.grad.shape == s.shape and w.grad is None


def test_modulate_checks_arguments():
    from rlse_fast import _C

    with pytest.raises(ValueError, match="styles must be"):
        modulate(torch.randn(3, 4, 3, 3), torch.randn(2, 5), impl="cpp")
    with pytest.raises(ValueError, match="per-sample weight"):
        modulate(torch.randn(3, 3, 4, 3, 3), torch.randn(2, 4), impl="cpp")
    with pytest.raises(RuntimeError, match="styles must have the dtype"):
        _C.modulate(torch.randn(1, 3, 4, 3, 3), torch.randn(2, 4, dtype=torch.float64), True, 1e-8)
    with pytest.raises(RuntimeError, match="contiguous"):
        _C.modulate(torch.randn(1, 3, 4, 3, 3).transpose(3, 4), torch.randn(2, 4), True, 1e-8)


def test_modulate_out_dtype():
    w, s = torch.randn(2, 5, 7, 3, 3), torch.randn(2, 7) + 1
    for impl in ("ref", "cpp"):
        out = modulate(w, s, impl=impl, out_dtype=torch.bfloat16)
        assert out.dtype == torch.bfloat16
        assert torch.equal(out, modulate(w, s, impl=impl).to(torch.bfloat16))


# --- adain_epilogue (StyleGAN v1's layer epilogue) ---------------------------------------------------


@pytest.mark.parametrize("batch,c,h,w,per_sample,noise_batch", [(2, 3, 5, 5, False, 1), (1, 2, 7, 3, True, 1),
                                                                (3, 2, 4, 9, True, 3), (2, 4, 33, 31, False, 0)])
def test_adain_epilogue_matches_ref(batch, c, h, w, per_sample, noise_batch):
    """Forward and every input's gradient; rows that are not multiples of the 8-lane sums."""
    assert_adain_matches_ref("cpp", adain_inputs(batch, c, h, w, per_sample, noise_batch))


def test_adain_epilogue_untrained_noise():
    """The layers' usual case: a constant noise map and an untrained strength get no gradient."""
    assert_adain_matches_ref("cpp", adain_inputs(2, 3, 6, 5, False, 1), trained=(True, False, False, True, True, True))


@pytest.mark.parametrize("per_sample,noise_batch", [(True, 1), (False, 2), (True, 0)])
def test_adain_epilogue_gradcheck(per_sample, noise_batch):
    inputs = [t.requires_grad_(True) if t is not None else None
              for t in adain_inputs(2, 2, 5, 4, per_sample, noise_batch, dtype=torch.float64)]
    assert gradcheck(lambda *a: adain_epilogue(*a, impl="cpp"), inputs)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_adain_epilogue_dtype_budget(dtype):
    assert_adain_within_budget("cpp", adain_inputs(2, 3, 17, 19, True, 1, dtype=dtype))


def test_adain_bindings_check_arguments():
    from rlse_fast import _C

    x, v = torch.randn(2, 3, 4, 4), torch.randn(6)
    with pytest.raises(RuntimeError, match="noise must be"):
        _C.adain(x, torch.randn(3, 1, 4, 4), v, v, v, v, 1e-8, 0.2)
    with pytest.raises(RuntimeError, match="bias must have B \\* C = 6"):
        _C.adain(x, torch.empty(0), torch.empty(0), torch.randn(3), v, v, 1e-8, 0.2)
    with pytest.raises(RuntimeError, match="scale must be Float"):
        _C.adain(x, torch.empty(0), torch.empty(0), v, v.double(), v, 1e-8, 0.2)
    with pytest.raises(RuntimeError, match="stats must be"):
        _C.adain_backward(x, x, torch.empty(0), torch.empty(0), v, v, torch.empty(3), 0.2)
