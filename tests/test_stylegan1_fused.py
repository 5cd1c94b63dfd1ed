"""StyleGAN v1's fused resampling convolutions against the unfused layers they replace, at every
resolution: TF fuses only from 128 px up, our networks everywhere, which is exact up to float
rounding. Forward and backward (input and weight gradients), shared and per-face weights."""
import pytest
import torch
import torch.nn.functional as F

from op_checks import grads
from rlse_fast.models.stylegan1.layers import conv_down, conv_weight, fused_kernel, up_conv

RESOLUTIONS = [8, 16, 32, 64, 128, 256, 512, 1024]


def _rand(*shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _check_fused(op, x, w, **kw):
    """fused and unfused `op` agree in float64 to rounding, forward and both gradients."""
    y0, g0 = grads(lambda x, w: op(x, w, False, **kw), x, w)
    y1, g1 = grads(lambda x, w: op(x, w, True, **kw), x, w)
    assert y1.shape == y0.shape
    torch.testing.assert_close(y1, y0, rtol=1e-12, atol=1e-12)
    for a, b, name in zip(g1, g0, ("input", "weight")):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11, msg=name)


@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("per_face", [False, True])
@pytest.mark.parametrize("transposed", [False, True])
def test_up_conv_fused_is_the_unfused_layer(res, per_face, transposed):
    """G's 2x upsampling + 3x3 conv into a res px layer; odd channel counts, 2 faces; weights of
    TF's unfused layers and of its fused ones (transposed: flipped)."""
    x = _rand(2, 3, res // 2, res // 2, seed=res)
    w = _rand(*((2,) if per_face else ()), 5, 3, 3, 3, seed=res + 1)
    _check_fused(up_conv, x, w, transposed=transposed)


@pytest.mark.parametrize("fused", [False, True])
def test_up_conv_keeps_each_tf_layers_definition(fused):
    """TF's two layers, written out: the unfused one is nearest upsampling + conv2d; the fused one
    is conv2d_transpose with the folded 4x4 kernel, which applies the weight flipped. Whichever way
    a layer runs, it computes its own TF layer's function."""
    x, w = _rand(2, 2, 4, 4, seed=0), _rand(3, 2, 3, 3, seed=1)
    wc = conv_weight(w)
    unfused_tf = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), wc, padding=1)
    fused_tf = F.conv_transpose2d(x, fused_kernel(wc).transpose(0, 1), stride=2, padding=1)
    assert (unfused_tf - fused_tf).abs().max() > 0.1  # the same raw weight: two functions
    torch.testing.assert_close(up_conv(x, w, fused, transposed=False), unfused_tf, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(up_conv(x, w, fused, transposed=True), fused_tf, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("per_face", [False, True])
def test_conv_down_fused_is_the_unfused_layer(res, per_face):
    """D's 3x3 conv + 2x2 average pool out of a res px block."""
    x = _rand(2, 3, res, res, seed=res)
    w = _rand(*((2,) if per_face else ()), 5, 3, 3, 3, seed=res + 1)
    _check_fused(conv_down, x, w)


def _unfused(module):
    """module with every layer back on the unfused path (TF's choice below 128 px)."""
    for m in module.modules():
        if getattr(m, "fused", None) is True:
            m.fused = False
    return module


def test_networks_fuse_every_resolution_and_match_the_unfused_ones(monkeypatch):
    """A 64 px G with per-face (fine-tuned) weights and its D: images, features and every gradient
    as the RLSE engine takes them (the latents and the per-face weights), fused vs unfused. Fused at
    every resolution as on a GPU (the CPU's own threshold lifted)."""
    from rlse_fast.models.stylegan1 import layers as stylegan1_layers
    from rlse_fast.models.stylegan1 import Generator, GeneratorConfig
    from rlse_fast.models.stylegan1.discriminator import Discriminator, DiscriminatorConfig

    monkeypatch.setattr(stylegan1_layers, "CPU_FUSED_MIN_RESOLUTION", 0)
    torch.manual_seed(0)
    # TF's fused layers (transposed weights) from 32 px up, its unfused ones at 8 and 16 px
    g_cfg = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=64, mapping_layers=2, channel_base=512, channel_max=16,
                            fused_min_resolution=32)
    G = Generator(g_cfg).requires_grad_(False)
    D = Discriminator(DiscriminatorConfig(img_resolution=64, channel_base=512, channel_max=16)).requires_grad_(False)
    ups = [layer for layer in G.synthesis.layers() if layer.up]
    assert all(layer.fused for layer in ups) and [layer.transposed for layer in ups] == [False, False, True, True]
    assert all(getattr(D, f"b{r}").fused for r in D.block_resolutions)
    ws = G.mapping(torch.randn(2, 16)).detach()
    names = ["layer2.weight", "layer5.weight", "layer6.weight", "const"]
    sd = G.synthesis.state_dict()
    per_face = {k: sd[k].unsqueeze(0).repeat(2, *[1] * sd[k].ndim) * (1 + 0.1 * _rand(2, *sd[k].shape, seed=i).float())
                for i, k in enumerate(names)}

    def run():
        w = ws.clone().requires_grad_(True)
        params = {k: v.clone().requires_grad_(True) for k, v in per_face.items()}
        img = G.synthesis(w, noise_mode="const", params=params)
        logits, feats = D(img, return_features=True)
        (logits.sum() + sum(f.square().mean() for f in feats.values())).backward()
        return img.detach(), [w.grad] + [params[k].grad for k in names]

    img1, g1 = run()
    _unfused(G), _unfused(D)
    img0, g0 = run()
    # The synthesis network computes in float32 (its input is cast so): rounding-level agreement.
    torch.testing.assert_close(img1, img0, rtol=1e-4, atol=1e-4 * img0.abs().max().item())
    for a, b, name in zip(g1, g0, ["ws"] + names):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * b.abs().max().item(), msg=name)


def test_cpu_fuses_from_its_threshold_and_flops_count_what_runs():
    from rlse_fast import flops
    from rlse_fast.models.stylegan1.layers import CPU_FUSED_MIN_RESOLUTION, fused_here

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert [fused_here(r, cpu) for r in (32, CPU_FUSED_MIN_RESOLUTION)] == [False, True]
    assert all(fused_here(r, gpu) for r in RESOLUTIONS)
    on_gpu = flops.iteration_flops(flops.FFHQ_V1, flops.FFHQ_V1_D, batch=1, factor=16)
    on_cpu = flops.iteration_flops(flops.FFHQ_V1, flops.FFHQ_V1_D, batch=1, factor=16, device="cpu")
    # fused everywhere: 0.203 TFLOP; the CPU's unfused 8..32 px layers add about 17 GFLOP
    assert on_gpu.total == pytest.approx(0.2034e12, rel=0.01) and on_cpu.total > on_gpu.total + 10e9
