"""The C++ CPU kernels ('cpp') against the plain-PyTorch references: forward, backward, float64
gradcheck, and every claimed dtype under the flash-attention error budget (the kernel's error
against a float64 reference is at most 2x that of the reference op run in the same precision).
Odd shapes throughout, so that no size is a multiple of a tile or a vector width.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from op_checks import (adain_inputs, assert_adain_matches_ref, assert_adain_within_budget, assert_modulate_matches_ref,
                       assert_taps_last_is_a_layout_change, grads, within_budget)
from torch.autograd import gradcheck

from rlse_fast.ops import bias_act, downsample2d, filter2d, modulate, setup_filter, upfirdn2d, upsample2d
from rlse_fast.ops.bias_act import _bias_act_ref
from rlse_fast.ops.downsample_loss import _downsample_loss_ref, downsample_loss
from rlse_fast.ops.adain import adain_epilogue
from rlse_fast.ops.modulate import _modulate_ref
from rlse_fast.ops.upfirdn2d import _upfirdn2d_ref


def _cpp_built() -> bool:
    try:
        import rlse_fast._C  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _cpp_built(), reason="rlse_fast._C is not built; run `pip install --no-build-isolation .`")

LOW = [torch.float16, torch.bfloat16]


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


# --- dispatch, bindings, lazy import -------------------------------------------------------------

def test_auto_picks_cpp_on_cpu():
    from rlse_fast import _C
    from rlse_fast.ops import cpp_ops, dispatch

    x = torch.randn(2, 3)
    for op in ("bias_act", "upfirdn2d", "downsample_loss", "modulate", "adain_epilogue"):
        assert dispatch.pick(op, "auto", x) is dispatch._REGISTRY[op]["cpp"][0]
        for dtype in (torch.float16, torch.bfloat16):
            fast = dtype in cpp_ops.auto_dtypes(_C.cpu_isa())[op]
            assert (dispatch.pick(op, "auto", x.to(dtype)) is not None) == fast
    assert cpp_ops.auto_dtypes("avx2")["bias_act"] == cpp_ops.DTYPES
    assert torch.float16 not in cpp_ops.auto_dtypes("base")["bias_act"]  # software fp16: slower than ref
    assert dispatch.pick("bias_act", "auto", x.int()) is None  # no kernel for int: the reference
    assert dispatch.pick("bias_act", "cpp", x.half()) is dispatch._REGISTRY["bias_act"]["cpp"][0]
    with pytest.raises(RuntimeError, match="cannot run"):
        dispatch.pick("bias_act", "cpp", x.int())


def test_a_block_impl_without_the_op_takes_auto():
    from rlse_fast.ops import dispatch

    x = torch.randn(2, 3)
    dispatch.pick("bias_act", "auto", x)  # loads the native modules
    if "triton" in dispatch._UNAVAILABLE:
        pytest.skip("triton is not installed")
    cpp = dispatch._REGISTRY["upfirdn2d"]["cpp"][0]
    with dispatch.using("triton"):  # no Triton upfirdn2d: the best there is
        assert dispatch.pick("upfirdn2d", "auto", x) is cpp
    with pytest.raises(RuntimeError, match="not available"):  # asked for by name, it is an error
        dispatch.pick("upfirdn2d", "triton", x)


def _isa_outputs(isa, dtype):
    """Outputs and gradients of every op through the kernel build `isa`, at sizes that take both
    the vector loops and their tails (and, for bias_act, several conversion tiles)."""
    from rlse_fast import _C

    g = torch.Generator().manual_seed(0)

    def rnd(*shape):
        return torch.randn(shape, generator=g).to(dtype)

    cases = [
        lambda x, b: bias_act(x, b, act="lrelu", impl="cpp"),                        # a bias per run
        lambda x, b: bias_act(x, b, act="relu", clamp=0.7, impl="cpp"),              # the xref path
        lambda x, b: bias_act(x.reshape(-1, 37), b[:37], act="lrelu", impl="cpp"),   # bias innermost
        lambda x, b: upsample2d(x, setup_filter([1, 3, 3, 1]), impl="cpp"),
        lambda x, b: downsample2d(x, setup_filter([1, 3, 3, 1]), impl="cpp"),
        lambda x, b: downsample_loss(x, lo, 4, impl="cpp"),
        lambda x, b: modulate(x[:, :, :9].reshape(2, 37, 9, 4, 7), x[:, 0, 0, :9] + 2, impl="cpp"),  # 28 taps
        lambda x, b: adain_epilogue(x, x[:1, :1], b, b.float(), x[:, :, 0, 0].float() + 1, x[:, :, 1, 0].float(),
                                    impl="cpp"),
    ]
    x, b, lo = rnd(2, 37, 20, 28), rnd(37), rnd(2, 37, 5, 7)
    before = _C.set_cpu_isa(isa)
    try:
        return [grads(fn, x, b) for fn in cases]
    finally:
        _C.set_cpu_isa(before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cpu_builds_are_bit_identical(dtype):
    # The AVX2 build does the operations of the baseline build in the same order (no FMA), with F16C
    # conversions that round like the software ones: the results must be identical, bit for bit.
    from rlse_fast import _C

    if "avx2" not in _C.cpu_isas():
        pytest.skip("this CPU or build has no AVX2 kernels")
    base, avx2 = _isa_outputs("base", dtype), _isa_outputs("avx2", dtype)
    for (y0, g0), (y1, g1) in zip(base, avx2):
        assert torch.equal(y0, y1)
        for a, c in zip(g0, g1):
            assert (a is None and c is None) or torch.equal(a, c)


def test_cpu_isa_choice():
    from rlse_fast import _C

    assert "base" in _C.cpu_isas() and _C.cpu_isa() in _C.cpu_isas()
    with pytest.raises(RuntimeError, match="unknown kernel build 'sse9'"):
        _C.set_cpu_isa("sse9")
    # RLSE_CPU_ISA=base selects the baseline build; by default the best the CPU runs.
    code = "import torch; from rlse_fast import _C; print(_C.cpu_isa(), _C.cpu_isas()[-1])"
    for env, want in (("base", "base"), ("auto", None)):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "RLSE_CPU_ISA": env})
        assert out.returncode == 0, out.stderr
        got, best = out.stdout.split()
        assert got == (want or best)


def test_kernels_command_reports_the_build(capsys):
    import json

    from rlse_fast import _C
    from rlse_fast.cli import main
    from rlse_fast.ops import cpp_ops

    assert main(["kernels", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["impls"]["cpp"] == "available" and info["cpu_isa"] == _C.cpu_isa()
    want = cpp_ops.auto_dtypes(_C.cpu_isa())
    for dtype, row in info["auto"]["cpu"].items():
        for op, impl in row.items():
            # an op without a C++ kernel runs its reference on the CPU
            assert impl == ("cpp" if getattr(torch, dtype) in want.get(op, ()) else "ref"), (dtype, op)
    if not torch.version.cuda:
        assert "CPU build" in info["impls"]["cuda"]
    assert main(["kernels"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("auto on cpu float32:"))
    assert "bias_act cpp" in line and "adain_epilogue cpp" in line


def test_bindings_check_arguments():
    from rlse_fast import _C

    x = torch.randn(1, 2, 5, 5)
    with pytest.raises(RuntimeError, match="f must be Float"):
        _C.upfirdn2d(x, torch.ones(2, 2, dtype=torch.float64), 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0)
    with pytest.raises(RuntimeError, match="contiguous"):
        _C.bias_act(x.transpose(2, 3), torch.empty(0), torch.empty(0), torch.empty(0), 0, 1, 1, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="b must have shape"):
        _C.bias_act(x, torch.ones(3), torch.empty(0), torch.empty(0), 0, 1, 1, 0.0, 1.0, -1.0)


def test_lazy_import_and_missing_extension():
    # In a fresh interpreter: importing the package does not load the extension; with the extension
    # made unimportable, 'auto' falls back to the reference and 'cpp' says how to rebuild.
    code = """
import sys
import torch
import rlse_fast, rlse_fast.ops
assert 'rlse_fast._C' not in sys.modules, 'extension loaded at import'
sys.modules['rlse_fast._C'] = None  # makes `import rlse_fast._C` raise ImportError
from rlse_fast.ops import bias_act
x = torch.randn(2, 3)
bias_act(x, torch.randn(3), act='lrelu')
try:
    bias_act(x, None, act='relu', impl='cpp')
except RuntimeError as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    msg = out.stdout.strip()
    assert "\n" not in msg and "pip install --no-build-isolation ." in msg, msg


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
