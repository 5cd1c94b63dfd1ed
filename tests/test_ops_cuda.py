"""The CUDA kernels (csrc/cuda/) bias_act and upfirdn2d against the plain-PyTorch references:
forward, backward, float64 gradcheck, every dtype under the flash-attention budget (the kernel's
error against a float64 reference is at most 2x that of the reference op in the same precision, plus
a tiny epsilon); then GPU-only checks of the built extension. Two backends run the same tests,
'emulated' (the kernel sources compiled for the CPU) and 'cuda' (tests/cuda_emulation.py);
downsample_loss's are in tests/test_ops_cuda_loss.py.
"""
from __future__ import annotations

import pytest
import torch
from cuda_emulation import BACKENDS, LOW, EmulatedCuda, backend_impls, build_emulation, cuda_reason, rand
from op_checks import grads, within_budget
from torch.autograd import gradcheck

from rlse_fast.ops.bias_act import _bias_act_ref
from rlse_fast.ops.cpp_ops import native_impls
from rlse_fast.ops.downsample_loss import _downsample_loss_ref
from rlse_fast.ops.upfirdn2d import _upfirdn2d_ref, setup_filter


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    """(op functions, device) of one backend."""
    return backend_impls(request.param)


# --- bias_act ------------------------------------------------------------------------------------

# The last three run the 16-byte vector kernel (sizes and bias runs multiples of 4 and 8 elements;
# the last with a bias per innermost element, as the NHWC view of a channels-last x).
BIAS_ACT_CASES = [((2, 5, 3, 7), 1), ((3, 17), 1), ((5, 3, 7), 0), ((4, 3, 11), 2), ((2, 300), 1), ((2, 3, 4, 8), 1),
                  ((8, 3, 8), 0), ((3, 5, 8), 2)]
ACTS = [("linear", None), ("relu", None), ("lrelu", None), ("lrelu", -0.3)]


@pytest.mark.parametrize("shape,dim", BIAS_ACT_CASES)
@pytest.mark.parametrize("act,alpha", ACTS)
@pytest.mark.parametrize("clamp", [None, 0.8])
def test_bias_act_matches_ref(backend, shape, dim, act, alpha, clamp):
    impls, dev = backend
    x, b = rand(*shape, device=dev), rand(shape[dim], device=dev, seed=1)
    kw = dict(dim=dim, act=act, alpha=alpha, clamp=clamp)
    y0, g0 = grads(lambda x, b: _bias_act_ref(x, b, **kw), x, b)
    y1, g1 = grads(lambda x, b: impls["bias_act"](x, b, **kw), x, b)
    torch.testing.assert_close(y1, y0, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g1[0], g0[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g1[1], g0[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 4, 5), (3, 4, 8)])
def test_bias_act_without_bias_and_gain(backend, shape):
    impls, dev = backend
    x = rand(*shape, device=dev)
    for kw in (dict(act="lrelu", gain=0.5), dict(act="relu", clamp=0.3), dict(act="linear", gain=2.0)):
        y0, g0 = grads(lambda x: _bias_act_ref(x, None, **kw), x)
        y1, g1 = grads(lambda x: impls["bias_act"](x, None, **kw), x)
        torch.testing.assert_close(y1, y0, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(g1[0], g0[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("act,alpha,clamp", [("lrelu", None, 0.7), ("relu", None, None), ("lrelu", -0.3, None)])
def test_bias_act_gradcheck(backend, act, alpha, clamp):
    impls, dev = backend
    x = rand(2, 3, 2, device=dev, dtype=torch.float64).requires_grad_(True)
    b = rand(3, device=dev, dtype=torch.float64, seed=2).requires_grad_(True)
    assert gradcheck(lambda x, b: impls["bias_act"](x, b, dim=1, act=act, alpha=alpha, clamp=clamp), (x, b))


@pytest.mark.parametrize("shape", [(3, 37, 11), (3, 5, 16)], ids=["scalar", "vector"])
@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("act,clamp", [("lrelu", None), ("relu", 0.9), ("linear", None)])
def test_bias_act_low_precision_budget(backend, dtype, act, clamp, shape):
    impls, dev = backend
    x, b = rand(*shape, device=dev, seed=3), rand(shape[1], device=dev, seed=4)
    kw = dict(dim=1, act=act, clamp=clamp)
    up = rand(*shape, device=dev, seed=5)
    # Same low-precision inputs for everyone: their rounding is not the kernel's error.
    xl, bl, upl = x.to(dtype), b.to(dtype), up.to(dtype)
    y64, g64 = grads(lambda x, b: _bias_act_ref(x, b, **kw), xl.double(), bl.double(), upstream=upl.double())
    yr, gr = grads(lambda x, b: _bias_act_ref(x, b, **kw), xl, bl, upstream=upl)
    yk, gk = grads(lambda x, b: impls["bias_act"](x, b, **kw), xl, bl, upstream=upl)
    assert yk.dtype == dtype and gk[0].dtype == dtype
    within_budget(yk, y64, yr, f"bias_act {act} {dtype} forward")
    within_budget(gk[0], g64[0], gr[0], f"bias_act {act} {dtype} dx")


@pytest.mark.parametrize("offset", [0, 1, 4])
def test_bias_act_unaligned_views(backend, offset):
    """Views that start 0, 4 and 16 bytes into their storage: the vector kernel takes only 16-byte
    aligned pointers, the scalar one the rest; both give the reference's values."""
    impls, dev = backend
    flat = rand(offset + 2 * 3 * 4 * 8, device=dev)
    x, b = flat[offset:].view(2, 3, 4, 8), rand(3, device=dev, seed=1)
    kw = dict(dim=1, act="lrelu", clamp=0.8)
    y0, g0 = grads(lambda x, b: _bias_act_ref(x, b, **kw), x, b)
    y1 = impls["bias_act"](x, b, **kw)
    torch.testing.assert_close(y1, y0, rtol=1e-6, atol=1e-6)


# --- upfirdn2d -----------------------------------------------------------------------------------

TAPS4 = [1, 3, 3, 1]
UPFIRDN_CASES = [
    # (shape, filter taps, separable, up, down, padding, flip, gain)   -> kernel path
    ((1, 2, 13, 11), TAPS4, False, 2, 1, [2, 1, 2, 1], False, 4),        # tiled up2, 2-D
    ((2, 1, 9, 17), TAPS4, True, 2, 1, [2, 1, 2, 1], False, 4),          # tiled up2, separable
    ((1, 3, 19, 14), TAPS4, False, 1, 2, [1, 1, 1, 1], False, 1),        # tiled down2, 2-D
    ((2, 2, 35, 18), TAPS4, True, 1, 2, [1, 1, 1, 1], True, 1),          # tiled down2, separable, 2 tiles high
    ((1, 2, 37, 33), TAPS4, False, 1, 1, [2, 1, 2, 1], False, 1),        # tiled FIR, tile edges at 32
    ((1, 1, 12, 10), [1, 2, 5, 2, 1, 1, 2], False, 1, 1, 3, False, 1),   # tiled FIR, 7x7
    ((1, 2, 11, 9), [1, 2, 1], True, 1, 1, [-1, 2, 1, -2], True, 1.5),   # tiled FIR, crop + pad
    ((1, 2, 10, 9), [1, 2, 3, 4, 3, 2, 1, 1, 1], False, 1, 1, 4, False, 1),  # general: 9x9 filter
    ((2, 1, 7, 8), TAPS4, False, 3, 1, [2, 2, 1, 3], False, 9),          # general: up 3
    ((1, 2, 17, 13), TAPS4, True, 1, 3, [1, 2, 0, 1], False, 1),         # general: down 3
    ((1, 1, 9, 11), TAPS4, False, [2, 1], [1, 2], [1, 2, 2, 1], False, 1),  # general: anisotropic
    ((1, 2, 8, 6), [1, 3, 3, 1, 2, 1], False, 2, 1, [3, 2, 3, 2], False, 4),  # general: up 2, 6 taps
    ((1, 1, 6, 5), None, False, 2, 2, 0, False, 1),                      # no filter
]


def _filter(taps, separable):
    if taps is None:
        return None
    f = setup_filter(taps, separable=separable)
    if not separable:  # break the symmetry so that a wrong flip shows
        f = f * torch.linspace(0.5, 1.5, f.numel()).reshape(f.shape)
    return f


@pytest.mark.parametrize("case", UPFIRDN_CASES, ids=[f"case{i}" for i in range(len(UPFIRDN_CASES))])
def test_upfirdn2d_matches_ref(backend, case):
    impls, dev = backend
    shape, taps, sep, up, down, pad, flip, gain = case
    x, f = rand(*shape, device=dev), _filter(taps, sep)
    f_dev = None if f is None else f.to(dev)
    args = dict(up=up, down=down, padding=pad, flip_filter=flip, gain=gain)
    y0, g0 = grads(lambda x: _upfirdn2d_ref(x, f_dev, **args), x)
    y1, g1 = grads(lambda x: impls["upfirdn2d"](x, f, **args), x)
    assert y1.shape == y0.shape
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1[0], g0[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("up,down,sep", [(2, 1, False), (1, 2, True), (1, 1, False), (3, 1, True)])
def test_upfirdn2d_gradcheck(backend, up, down, sep):
    impls, dev = backend
    f = _filter(TAPS4, sep).double()
    x = rand(1, 2, 5, 6, device=dev, dtype=torch.float64).requires_grad_(True)
    assert gradcheck(lambda x: impls["upfirdn2d"](x, f, up=up, down=down, padding=[2, 1, 1, 2]), (x,))


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("up,down,sep", [(2, 1, False), (1, 2, True), (1, 1, False), (3, 1, False)])
def test_upfirdn2d_low_precision_budget(backend, dtype, up, down, sep):
    impls, dev = backend
    f = _filter(TAPS4, sep)
    xl = rand(1, 3, 21, 19, device=dev, seed=7).to(dtype)
    args = dict(up=up, down=down, padding=[2, 1, 2, 1])
    y64 = _upfirdn2d_ref(xl.double(), f.double().to(dev), **args)
    up_grad = torch.randn(y64.shape, generator=torch.Generator().manual_seed(8))
    y64, g64 = grads(lambda x: _upfirdn2d_ref(x, f.double().to(dev), **args), xl.double(), upstream=up_grad)
    yr, gr = grads(lambda x: _upfirdn2d_ref(x, f.to(dev), **args), xl, upstream=up_grad)
    yk, gk = grads(lambda x: impls["upfirdn2d"](x, f, **args), xl, upstream=up_grad)
    assert yk.dtype == dtype
    within_budget(yk, y64, yr, f"upfirdn2d {dtype} forward")
    within_budget(gk[0], g64[0], gr[0], f"upfirdn2d {dtype} dx")


@pytest.mark.parametrize("case", [UPFIRDN_CASES[i] for i in (0, 1, 2, 3, 4, 8, 10)], ids=lambda c: f"{c[3]}-{c[4]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_upfirdn2d_channels_last(backend, case, dtype):
    """Channels-last in, channels-last out, on the NHWC kernel (forward, and the backward from a
    channels-last gradient), equal to the NCHW result; C = 3 so that a channel mix-up shows."""
    impls, dev = backend
    shape, taps, sep, up, down, pad, flip, gain = case
    shape = (shape[0], 3, *shape[2:])
    f = _filter(taps, sep)
    args = dict(up=up, down=down, padding=pad, flip_filter=flip, gain=gain)
    x = rand(*shape, device=dev, seed=5).to(dtype)
    y_ref = impls["upfirdn2d"](x, f, **args)
    upstream = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(6)).to(dev, dtype)
    y0, g0 = grads(lambda x: impls["upfirdn2d"](x, f, **args), x, upstream=upstream)
    cl = torch.channels_last
    y1, g1 = grads(lambda x: impls["upfirdn2d"](x, f, **args), x.contiguous(memory_format=cl),
                   upstream=upstream.contiguous(memory_format=cl))
    assert y1.is_contiguous(memory_format=cl) and not y1.is_contiguous()
    assert g1[0].is_contiguous(memory_format=cl) and not g1[0].is_contiguous()
    # Equal to rounding (the planar kernels sum separable taps in another order); the default
    # tolerances of the dtype: a wrong pixel or channel is off by O(1).
    torch.testing.assert_close(y1, y0)
    torch.testing.assert_close(g1[0], g0[0])


def test_bias_act_channels_last(backend):
    """A channels-last x runs as its NHWC view (bias along the last dim): same values, the layout
    kept, forward and backward, and the bias gradient."""
    from rlse_fast.ops.bias_act import run_native

    impls, dev = backend
    x = rand(2, 5, 4, 3, device=dev, seed=9).contiguous(memory_format=torch.channels_last)
    b = rand(5, device=dev, seed=10)
    upstream = torch.randn(2, 5, 4, 3, generator=torch.Generator().manual_seed(11)).to(dev)
    upstream = upstream.contiguous(memory_format=torch.channels_last)
    y1, g1 = grads(lambda x, b: run_native(impls["bias_act"], x, b, 1, "lrelu", None, None, 0.9), x, b,
                   upstream=upstream)
    y0, g0 = grads(lambda x, b: _bias_act_ref(x, b, act="lrelu", clamp=0.9), x.contiguous(), b, upstream=upstream)
    assert y1.is_contiguous(memory_format=torch.channels_last) and not y1.is_contiguous()
    torch.testing.assert_close(y1, y0, rtol=1e-6, atol=1e-6)
    for a, r in zip(g1, g0):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-6)


# --- the 64-bit index instances ---------------------------------------------------------------------


@pytest.fixture
def index64():
    """The emulated kernels with their 64-bit index instances forced (a real launch takes them
    from 2^31 elements on, too large for a test)."""
    emu = EmulatedCuda(build_emulation())
    emu.lib.rlse_emu_force_index64(1)
    try:
        yield native_impls(emu)
    finally:
        emu.lib.rlse_emu_force_index64(0)


@pytest.mark.parametrize("case", UPFIRDN_CASES[7:], ids=lambda c: f"{c[3]}-{c[4]}")
@pytest.mark.parametrize("channels_last", [False, True])
def test_emulated_upfirdn2d_general_index64(index64, case, channels_last):
    shape, taps, sep, up, down, pad, flip, gain = case
    shape = (shape[0], 3, *shape[2:])
    x, f = rand(*shape, device="cpu", seed=4), _filter(taps, sep)
    args = dict(up=up, down=down, padding=pad, flip_filter=flip, gain=gain)
    y0, g0 = grads(lambda x: _upfirdn2d_ref(x, f, **args), x)
    upstream = torch.randn(y0.shape, generator=torch.Generator().manual_seed(1))
    if channels_last:  # the NHWC instance forward and backward
        x, upstream = (t.contiguous(memory_format=torch.channels_last) for t in (x, upstream))
    y1, g1 = grads(lambda x: index64["upfirdn2d"](x, f, **args), x, upstream=upstream)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1[0], g0[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,dim", BIAS_ACT_CASES)
def test_emulated_bias_act_index64(index64, shape, dim):
    x, b = rand(*shape, device="cpu"), rand(shape[dim], device="cpu", seed=1)
    kw = dict(dim=dim, act="lrelu", clamp=0.8)
    y0, g0 = grads(lambda x, b: _bias_act_ref(x, b, **kw), x, b)
    y1, g1 = grads(lambda x, b: index64["bias_act"](x, b, **kw), x, b)
    torch.testing.assert_close(y1, y0, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g1[0], g0[0], rtol=1e-6, atol=1e-6)


# --- GPU only --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpu():
    reason = cuda_reason()
    if reason:
        pytest.skip(reason)
    from rlse_fast.ops import cuda_ops

    return cuda_ops.IMPLS


def test_auto_picks_cuda(gpu):
    from rlse_fast.ops import bias_act, dispatch

    x = torch.randn(2, 3, device="cuda")
    assert dispatch.pick("bias_act", "auto", x) is gpu["bias_act"]
    assert dispatch.pick("upfirdn2d", "auto", x) is gpu["upfirdn2d"]
    assert dispatch.pick("downsample_loss", "auto", x) is gpu["downsample_loss"]
    torch.testing.assert_close(bias_act(x, impl="cuda", act="lrelu"), _bias_act_ref(x, act="lrelu"))


def test_stylegan2_shapes(gpu):
    """Full-size StyleGAN2 layers, and more planes than gridDim.y allows (the kernels loop)."""
    f = setup_filter(TAPS4)
    for shape, args in [((4, 512, 32, 32), dict(up=2, padding=[2, 1, 2, 1], gain=4)),
                        ((1, 64, 256, 256), dict(down=2, padding=1)),
                        ((70000, 1, 4, 5), dict(padding=[2, 1, 2, 1])),
                        ((70000, 1, 4, 5), dict(up=3, padding=[2, 1, 2, 1]))]:  # general kernel
        x = torch.randn(shape, device="cuda")
        y0 = _upfirdn2d_ref(x, f.cuda(), **args)
        y1 = gpu["upfirdn2d"](x, f, **args)
        torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-4)
    x = torch.randn(16, 3, 1024, 1024, device="cuda")
    for factor in (64, 16):
        t = torch.randn(16, 3, 1024 // factor, 1024 // factor, device="cuda")
        torch.testing.assert_close(gpu["downsample_loss"](x, t, factor), _downsample_loss_ref(x, t, factor),
                                   rtol=1e-4, atol=1e-2)


def test_models_filter_runs_separable(gpu, monkeypatch):
    """The public wrappers hand the CUDA kernel the 1-D factor of StyleGAN2's 2-D [1, 3, 3, 1]
    filter (the separable path, measured faster), with the 2-D reference's results."""
    from rlse_fast.ops import dispatch, downsample2d, filter2d, upsample2d

    seen = []
    pick = dispatch.pick

    def spy(op, impl, x):
        fn = pick(op, impl, x)
        if op != "upfirdn2d" or fn is None:
            return fn
        return lambda x, f, *args: (seen.append(None if f is None else f.ndim), fn(x, f, *args))[1]

    monkeypatch.setattr(dispatch, "pick", spy)
    f = setup_filter([1, 3, 3, 1]).cuda()
    x = torch.randn(2, 5, 19, 23, device="cuda")
    for op in (upsample2d, downsample2d, filter2d):
        torch.testing.assert_close(op(x, f, impl="cuda"), op(x, f, impl="ref"), rtol=1e-5, atol=1e-5)
    assert seen == [1, 1, 1]


def test_bad_arguments_raise_clear_errors(gpu):
    from rlse_fast import _cuda

    x = torch.randn(2, 3, device="cuda")
    with pytest.raises(RuntimeError, match="b must have shape"):
        _cuda.bias_act(x, torch.randn(4, device="cuda"), x[:0], x[:0], 0, 1, 1, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="must be a CUDA tensor"):
        _cuda.bias_act(x.cpu(), x[:0], x[:0], x[:0], 0, 1, 1, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="contiguous"):
        _cuda.bias_act(torch.randn(3, 4, device="cuda").t(), x[:0], x[:0], x[:0], 0, 1, 1, 0.0, 1.0, -1.0)
    y = torch.randn(1, 1, 8, 8, device="cuda")
    taps = torch.ones(4, device="cuda")
    with pytest.raises(RuntimeError, match="too small"):
        _cuda.downsample_loss(y, torch.randn(1, 1, 8, 8, device="cuda"), torch.ones(40, device="cuda"), 8, 16, False)
    with pytest.raises(RuntimeError, match="x must have shape"):
        _cuda.downsample_loss(y, torch.randn(1, 1, 3, 4, device="cuda"), taps, 2, 1, False)
