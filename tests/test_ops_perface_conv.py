"""The per-face convolution (`ops.perface_conv`): the Triton kernels against the grouped-conv
reference, forward, input gradient and weight gradient, and a StyleGAN2 generator run through them.

Without a GPU the kernels run on CPU tensors under the Triton interpreter (TRITON_INTERPRET=1 set
before triton is imported, as in test_ops_triton.py), at tiny shapes: odd sizes, channel counts that
are not multiples of the tiles, batch 1 and several faces, NCHW and NHWC, conv (stride 1 and 2),
transposed conv (StyleGAN2's 3x3 and v1's 4x4 stride-2 up-convs) and 1x1. fp32 against the fp32
reference; bf16 under the flash-attention budget against float64.
"""
import os

import torch

from op_checks import grads, skip_unless_interpreted_as_asked, within_budget

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from rlse_fast.ops import dispatch  # noqa: E402
from rlse_fast.ops.perface_conv import ENV, _perface_conv2d_ref, perface_conv2d  # noqa: E402

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0 to a scalar:DeprecationWarning")

# (batch, C_in, C_out, k, H, W, stride, padding, transposed)
CASES = [
    (1, 5, 7, 3, 7, 9, 1, 1, False),      # StyleGAN2's 3x3 conv, batch 1
    (3, 35, 18, 3, 5, 4, 1, 1, False),    # two channel blocks (fp32 BLOCK_K 32), three faces
    (2, 4, 5, 3, 9, 7, 2, 1, False),      # a strided conv (the discriminator's down-conv)
    (2, 6, 5, 3, 5, 4, 2, 0, True),       # StyleGAN2's up-conv: conv_transpose2d 3x3, stride 2
    (2, 5, 6, 4, 4, 5, 2, 1, True),       # v1's fused up-conv: 4x4, stride 2, padding 1
    (3, 9, 3, 1, 6, 5, 1, 0, False),      # to-RGB, 1x1
]
IDS = ["conv3-b1", "conv3-35ch", "conv3-s2", "upconv3", "upconv4-v1", "torgb"]


@pytest.fixture(scope="module", autouse=True)
def kernels_match_device():
    from rlse_fast.ops.triton_kernels.perface_conv import conv_forward_kernel

    skip_unless_interpreted_as_asked(conv_forward_kernel, DEV)


def inputs(case, dtype=torch.float64, nhwc=False, shared=False, seed=0):
    batch, ci, co, k, h, w, *_, transposed = case
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, ci, h, w, generator=g, dtype=torch.float64)
    wshape = (ci, co, k, k) if transposed else (co, ci, k, k)
    wt = torch.randn(*(() if shared else (batch,)), *wshape, generator=g, dtype=torch.float64) / k
    x, wt = x.to(DEV, dtype), wt.to(DEV, dtype)
    return (x.contiguous(memory_format=torch.channels_last) if nhwc else x), wt


def run(impl, case, x, w):
    stride, padding, transposed = case[6:]
    if impl == "ref":
        return grads(lambda x, w: _perface_conv2d_ref(x, w, stride, padding, transposed), x, w)
    return grads(lambda x, w: perface_conv2d(x, w, stride, padding, transposed, impl=impl), x, w)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("nhwc", [False, True], ids=["nchw", "nhwc"])
def test_matches_grouped_conv_fp32(case, nhwc):
    x, w = inputs(case, torch.float32, nhwc)
    y0, (dx0, dw0) = run("ref", case, x, w)
    y1, (dx1, dw1) = run("triton", case, x, w)
    assert y1.shape == y0.shape and dx1.shape == x.shape and dw1.shape == w.shape
    # the output and the input gradient keep x's layout
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    assert y1.is_contiguous(memory_format=fmt) and dx1.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx1, dx0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dw1, dw0, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", [CASES[1], CASES[3]], ids=[IDS[1], IDS[3]])
def test_bf16_within_budget(case):
    """bf16 operands, fp32 accumulation: each direction's error against float64 at most twice
    that of the grouped conv computed in bf16."""
    x, w = inputs(case, torch.float32, nhwc=True)
    up = torch.randn(_perface_conv2d_ref(x, w, *case[6:]).shape, generator=torch.Generator().manual_seed(1),
                     dtype=torch.float64)
    x16, w16 = x.bfloat16(), w.bfloat16()

    def low(impl):
        return grads(lambda a, b: (_perface_conv2d_ref(a, b, *case[6:]) if impl == "ref"
                                   else perface_conv2d(a, b, *case[6:], impl=impl)), x16, w16, upstream=up)
    y_ref, g_ref = low("ref")
    # the reference's own gradients at the same (bf16-rounded) inputs in float64
    y64, g64 = grads(lambda a, b: _perface_conv2d_ref(a, b, *case[6:]), x16.double(), w16.double(), upstream=up)
    y, g = low("triton")
    assert y.dtype == g[0].dtype == g[1].dtype == torch.bfloat16
    within_budget(y, y64, y_ref, "forward")
    within_budget(g[0], g64[0], g_ref[0], "dgrad")
    within_budget(g[1], g64[1], g_ref[1], "wgrad")


@pytest.mark.parametrize("transposed", [False, True])
def test_shared_weight_gets_the_faces_summed_gradient(transposed):
    case = CASES[3] if transposed else CASES[1]
    x, w = inputs(case, torch.float32, shared=True)
    y0, (dx0, dw0) = run("ref", case, x, w)
    y1, (dx1, dw1) = run("triton", case, x, w)
    assert dw1.shape == w.shape
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx1, dx0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dw1, dw0, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("splits", [2, 5])
def test_split_k_weight_gradient_is_the_full_sum_and_deterministic(splits):
    """The split-K weight gradient (pixels split over programs, fp32 partials summed in order)
    equals the reference's and gives the same bits twice; 135 pixels in BLOCK_K = 32 steps: 2
    splits of 96 and 39 pixels, or 5 splits with 7 pixels in the last."""
    from rlse_fast.ops.triton_perface_conv import conv_wgrad, gemm_blocks

    case = (2, 3, 4, 3, 9, 15, 1, 1, False)
    assert gemm_blocks(4, 3, 9 * 15, torch.float32)[2] == 32
    x, w = inputs(case, torch.float32)
    dy = torch.randn(2, 4, 9, 15, generator=torch.Generator().manual_seed(2)).to(DEV)
    _, (_, dw0) = grads(lambda a, b: _perface_conv2d_ref(a, b, 1, 1), x, w, upstream=dy.cpu())
    dw1 = conv_wgrad(dy, x, 1, (1, 1), w, False, splits=splits)
    dw2 = conv_wgrad(dy, x, 1, (1, 1), w, False, splits=splits)
    torch.testing.assert_close(dw1, dw0, rtol=1e-5, atol=1e-5)
    assert torch.equal(dw1, dw2)


@pytest.mark.parametrize("case", [(2, 6, 5, 3, 9, 15, 1, 1, False), (2, 6, 5, 3, 9, 8, 2, 0, True)],
                         ids=["conv3", "upconv3"])
@pytest.mark.parametrize("splits", [1, 3])
def test_weight_gradient_comes_back_in_the_weights_layout(case, splits, monkeypatch):
    """A weight as modulate writes it for the per-face conv ((B, O, kh, kw, I) memory; the up-conv's
    transposed view of it): the weight gradient has the weight's strides (what modulate's backward
    then reads in one coalesced pass), direct or split-K, and the reference's values."""
    from rlse_fast.ops import triton_perface_conv as tp
    from rlse_fast.ops.layout import taps_last

    def forced(tiles, npix, bk, sms):  # `splits` splits of whole BLOCK_K steps
        chunk = tp.triton.cdiv(tp.triton.cdiv(npix, bk), splits) * bk
        used.append(tp.triton.cdiv(npix, chunk))
        return used[-1], chunk

    used = []
    monkeypatch.setattr(tp, "wgrad_splits", forced)
    x, w = inputs(case, torch.float32, nhwc=True)
    transposed = case[-1]
    w = taps_last(w.transpose(1, 2)).transpose(1, 2) if transposed else taps_last(w)
    seen = []
    real = tp.conv_wgrad
    monkeypatch.setattr(tp, "conv_wgrad", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    _, (_, dw0) = run("ref", case, x, w)
    _, (_, dw1) = run("triton", case, x, w)
    assert len(seen) == 1 and seen[0].stride() == w.stride() and used == [splits]
    torch.testing.assert_close(dw1, dw0, rtol=1e-5, atol=1e-5)


def test_split_count_fills_the_device():
    from rlse_fast.ops.triton_perface_conv import wgrad_splits

    # StyleGAN2 1024 px, 32 -> 32 channels, one face: 9 tiles, 1M pixels -> about 4 programs per SM
    splits, chunk = wgrad_splits(9, 1024 * 1024, 64, 132)
    assert splits == 59 and chunk % 64 == 0 and (splits - 1) * chunk < 1024 * 1024 <= splits * chunk
    assert wgrad_splits(10_000, 1024, 64, 132) == (1, 1024)  # enough tiles: no split


def test_autocast_runs_in_the_autocast_dtype():
    case = CASES[0]
    x, w = inputs(case, torch.float32)
    with torch.autocast(DEV.type, dtype=torch.bfloat16):
        y0 = _perface_conv2d_ref(x, w, 1, 1)
        y1 = perface_conv2d(x, w, 1, 1, impl="triton")
    assert y1.dtype == y0.dtype == torch.bfloat16
    torch.testing.assert_close(y1.float(), y0.float(), rtol=2e-2, atol=2e-2)


def test_bad_arguments_say_what_is_wrong():
    x = torch.zeros(2, 3, 5, 5, device=DEV)
    with pytest.raises(ValueError, match="C_in"):
        perface_conv2d(x, torch.zeros(2, 4, 5, 3, 3, device=DEV), impl="triton")
    with pytest.raises(ValueError, match="batch 2"):
        perface_conv2d(x, torch.zeros(3, 4, 3, 3, 3, device=DEV), impl="triton")
    with pytest.raises(ValueError, match="empty output"):
        perface_conv2d(x, torch.zeros(2, 4, 3, 7, 7, device=DEV), impl="triton")
    with pytest.raises(ValueError, match="dtype"):
        perface_conv2d(x, torch.zeros(2, 4, 3, 3, 3, device=DEV, dtype=torch.float64), impl="triton")


def test_auto_takes_the_grouped_conv_unless_asked(monkeypatch):
    from rlse_fast.ops import perface_conv

    x = torch.zeros(1, 2, 3, 3)
    monkeypatch.delenv(ENV, raising=False)
    assert not perface_conv.chosen(x)
    assert dispatch.pick("perface_conv2d", "auto", x) is None
    monkeypatch.setenv(ENV, "triton")
    assert perface_conv.chosen(x) == (DEV.type == "cpu")  # the interpreter on the CPU, CUDA tensors on a GPU
    assert not perface_conv.chosen(x.double())  # no float64 kernel: the reference


def tiny_generator(module, perturb=True, **cfg):
    """An 8 px generator of `module` (stylegan2 or stylegan1) on DEV, two faces' W+ latents and
    per-face copies of its synthesis parameters (as RLSE fine-tunes them), optionally made to differ."""
    from rlse_fast.engine.state import per_face_params

    torch.manual_seed(0)
    G = module.Generator(module.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, mapping_layers=1,
                                                channel_base=64, **cfg)).to(DEV)
    params = per_face_params(G, 2)
    if perturb:
        with torch.no_grad():
            for p in params.values():
                p.add_(0.1 * torch.randn_like(p))
    return G, torch.randn(2, G.synthesis.num_ws, 8, device=DEV), params


def image_and_grads(G, ws, params, **kwargs):
    """The synthesised image and each per-face parameter's gradient for a fixed upstream gradient."""
    ps = {k: p.detach().clone().requires_grad_(True) for k, p in params.items()}
    img = G.synthesis(ws, params=ps, **kwargs)
    img.backward(torch.randn(img.shape, generator=torch.Generator().manual_seed(5)).to(DEV))
    return img.detach(), {k: p.grad for k, p in ps.items()}


def uncopied(a):
    """Whether the weight of a per-face conv (its _PerFaceConv.apply args) goes to the kernels as it is."""
    from rlse_fast.ops.triton_perface_conv import packed

    return packed(a[1], a[0].shape[0]).data_ptr() == a[1].data_ptr()


def spy_on_perface(monkeypatch, record, fused=False):
    """A list that gets record(args of _PerFaceConv.apply) for every per-face conv the op runs (fused:
    of _PerFaceConvAct.apply, the conv with the layer's epilogue; its first two args are x and w too)."""
    from rlse_fast.ops import triton_perface_conv, triton_perface_conv_act

    calls = []
    cls = triton_perface_conv_act._PerFaceConvAct if fused else triton_perface_conv._PerFaceConv
    real = cls.apply
    monkeypatch.setattr(cls, "apply", lambda *a: calls.append(record(a)) or real(*a))
    return calls


def assert_same_run(run0, run1, scale=lambda name, g: 1 + g.abs().max().item()):
    """Same image (float32 rounding) and the same gradient for every parameter, each to 1e-5 of
    scale(name, its gradient)."""
    (img0, g0), (img1, g1) = run0, run1
    torch.testing.assert_close(img1, img0, rtol=1e-5, atol=1e-5)
    assert g1.keys() == g0.keys()
    for k in g0:
        if g0[k] is None:
            assert g1[k] is None, k
            continue
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-4, atol=1e-5 * scale(k, g0[k]), msg=k)


def test_stylegan2_generator_through_the_perface_conv_matches_the_grouped_path(monkeypatch):
    """A tiny StyleGAN2 with per-face parameters: RLSE_PERFACE_CONV=triton sends its modulated convs
    (3x3, the 3x3 up-convs, to-RGB) to the per-face kernels; the image and the gradients of every
    per-face parameter match the default grouped-conv path."""
    from rlse_fast.models import stylegan2
    from rlse_fast.ops.perface_conv import chosen

    G, ws, params = tiny_generator(stylegan2, channel_max=16)
    monkeypatch.delenv(ENV, raising=False)
    run0 = image_and_grads(G, ws, params)
    monkeypatch.setenv(ENV, "triton")
    assert chosen(run0[0])
    calls = spy_on_perface(monkeypatch, lambda a: (a[4], uncopied(a)))
    run1 = image_and_grads(G, ws, params)
    transposed = [t for t, _ in calls]
    assert transposed.count(True) == 1 and transposed.count(False) == 4  # conv 4, up-conv + conv 8, 2 to-RGB
    assert all(ok for _, ok in calls)  # modulate wrote each weight in the layout the kernels read
    assert_same_run(run0, run1)


def test_stylegan1_generator_through_the_perface_conv_matches_the_grouped_path(monkeypatch):
    """StyleGAN v1 with per-face parameters, its fused 4x4 up-convs (stride-2 transposed) from 8 px
    (on the CPU too, as on a GPU): RLSE_PERFACE_CONV=triton runs every per-face conv on the
    kernels; same image and gradients."""
    from rlse_fast.models import stylegan1
    from rlse_fast.models.stylegan1 import layers

    monkeypatch.setattr(layers, "CPU_FUSED_MIN_RESOLUTION", 8)
    G, ws, params = tiny_generator(stylegan1, perturb=False, channel_max=8, fused_min_resolution=8)
    monkeypatch.delenv(ENV, raising=False)
    run0 = image_and_grads(G, ws, params)
    monkeypatch.setenv(ENV, "triton")
    transposed = spy_on_perface(monkeypatch, lambda a: a[4])
    run1 = image_and_grads(G, ws, params)
    assert True in transposed and False in transposed
    # Layer 0 instance-normalises the constant input, whose planes are nearly flat: its gradients are
    # large (about 1e6 here) and its bias gradient is their cancellation (noise of float32 rounding
    # at that scale), so layer 0's parameters are compared at the scale of the const gradient.
    const = run0[1]["const"].abs().max().item()
    assert_same_run(run0, run1, lambda k, g: const if k.startswith(("const", "layer0.")) else g.abs().max().item())


@pytest.mark.parametrize("fused_fir", [None, "triton"], ids=["separate-fir", "fused-fir"])
def test_stylegan2_channels_last_batch_runs_whole_through_the_perface_conv(monkeypatch, fused_fir):
    """channels_last=True runs a batch one face at a time on the grouped conv; with the per-face
    conv chosen it runs whole, NHWC throughout (with the up-layers' fused FIR tail and the 3x3
    layers' fused epilogue, or without): the same image and per-face gradients (weights, biases,
    noise strengths), and every conv sees both faces at once."""
    from rlse_fast.models import stylegan2
    from rlse_fast.models.stylegan2 import fused_up

    G, ws, params = tiny_generator(stylegan2, channel_max=16)
    monkeypatch.delenv(ENV, raising=False)
    with fused_up.using(fused_fir):
        run0 = image_and_grads(G, ws, params, channels_last=True)
        monkeypatch.setenv(ENV, "triton")
        def record(a):
            return a[0].shape[0], a[0].is_contiguous(), uncopied(a)

        batches = spy_on_perface(monkeypatch, record)
        epilogues = spy_on_perface(monkeypatch, record, fused=True)
        run1 = image_and_grads(G, ws, params, channels_last=True)
    # 8 px: b4 conv + to-RGB, b8 up-conv + conv + to-RGB; both faces at once, NHWC after b4; fused, the
    # b8 conv (NHWC in) takes its epilogue with it
    assert len(epilogues) == (1 if fused_fir else 0) and len(batches) + len(epilogues) == 5
    batches += epilogues
    assert {b for b, *_ in batches} == {2} and sum(c for _, c, _ in batches) <= 2
    assert all(ok for *_, ok in batches)
    assert_same_run(run0, run1)


@pytest.mark.parametrize("up", [1, 2], ids=["conv3", "upconv3"])
def test_modulated_weights_reach_the_kernels_without_a_copy(monkeypatch, up):
    """modulated_conv2d with the per-face conv chosen: `modulate` writes the conv's weight layout and
    `packed` passes it through (for the up-conv, conv2d_resample's transposed view of it, unflipped):
    the kernels read the very memory modulate wrote, forward and backward, and the result and the
    gradients are the grouped path's."""
    from rlse_fast.models.stylegan2 import layers
    from rlse_fast.ops import setup_filter
    from rlse_fast.ops import triton_perface_conv as tp

    written, seen = [], []
    real_modulate, real_packed = layers.modulate, tp.packed

    def modulate(*args, **kwargs):
        written.append(real_modulate(*args, **kwargs))
        return written[-1]

    def packed(w, batch):
        seen.append((w.data_ptr(), real_packed(w, batch).data_ptr()))
        return real_packed(w, batch)

    monkeypatch.setattr(layers, "modulate", modulate)
    monkeypatch.setattr(tp, "packed", packed)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 6, 7, generator=g).to(DEV).contiguous(memory_format=torch.channels_last)
    weight, styles = torch.randn(2, 4, 5, 3, 3, generator=g).to(DEV), torch.randn(2, 5, generator=g).to(DEV) + 1
    noise = torch.randn(2, 1, 6 * up, 7 * up, generator=g).to(DEV)

    def conv(x, weight, styles):
        return layers.modulated_conv2d(x, weight, styles, noise=noise, up=up, padding=1,
                                       resample_filter=setup_filter([1, 3, 3, 1]).to(DEV), flip_weight=up == 1)

    monkeypatch.delenv(ENV, raising=False)
    y0, g0 = grads(conv, x, weight, styles)
    monkeypatch.setenv(ENV, "triton")
    written.clear()
    y1, g1 = grads(conv, x, weight, styles)
    assert len(written) == 1 and seen == [(written[0].data_ptr(),) * 2]
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
