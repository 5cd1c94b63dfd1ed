"""The per-face convolution with StyleGAN2's layer epilogue (`ops.perface_conv_act`): the Triton
kernel (interpreted on CPU tensors, as in test_ops_perface_conv.py) against the separate ops,
forward and every gradient (x, weight, noise map, strength, bias), all epilogue combinations."""
import os

import torch

from op_checks import skip_unless_interpreted_as_asked, within_budget

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from rlse_fast.ops.perface_conv_act import _perface_conv_bias_act_ref, perface_conv_bias_act  # noqa: E402

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0 to a scalar:DeprecationWarning")
NAMES = ("x", "w", "noise", "strength", "bias")


@pytest.fixture(scope="module", autouse=True)
def kernels_match_device():
    from rlse_fast.ops.triton_kernels.perface_conv_act import conv_act_forward_kernel

    skip_unless_interpreted_as_asked(conv_act_forward_kernel, DEV)


def inputs(batch, ci, co, h, w, k=3, noise="shared", strength="shared", bias="shared", nhwc=True,
           trained_noise=False, seed=0, dtype=torch.float32):
    """x, w (per face), noise (None, a shared (H, W) map or (B, 1, H, W)), strength (scalar or (B,)),
    bias ((C,) or (B, C)) as the layers hold them (float32; x and w in dtype); requires_grad set."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(DEV)

    x = rand(batch, ci, h, w).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last) if nhwc else x
    wt = rand(batch, co, ci, k, k, scale=1 / k).to(dtype)
    oh, ow = h + 2 * (k // 2) - k + 1, w + 2 * (k // 2) - k + 1
    n = {None: None, "shared": rand(oh, ow), "per-face": rand(batch, 1, oh, ow)}[noise]
    s = None if noise is None else (rand(1).reshape(()) if strength == "shared" else rand(batch)).float()
    b = {None: None, "shared": rand(co), "per-face": rand(batch, co)}[bias]
    ts = [x, wt, None if n is None else n.float(), s, None if b is None else b.float()]
    trained = (True, True, trained_noise, True, True)
    return [None if t is None else t.detach().requires_grad_(tr) for t, tr in zip(ts, trained)]


def run(fn, ts, padding, clamp, upstream_seed=5):
    ts = [None if t is None else t.detach().clone().requires_grad_(t.requires_grad) for t in ts]
    y = fn(*ts[:2], padding, *ts[2:], clamp=clamp)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(upstream_seed), dtype=torch.float64)
    y.backward(dy.to(DEV, y.dtype))
    return y.detach(), {n: t.grad for n, t in zip(NAMES, ts) if t is not None and t.requires_grad}


def triton_fn(*a, **k):
    return perface_conv_bias_act(*a, **k, impl="triton")


def assert_matches(ts, padding=1, clamp=None, rtol=1e-5):
    y0, g0 = run(_perface_conv_bias_act_ref, ts, padding, clamp)
    y1, g1 = run(triton_fn, ts, padding, clamp)
    assert y1.shape == y0.shape and y1.stride() == y0.stride() or not ts[0].is_contiguous()
    torch.testing.assert_close(y1, y0, rtol=rtol, atol=1e-5)
    assert g1.keys() == g0.keys()
    for k in g0:
        scale = 1 + g0[k].abs().max().item()
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-4, atol=1e-5 * scale, msg=k)


@pytest.mark.parametrize("noise", [None, "shared", "per-face"])
@pytest.mark.parametrize("bias", [None, "shared", "per-face"])
@pytest.mark.parametrize("clamp", [None, 0.5], ids=["no-clamp", "clamp"])
def test_every_epilogue_matches_the_separate_ops(noise, bias, clamp):
    """3 faces, 7 x 9 pixels, 5 -> 6 channels, NHWC; the clamp at 0.5 cuts a good share of the outputs."""
    ts = inputs(3, 5, 6, 7, 9, noise=noise, strength="per-face" if noise == "per-face" else "shared", bias=bias)
    assert_matches(ts, clamp=clamp)


@pytest.mark.parametrize("batch,ci,co,h,w,nhwc", [(1, 35, 3, 5, 4, True), (2, 4, 18, 6, 5, False),
                                                   (2, 3, 7, 1, 8, True)])
def test_odd_shapes_batch_one_and_layouts(batch, ci, co, h, w, nhwc):
    """Two channel blocks (35 inputs), 3 and 18 outputs, a one-row image, batch 1; NCHW keeps NCHW.
    The output keeps x's layout."""
    ts = inputs(batch, ci, co, h, w, nhwc=nhwc, noise="per-face", strength="per-face", bias="per-face",
                trained_noise=True)
    assert_matches(ts)
    y = triton_fn(*ts[:2], 1, *ts[2:])
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    assert y.is_contiguous(memory_format=fmt)


def test_small_tiles_cross_every_block_edge(monkeypatch):
    """The activation gradient's sums with tiles shrunk to 2 pixels x 4 channels: 18 channels walk
    five channel blocks (the last one short), 63 pixels make 32 pixel blocks per face (the last one
    short); every bias, strength and noise-map gradient is still the full sum."""
    from rlse_fast.ops import triton_perface_conv_act as tpa

    monkeypatch.setattr(tpa, "ACT_TILE", 8)
    monkeypatch.setattr(tpa, "ACT_MAX_C", 4)
    assert tpa.act_tiles(18) == (2, 4)
    for clamp in (None, 0.5):
        assert_matches(inputs(2, 3, 18, 7, 9, noise="per-face", strength="per-face", bias="per-face",
                              trained_noise=True), clamp=clamp)
        assert_matches(inputs(2, 3, 18, 7, 9, nhwc=False, noise="shared", bias="shared", trained_noise=True),
                       clamp=clamp)


def test_trained_shared_noise_map_and_scalar_strength():
    """The coarse layers' trainable noise map (shared by the faces) gets the faces' summed gradient."""
    assert_matches(inputs(2, 4, 5, 6, 7, noise="shared", strength="shared", bias="shared", trained_noise=True))


def test_shared_weight_and_1x1():
    ts = inputs(2, 4, 5, 6, 7, k=1, noise="shared", bias="per-face")
    assert_matches(ts, padding=0)
    ts[1] = ts[1][0].detach().clone().requires_grad_(True)  # one (C_out, C_in, k, k) weight for both faces
    assert_matches(ts, padding=0)


@pytest.mark.parametrize("clamp", [None, 1.0], ids=["no-clamp", "clamp"])
def test_bf16_budget(clamp):
    """bf16 x and w (fp32 noise, strength and bias, as the layers hold them): output and every gradient
    within twice the separate ops' own bf16 error against float64."""
    ts = inputs(2, 9, 6, 6, 5, noise="per-face", strength="per-face", bias="per-face", trained_noise=True,
                dtype=torch.bfloat16)
    as64 = [None if t is None else t.detach().double().requires_grad_(t.requires_grad) for t in ts]
    y64, g64 = run(_perface_conv_bias_act_ref, as64, 1, clamp)
    y_low, g_low = run(_perface_conv_bias_act_ref, ts, 1, clamp)
    y1, g1 = run(triton_fn, ts, 1, clamp)
    assert y1.dtype == torch.bfloat16 and g1["x"].dtype == g1["w"].dtype == torch.bfloat16
    within_budget(y1, y64, y_low, "y")
    for k in g64:
        within_budget(g1[k], g64[k], g_low[k], f"d{k}")


def test_backward_is_deterministic():
    ts = inputs(2, 5, 6, 7, 9, noise="per-face", strength="per-face", bias="per-face", trained_noise=True)
    (_, g1), (_, g2) = run(triton_fn, ts, 1, 0.5), run(triton_fn, ts, 1, 0.5)
    assert all(torch.equal(g1[k], g2[k]) for k in g1)


def test_bad_arguments_say_what_is_wrong():
    x, w = torch.zeros(2, 3, 5, 5, device=DEV), torch.zeros(2, 4, 3, 3, 3, device=DEV)
    with pytest.raises(ValueError, match="bias must be"):
        perface_conv_bias_act(x, w, 1, bias=torch.zeros(3, device=DEV), impl="triton")
    with pytest.raises(ValueError, match="noise must be"):
        perface_conv_bias_act(x, w, 1, noise=torch.zeros(4, 4, device=DEV), strength=torch.ones((), device=DEV),
                              impl="triton")
    with pytest.raises(ValueError, match="C_in"):
        perface_conv_bias_act(x, torch.zeros(2, 4, 2, 3, 3, device=DEV), 1, impl="triton")


def test_autocast_runs_the_conv_in_the_autocast_dtype():
    ts = inputs(2, 4, 5, 6, 7, noise="shared", bias="per-face")
    with torch.autocast(DEV.type, dtype=torch.bfloat16):
        y0 = _perface_conv_bias_act_ref(*ts[:2], 1, *ts[2:])
        y1 = triton_fn(*ts[:2], 1, *ts[2:])
    assert y1.dtype == y0.dtype == torch.bfloat16
    torch.testing.assert_close(y1.float(), y0.float(), rtol=2e-2, atol=2e-2)


def test_the_generator_fuses_only_when_asked(monkeypatch):
    """`fused_up.applies_conv`: only inside `fused_up.using`, with the per-face conv chosen, on a
    channels-last non-float16 x, for a layer without up-sampling."""
    from rlse_fast.models import stylegan2
    from rlse_fast.models.stylegan2 import fused_up
    from rlse_fast.ops.perface_conv import ENV

    layer = stylegan2.generator.SynthesisLayer(4, 4, 8, 8)
    up = stylegan2.generator.SynthesisLayer(4, 4, 8, 8, up=2)
    x = torch.zeros(2, 4, 8, 8, device=DEV).contiguous(memory_format=torch.channels_last)
    monkeypatch.setenv(ENV, "triton")
    assert not fused_up.applies_conv(layer, x, True)
    with fused_up.using("triton"):
        assert fused_up.applies_conv(layer, x, True)
        assert not fused_up.applies_conv(up, x, True)
        assert not fused_up.applies_conv(layer, x.contiguous(), True)
        assert not fused_up.applies_conv(layer, x.half(), True)
        assert not fused_up.applies_conv(layer, x, False)
        monkeypatch.delenv(ENV)
        assert not fused_up.applies_conv(layer, x, True)
