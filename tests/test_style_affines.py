"""All style affines of a synthesis network in one product (rlse_fast/models/style_affines.py,
`FastOptions.packed_styles`), both backbones: the packed styles against each layer's own affine
(forward to float rounding, the packed leaves' gradients against the per-layer copies', bf16 within
twice the per-layer error against float64), the op census with the option (fewer ops, no gradient
copy for the affines), and the fast loop with it against the loop without it."""
import copy
from pathlib import Path

import pytest
import torch
from fast_runs import assert_same_trajectory
from gan_files import tiny_gan

from rlse_fast import gaussian_fit
from rlse_fast.checkpoints import load_gan
from rlse_fast.config import RLSEConfig
from rlse_fast.engine.fast import FastLoop, super_resolve_fast
from rlse_fast.engine.state import per_face_params
from rlse_fast.models.style_affines import PackedAffines, StyleAffine
from rlse_fast.models.stylegan1.layers import adain_style, dense

BACKBONES = ("stylegan2", "stylegan1")
V1_PKL = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "sg1_r128_official.pkl"
pytestmark = pytest.mark.usefixtures("one_thread")


def layer_styles(G, params, ws):
    """{key: (B, C)} by each layer's own code: SG2's affine (ToRGB's times its weight gain), v1's
    StyleMod dense layer split into AdaIN's scale and shift."""
    syn, out = G.synthesis, {}
    for a in syn.style_affines():
        layer_name = a.key.rsplit(".", 1)[0]
        mine = {k[len(layer_name) + 1:]: v for k, v in params.items() if k.startswith(layer_name + ".")}
        w = ws[:, a.w_index]
        if a.affine.endswith(".style"):  # v1
            style = dense(w, mine["style.weight"], mine["style.bias"], gain=1.0)
            out[a.key] = adain_style(style)[0 if a.key.endswith(".scale") else 1]
        elif a.key.endswith("torgb.styles"):
            layer = syn.get_submodule(layer_name)
            out[a.key] = layer.affine(w, weight=mine["affine.weight"], bias=mine["affine.bias"]) * layer.weight_gain
        else:
            out[a.key] = syn.get_submodule(layer_name).styles(w, mine)
    return out


def perturbed_params(G, batch, seed):
    """Per-face copies, each face's a little different (as after some fine-tuning steps)."""
    gen = torch.Generator().manual_seed(seed)
    params = per_face_params(G, batch)
    with torch.no_grad():
        for p in params.values():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return params


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("batch", [1, 3])
def test_packed_styles_equal_the_layers_affines_and_their_gradients(census_nets, backbone, batch):
    G, _ = census_nets[backbone]
    params = perturbed_params(G, batch, seed=batch)
    packed = PackedAffines(G.synthesis, params)
    gen = torch.Generator().manual_seed(7)
    ws = torch.randn(batch, G.num_ws, G.w_dim, generator=gen)
    ws_a, ws_b = ws.clone().requires_grad_(True), ws.clone().requires_grad_(True)
    ref = layer_styles(G, params, ws_a)
    got = packed.styles(ws_b)
    assert list(got) == list(ref)
    for k in ref:
        assert got[k].shape == ref[k].shape and got[k].is_contiguous(), k
        torch.testing.assert_close(got[k], ref[k], rtol=1e-5, atol=1e-6)
    # The views carry the per-face copies' values, under the same names.
    views = packed.views()
    assert {k for k in params if k.endswith((".affine.weight", ".affine.bias", ".style.weight", ".style.bias"))} \
        == set(views)
    for k, v in views.items():
        assert torch.equal(v, params[k]) and v._base is (packed.weight if v.ndim == 3 else packed.bias), k
    # Gradients of a random functional of all styles: the leaves' slices against the per-layer copies'.
    probes = {k: torch.randn(v.shape, generator=gen) for k, v in ref.items()}
    sum((ref[k] * probes[k]).sum() for k in ref).backward()
    sum((got[k] * probes[k]).sum() for k in got).backward()
    assert packed.weight.grad.is_contiguous() and packed.weight.grad.shape == packed.weight.shape
    first = 0
    for a in G.synthesis.style_affines():
        rows = slice(first, first + a.width)
        torch.testing.assert_close(packed.weight.grad[:, rows], params[a.affine + ".weight"].grad[:, a.start:a.stop],
                                   rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(packed.bias.grad[:, rows], params[a.affine + ".bias"].grad[:, a.start:a.stop],
                                   rtol=1e-5, atol=1e-6)
        first += a.width
    torch.testing.assert_close(ws_b.grad, ws_a.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_packed_styles_in_the_network_give_its_image(census_nets, backbone):
    """G.synthesis with params[key] made by the packed product gives the image of its own affines."""
    G, _ = census_nets[backbone]
    params = perturbed_params(G, 2, seed=3)
    packed = PackedAffines(G.synthesis, params)
    ws = torch.randn(2, G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a = G.synthesis(ws, params=params)
        styles = packed.styles(ws)
        b = G.synthesis(ws, params={**params, **packed.views(), **styles})
        # The styles are what the layers read: a wrong one changes the image.
        key = G.synthesis.style_affines()[-1].key
        wrong = {**params, **styles, key: styles[key] * 1.01}
        c = G.synthesis(ws, params=wrong)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    assert (c - a).abs().max() > 1e-4


@pytest.mark.parametrize("backbone", BACKBONES)
def test_bf16_packed_styles_within_twice_the_layers_error(census_nets, backbone):
    """Under bf16 autocast both run their products in bf16 (bias, gain and offset in fp32): against
    the float64 per-layer styles, the packed error is at most twice the layers' own bf16 error."""
    G, _ = census_nets[backbone]
    params = {k: v.detach() for k, v in perturbed_params(G, 2, seed=5).items()}
    ws = torch.randn(2, G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(6))
    G64 = copy.deepcopy(G).double()
    exact = layer_styles(G64, {k: v.double() for k, v in params.items()}, ws.double())
    packed = PackedAffines(G.synthesis, params)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        own = layer_styles(G, params, ws)
        got = packed.styles(ws)
    err_own = max((own[k].double() - exact[k]).abs().max().item() for k in exact)
    err_got = max((got[k].double() - exact[k]).abs().max().item() for k in exact)
    assert all(got[k].dtype == own[k].dtype == torch.float32 for k in exact)
    assert 0 < err_got <= 2 * err_own, (err_got, err_own)


def test_bad_layouts_are_refused(census_nets):
    G, _ = census_nets["stylegan2"]
    params = per_face_params(G, 1)

    class NoList:
        num_ws = G.num_ws

    with pytest.raises(ValueError, match="lists no style affines"):
        PackedAffines(NoList(), params)

    class Swapped:  # v1's scale and shift runs listed in the wrong order: no longer one view
        num_ws = G.num_ws

        def style_affines(self):
            a = StyleAffine("x.scale", "b4.conv1.affine", 0, 0, 32, 0.125)
            b = StyleAffine("x.shift", "b4.conv1.affine", 0, 32, 64, 0.125)
            return [b, a]

    with pytest.raises(ValueError, match="must follow each other"):
        PackedAffines(Swapped(), params)

    class Short:
        num_ws = G.num_ws

        def style_affines(self):
            return [StyleAffine("x.styles", "b4.conv1.affine", 0, 0, 8, 0.125)]

    with pytest.raises(ValueError, match="rows listed"):
        PackedAffines(Short(), params)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_census_fewer_ops_and_no_gradient_copy_for_the_affines(census, backbone):
    """One warm fp32 iteration (the census' dispatch mode): with packed styles, fewer ops, one bmm for
    the affines forward and two backward (was one per layer each way), and no copy of an affine's
    gradient before the fused Adam; none is left (v1's AdaIN bias and noise-strength gradients come
    contiguous from the epilogue's sums)."""
    counts = {}
    for packed in (False, True):
        loop = census.make_loop(backbone, "fp32", False, packed_styles=packed)
        loop.step()
        counts[packed] = census.census(loop)
        if packed:
            b = loop.buffers
            assert b.affines is not None and {id(b.affines.weight), id(b.affines.bias)} <= {id(t) for t in b.leaves}
    layers = len({a.affine for a in census.networks(backbone)[0].synthesis.style_affines()})

    def adam_copies(s):
        return sum(n for phase, cls, name, site, n in s["sites"] if "fused_adam.py" in site)

    def bmm(s, phase):
        return sum(n for p, c, name, n in s["ops"] if name == "bmm" and p == phase)

    off, on = counts[False], counts[True]
    assert on["kernels"] < off["kernels"] - 4 * layers, (on["kernels"], off["kernels"])
    assert adam_copies(off) - adam_copies(on) == layers, (adam_copies(off), adam_copies(on))
    assert adam_copies(on) == 0
    assert bmm(off, "forward") - bmm(on, "forward") == layers - 1  # the rest are the objective's
    assert bmm(off, "backward") - bmm(on, "backward") == 2 * (layers - 1)


@pytest.fixture(scope="module")
def tiny():
    G, D = tiny_gan(seed=5)
    fit = gaussian_fit.compute(G, 4096)
    lr = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    return G, D, fit, lr


@pytest.fixture(scope="module")
def v1_reference():
    """StyleGAN v1's reference network (128 px) and two of its own faces at 16 px: the census' random
    v1 network is too chaotic for a trajectory comparison (1% apart after 4 steps)."""
    if not V1_PKL.is_file():
        pytest.skip("../shared/reference/sg1_r128_official.pkl absent")
    gan = load_gan(V1_PKL)
    G, D = gan.generator, gan.discriminator
    with torch.no_grad():
        hr = (G(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(3))) + 1) / 2
    return G, D, gaussian_fit.compute(G, 4096), torch.nn.functional.avg_pool2d(hr.clamp(0, 1), 8)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_fast_loop_with_packed_styles_follows_the_loop_without(request, backbone, channels_last):
    """A few fp32 steps with fine-tuning: the packed run's trajectory is the per-layer one to float
    rounding (`assert_same_trajectory`), and the per-face affine views follow the leaves' updates."""
    G, D, fit, lr = request.getfixturevalue("tiny" if backbone == "stylegan2" else "v1_reference")
    cfg = RLSEConfig(steps=5)
    a = super_resolve_fast(G, D, lr, cfg, fit, seeds=[1, 2], precision="fp32", channels_last=channels_last)
    loop = FastLoop(G, D, lr, cfg, fit, seeds=[1, 2], precision="fp32", channels_last=channels_last,
                    packed_styles=True)
    for _ in range(cfg.steps):
        loop.step()
    b = loop.result()
    assert loop.buffers.affines is not None and not torch.equal(a.images, b.images)  # the packed product ran
    assert_same_trajectory(a, b)
    buf = loop.buffers
    name = G.synthesis.style_affines()[0].affine + ".weight"
    assert torch.equal(buf.params[name], buf.affines.weight[:, :buf.params[name].shape[1]])
    assert not torch.equal(buf.params[name], per_face_params(G, 2)[name])  # fine-tuned through the leaf


def test_without_fine_tuning_packed_styles_change_nothing(tiny):
    """PULSE (no per-face copies): the layers' shared affines run as they are, bit for bit."""
    G, _, fit, lr = tiny
    cfg = RLSEConfig.from_mode("pulse", steps=3)
    a = super_resolve_fast(G, None, lr, cfg, fit, seeds=[1, 2], precision="fp32")
    loop = FastLoop(G, None, lr, cfg, fit, seeds=[1, 2], precision="fp32", packed_styles=True)
    for _ in range(cfg.steps):
        loop.step()
    assert loop.buffers.affines is None
    assert torch.equal(loop.result().images, a.images)
