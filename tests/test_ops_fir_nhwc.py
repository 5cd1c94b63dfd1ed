"""The fused NHWC FIR + noise + bias + leaky ReLU op (rlse_fast/ops/fir_act.py, Triton kernels in
rlse_fast/ops/triton_kernels/fir_nhwc.py) against the composition of today's reference ops.

Without a GPU the kernels run on CPU tensors under the Triton interpreter (TRITON_INTERPRET=1 before
triton is imported, as in test_ops_triton.py), a few milliseconds per program instance: shapes are
tiny, and the tiles are shrunk (`small_tiles`) so that these shapes still span several row strips,
column blocks and channel blocks, with edges that are not multiples of a tile. With a GPU the same
tests run the compiled kernels at the default tiles.
"""
import math
import os

import torch

from op_checks import skip_unless_interpreted_as_asked, within_budget

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

triton = pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from rlse_fast.ops import dispatch  # noqa: E402
from rlse_fast.ops.fir_act import _fir_bias_act_ref, fir_bias_act  # noqa: E402
from rlse_fast.ops.upfirdn2d import setup_filter  # noqa: E402

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0 to a scalar:DeprecationWarning")
F4 = setup_filter([1, 3, 3, 1])  # StyleGAN2's filter, 2-D as the models hold it
NAMES = ("x", "noise", "strength", "bias")


@pytest.fixture(scope="module", autouse=True)
def kernels_match_device():
    from rlse_fast.ops import triton_fir
    from rlse_fast.ops.triton_kernels.fir_nhwc import fir_act_forward_kernel

    skip_unless_interpreted_as_asked(fir_act_forward_kernel, DEV)
    return triton_fir


@pytest.fixture
def small_tiles(monkeypatch, kernels_match_device):
    """Tiles of 4 pixels x 2 channels in strips of 4 rows: odd sizes then cross every kind of tile
    edge (the default tiles hold these tiny images whole but for the 8-row strips)."""
    monkeypatch.setattr(kernels_match_device, "tiles", lambda c, h, w: (4, 4, 2))


def inputs(batch, c, h, w, noise="shared", strength="scalar", bias="shared", dtype=torch.float32, pad=(1, 1, 1, 1),
           k=4, seed=0):
    """(x channels-last in dtype, noise, strength, bias) for an output of the filter with `pad`; the
    noise map, strength and bias float32 (float64 with float64 x) as the networks hold them."""
    gen = torch.Generator().manual_seed(seed)
    par = torch.float64 if dtype == torch.float64 else torch.float32

    def rand(*shape, dt=par):
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(device=DEV, dtype=dt)

    ho, wo = h + pad[2] + pad[3] - k + 1, w + pad[0] + pad[1] - k + 1
    x = rand(batch, c, h, w, dt=dtype).contiguous(memory_format=torch.channels_last)
    n = {None: None, "map": rand(ho, wo), "shared": rand(1, 1, ho, wo), "per_sample": rand(batch, 1, ho, wo)}[noise]
    s = {"scalar": rand(), "per_sample": rand(batch)}[strength]
    b = {None: None, "shared": rand(c), "per_sample": rand(batch, c)}[bias]
    return [x, n, s, b]


def run(impl, ins, f=F4, pad=(1, 1, 1, 1), gain=4, clamp=None, trained=(True,) * 4, upstream=None):
    """The op's output and its inputs' gradients (None where not `trained`) for a fixed upstream
    gradient, rounded to `upstream` (a dtype) first when given."""
    leaves = [t.detach().clone().requires_grad_(bool(tr)) if t is not None else None for t, tr in zip(ins, trained)]
    x, n, s, b = leaves
    if impl == "ref":
        y = _fir_bias_act_ref(x, f, pad, gain, n, s, b, clamp=clamp)
    else:
        y = fir_bias_act(x, f, pad, gain, n, s, b, clamp=clamp, impl=impl)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y.backward(g.to(upstream or y.dtype).to(device=y.device, dtype=y.dtype))
    return y.detach(), [t.grad if t is not None else None for t in leaves]


def assert_matches_ref(ins, rtol=1e-5, atol=1e-5, **kw):
    y0, g0 = run("ref", ins, **kw)
    y1, g1 = run("triton", ins, **kw)
    assert y1.dtype == y0.dtype and y1.shape == y0.shape
    assert y1.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y1, y0, rtol=rtol, atol=atol)
    for name, a, b in zip(NAMES, g1, g0):
        if b is None:
            assert a is None, name
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, name
        torch.testing.assert_close(a, b, rtol=rtol * 10, atol=atol * 10 * (1 + b.abs().max().item()), msg=name)


# --- every epilogue, forward and backward, float32 -----------------------------------------------


@pytest.mark.parametrize("noise", [None, "shared"])
@pytest.mark.parametrize("bias", [None, "shared"])
@pytest.mark.parametrize("clamp", [None, 0.7])
def test_every_epilogue_matches_ref(noise, bias, clamp):
    # The up-layer's shapes: a stride-2 transposed conv's 2H+1 output, padding 1 -> 2H (two strips).
    assert_matches_ref(inputs(2, 3, 11, 7, noise=noise, bias=bias), clamp=clamp)


def test_tile_edges(small_tiles):
    """Several strips, column blocks and channel blocks, none of them full at the far edges."""
    assert_matches_ref(inputs(2, 3, 7, 6, noise="per_sample", strength="per_sample", bias="per_sample"), clamp=0.8)


@pytest.mark.parametrize("batch, c, h, w, noise, strength, bias", [
    (1, 5, 7, 13, "map", "scalar", "per_sample"),
    (3, 4, 9, 6, "per_sample", "per_sample", "per_sample"),
    (2, 1, 5, 5, "shared", "per_sample", "shared"),
])
def test_batches_and_per_sample_parameters(batch, c, h, w, noise, strength, bias):
    assert_matches_ref(inputs(batch, c, h, w, noise=noise, strength=strength, bias=bias), clamp=0.9)


@pytest.mark.parametrize("f, pad", [
    (setup_filter([1, 3, 3, 1]), (0, 3, 2, 0)),  # every leading padding the kernels take, uneven
    (setup_filter([1, 3, 3, 1]), (3, 0, 0, 2)),
    (setup_filter([1, 2, 1], separable=True), (1, 1, 2, 0)),  # 1-D, 3 taps
    (setup_filter([1, 1]), (0, 1, 1, 0)),  # 2 taps
    (setup_filter([1, 2, 3, 4]), (2, 1, 1, 2)),  # asymmetric: the flip matters
])
def test_filters_and_paddings(f, pad):
    k = f.shape[-1]
    assert_matches_ref(inputs(2, 3, 7, 6, pad=pad, k=k), f=f, pad=pad)


def test_untrained_inputs_get_no_gradient():
    ins = inputs(2, 3, 7, 7, noise="per_sample", strength="per_sample", bias="per_sample")
    for trained in ((True, False, True, False), (False, True, False, True)):
        assert_matches_ref(ins, trained=trained)


def test_float64_matches_ref_closely():
    """float64 math throughout, but for alpha and the gains, which reach the kernels as float32."""
    assert_matches_ref(inputs(2, 3, 7, 8, dtype=torch.float64, bias="per_sample"), rtol=1e-7, atol=1e-7, clamp=0.8)


def test_unsupported_filters_run_the_separate_ops():
    """A 2-D filter that is no outer product, or a leading padding past 3, still gives the
    reference's values (through upfirdn2d + bias_act)."""
    f = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0], [3.0, 0.0, 1.0]])
    assert_matches_ref(inputs(1, 2, 6, 5, k=3), f=f)
    assert_matches_ref(inputs(1, 2, 5, 5, pad=(4, 0, 1, 1), k=4), pad=(4, 0, 1, 1))


@pytest.mark.skipif(DEV.type != "cuda", reason="the interpreter runs programs one after another: only a GPU "
                    "could reorder the reductions")
def test_backward_is_deterministic():
    """Partial sums per program, added in a fixed order: two backward passes give the same bits
    (a 65 px layer of 32 channels spreads the sums over dozens of programs)."""
    ins = inputs(3, 32, 66, 66, noise="per_sample", strength="per_sample", bias="shared", dtype=torch.bfloat16)
    _, g1 = run("triton", ins, clamp=2.0)
    _, g2 = run("triton", ins, clamp=2.0)
    for name, a, b in zip(NAMES, g1, g2):
        assert torch.equal(a, b), name


# --- reduced precision ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("clamp", [None, 1.5])
def test_low_precision_budget(dtype, clamp):
    """Flash-attention rule against the float64 reference, forward and every gradient (the float64
    run gets the same rounded upstream gradient: its rounding is the input's, not an error)."""
    ins = inputs(2, 3, 9, 7, noise="per_sample", strength="per_sample", bias="shared", dtype=dtype)
    y64, g64 = run("ref", [t.double() for t in ins], clamp=clamp, upstream=dtype)
    yr, gr = run("ref", ins, clamp=clamp)
    yk, gk = run("triton", ins, clamp=clamp)
    assert yk.dtype == dtype
    within_budget(yk, y64, yr, f"{dtype} y")
    for name, a, b, r in zip(NAMES, gk, g64, gr):
        within_budget(a, b, r, f"{dtype} d{name}")


# --- arguments and dispatch -----------------------------------------------------------------------


def test_bad_shapes_say_what_is_expected():
    x, n, s, b = inputs(2, 3, 7, 7)
    with pytest.raises(ValueError, match="noise must be"):
        fir_bias_act(x, F4, 1, 4, n[..., :-1], s, b, impl="triton")
    with pytest.raises(ValueError, match="noise must hold 1 or 2 maps"):
        fir_bias_act(x, F4, 1, 4, torch.cat([n, n, n]), s, b, impl="triton")
    with pytest.raises(ValueError, match="bias must be"):
        fir_bias_act(x, F4, 1, 4, n, s, b[:2], impl="triton")
    with pytest.raises(ValueError, match="strength must hold"):
        fir_bias_act(x, F4, 1, 4, n, torch.ones(3, device=DEV), b, impl="triton")


def test_auto_takes_the_kernel_only_for_nhwc_gpu_tensors(kernels_match_device):
    nhwc = torch.empty(2, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    assert dispatch.pick("fir_bias_act", "auto", nhwc) is None  # CPU: never the interpreter
    assert not kernels_match_device.auto_usable(nhwc)
    if DEV.type == "cuda":
        assert kernels_match_device.auto_usable(nhwc.cuda())
        assert not kernels_match_device.auto_usable(torch.empty(2, 4, 3, 3, device="cuda"))


def test_default_gain_is_the_layers():
    """act_gain defaults to sqrt(2) and alpha to 0.2, as StyleGAN2's lrelu."""
    x = torch.full((1, 1, 4, 4), -1.0)
    y = _fir_bias_act_ref(x, setup_filter([1]), 0, 1)
    torch.testing.assert_close(y, torch.full_like(x, -0.2 * math.sqrt(2)))


# --- the generator's up-layers (models/stylegan2/fused_up.py) -------------------------------------


def test_generator_up_layers_fused_match_the_separate_ops(monkeypatch, kernels_match_device):
    """A tiny generator on the channels-last path (16 px, two faces, run one at a time), its
    up-layers fused (the Triton kernels) or not: the same image and the same gradients for the
    latents, a trained noise map and per-face weights, biases and noise strengths (the fast
    engine's leaves)."""
    from gan_files import tiny_gan

    from rlse_fast.models.stylegan2 import GeneratorConfig, fused_up

    batch = 2
    calls = []
    fused = kernels_match_device._FirBiasAct
    apply = fused.apply
    monkeypatch.setattr(fused, "apply", lambda *a: calls.append(a[0].shape) or apply(*a))

    G, _ = tiny_gan(g_cfg=GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, mapping_layers=1,
                                          channel_base=128, channel_max=16))
    G = G.to(DEV)
    gen = torch.Generator().manual_seed(3)

    def rand(*shape):
        return torch.randn(shape, generator=gen).to(DEV)

    syn = G.synthesis
    ws = rand(batch, syn.num_ws, G.cfg.w_dim)
    noise = [None] * G.cfg.num_noise
    noise[1] = rand(1, 1, 8, 8)  # b8.conv0's map, trained
    params = {"b8.conv0.bias": rand(batch, syn.b8.conv0.bias.shape[0]) * 0.1,
              "b16.conv0.noise_strength": rand(batch) * 0.1 + syn.b16.conv0.noise_strength.detach(),
              "b16.conv0.weight": (syn.b16.conv0.weight.detach().expand(batch, -1, -1, -1, -1)
                                   + rand(batch, 1, 1, 1, 1) * 0.1)}

    def run(impl):
        leaves = [t.clone().requires_grad_(True) for t in [ws, noise[1], *params.values()]]
        ns = list(noise)
        ns[1] = leaves[1]
        with fused_up.using(impl):
            img = syn(leaves[0], noise=ns, params=dict(zip(params, leaves[2:])), channels_last=True)
        g = torch.randn(img.shape, generator=torch.Generator().manual_seed(5)).to(DEV)
        return img.detach(), torch.autograd.grad((img * g).sum(), leaves)

    img0, g0 = run(None)
    assert not calls
    img1, g1 = run("triton")
    assert len(calls) == 2 * batch  # b8 and b16's up-layers, a face at a time
    torch.testing.assert_close(img1, img0, rtol=1e-4, atol=1e-5)
    for name, a, b in zip(["ws", "noise", *params], g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * (1 + b.abs().max().item()), msg=name)


def test_up_layers_take_the_fused_path_only_when_asked():
    from gan_files import tiny_gan

    from rlse_fast.models.stylegan2 import fused_up

    G, _ = tiny_gan()
    layer = G.synthesis.b16.conv0
    x = torch.randn(1, layer.weight.shape[1], 8, 8).contiguous(memory_format=torch.channels_last)
    assert not fused_up.applies(layer, x, True)
    with fused_up.using("auto"):
        assert fused_up.applies(layer, x, True)
        assert not fused_up.applies(layer, x.contiguous(), True)  # NCHW: the separate ops
        assert not fused_up.applies(G.synthesis.b16.conv1, x, True)  # not an up-layer
        assert not fused_up.applies(layer, x.half(), True)
