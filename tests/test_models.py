"""Our StyleGAN2 modules reproduce the public implementations (../shared/reference)."""
import pytest
import torch

from rlse_fast.checkpoints import (build_discriminator, build_generator, infer_discriminator_config,
                                   infer_generator_config, rosinality_to_official)

TOL = 1e-4


def _maxdiff(a, b):
    return (a - b).abs().max().item()


def _split(r, prefix):
    return {k[len(prefix):]: v for k, v in r.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def nvidia(request):
    from safetensors.torch import load_file

    from conftest import SHARED

    path = SHARED / "reference" / "sg2_nvidia_r32.safetensors"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    r = load_file(str(path))
    g_sd, d_sd = _split(r, "G."), _split(r, "D.")
    G = build_generator(infer_generator_config(g_sd), g_sd)
    D = build_discriminator(infer_discriminator_config(d_sd), d_sd)
    return G, D, r


def test_nvidia_config_inferred(nvidia):
    G, D, _ = nvidia
    assert (G.cfg.z_dim, G.cfg.w_dim, G.cfg.img_resolution, G.cfg.mapping_layers) == (64, 64, 32, 2)
    assert (G.cfg.channel_base, G.cfg.channel_max, G.cfg.num_ws) == (1024, 64, 8)
    assert [G.cfg.channels(r) for r in (4, 8, 16, 32)] == [64, 64, 64, 32]
    assert D.cfg.block_resolutions == [32, 16, 8]


@torch.no_grad()
def test_nvidia_generator_outputs(nvidia):
    G, _, r = nvidia
    assert _maxdiff(G.mapping(r["z"]), r["ws"]) <= TOL
    assert _maxdiff(G.mapping(r["z"], truncation_psi=0.7), r["ws_psi0.7"]) <= TOL
    assert _maxdiff(G.mapping.w_avg, r["w_avg"]) == 0
    assert _maxdiff(G.synthesis(r["ws"], noise_mode="const"), r["img_const"]) <= TOL
    assert _maxdiff(G.synthesis(r["ws"], noise_mode="none"), r["img_none"]) <= TOL
    # The per-layer non-fused path (used in training) gives the same image.
    assert _maxdiff(G.synthesis(r["ws"], noise_mode="const", fused_modconv=False), r["img_const"]) <= TOL


@torch.no_grad()
def test_nvidia_intermediate_blocks(nvidia):
    G, _, r = nvidia
    x = img = None
    w_idx = 0
    for res, block in zip(G.synthesis.block_resolutions, G.synthesis.blocks()):
        x, img = block(x, img, r["ws"].narrow(1, w_idx, block.num_conv + 1), noise_mode="const")
        w_idx += block.num_conv
        if res < 32:
            assert _maxdiff(x, r[f"g_out.b{res}.x"]) <= TOL
            assert _maxdiff(img, r[f"g_out.b{res}.img"]) <= TOL


@torch.no_grad()
def test_nvidia_discriminator_outputs(nvidia):
    _, D, r = nvidia
    logits, feats = D(r["img_in"], return_features=True)
    assert _maxdiff(logits, r["d_logits"]) <= TOL
    for res in (32, 16, 8):
        assert _maxdiff(feats[f"b{res}"], r[f"d_out.b{res}"]) <= TOL
    assert _maxdiff(feats["b4"], r["d_out.b4.conv"]) <= TOL
    assert _maxdiff(D.b4.mbstd(feats["b8"]), r["d_out.b4.mbstd"]) <= TOL


@pytest.fixture(scope="module")
def rosinality():
    from gan_files import rosinality_state_dicts

    try:
        g, d, latent_avg, r = rosinality_state_dicts()
    except FileNotFoundError:
        pytest.skip("../shared/reference/sg2_rosinality_r32.safetensors is absent")
    g_sd, d_sd = rosinality_to_official(g, d, latent_avg)
    G = build_generator(infer_generator_config(g_sd), g_sd)
    D = build_discriminator(infer_discriminator_config(d_sd), d_sd)
    return G, D, r


@torch.no_grad()
def test_rosinality_generator_outputs(rosinality):
    G, _, r = rosinality
    noise = [r[f"noise.{i}"] for i in range(7)]
    assert _maxdiff(G.synthesis(r["latent_wplus"], noise=noise), r["img"]) <= TOL
    assert _maxdiff(G.synthesis(r["latent_wplus"], noise_mode="const"), r["img_noise_buffers"]) <= TOL
    assert _maxdiff(G.synthesis(G.mapping(r["z"]), noise=noise), r["img_from_z"]) <= TOL
    ws = G.mapping.w_avg.lerp(r["latent_wplus"], 0.7)
    assert _maxdiff(G.synthesis(ws, noise=noise), r["img_trunc0.7"]) <= TOL


@torch.no_grad()
def test_rosinality_discriminator_outputs(rosinality):
    _, D, r = rosinality
    logits, feats = D(r["d_in"], return_features=True)
    assert _maxdiff(logits, r["d_logits"]) <= TOL
    for ours, theirs in (("b32", "convs.1"), ("b16", "convs.2"), ("b8", "convs.3"), ("b4", "final_conv")):
        assert _maxdiff(feats[ours], r[f"d_out.{theirs}"]) <= TOL


def test_per_sample_params_match_shared(nvidia):
    """Per-face parameters (batched fine-tuning) equal the shared ones when they are copies,
    and a change to one face's copy changes that face's image alone."""
    G, _, r = nvidia
    ws = r["ws"]
    params = {k: p.detach().unsqueeze(0).repeat(ws.shape[0], *[1] * p.ndim).clone()
              for k, p in G.synthesis.named_parameters()}
    with torch.no_grad():
        img = G.synthesis(ws, noise_mode="const", params=params)
        assert _maxdiff(img, r["img_const"]) <= TOL
        for name in ("b8.conv0.weight", "b4.const", "b16.conv1.bias", "b32.torgb.affine.weight", "b8.conv1.noise_strength"):
            changed = dict(params)
            changed[name] = params[name].clone()
            changed[name][2] += 0.5
            img2 = G.synthesis(ws, noise_mode="const", params=changed)
            diff = (img2 - img).flatten(1).abs().amax(1)
            assert diff[2] > 1e-3 and diff[[0, 1, 3]].max() <= TOL, name


def test_bad_shapes_are_reported(nvidia):
    G, D, r = nvidia
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(r["ws"][:, :3])
    with pytest.raises(ValueError, match="discriminator input"):
        D(torch.zeros(4, 3, 16, 16))


@pytest.mark.parametrize("impl", ["ref", "cpp"])
@pytest.mark.parametrize("batch,channels_last", [(3, False), (1, True), (3, True)])
def test_per_sample_bias_matches_separate_add(impl, batch, channels_last):
    """A per-sample (B, C) bias goes through bias_act as one (1, B*C, H, W) call; values and the
    gradients of x and b equal adding the bias first, and a channels-last x stays channels-last."""
    from rlse_fast.models.stylegan2.layers import bias_act_per_sample
    from rlse_fast.ops import dispatch
    from rlse_fast.ops.bias_act import _bias_act_ref

    g = torch.Generator().manual_seed(3)
    x = torch.randn(batch, 5, 7, 9, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    b = torch.randn(batch, 5, generator=g, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(batch, 5, 7, 9, generator=g, dtype=torch.float64)
    with dispatch.using(impl):
        y = bias_act_per_sample(x, b, act="lrelu", gain=1.7, clamp=2.5)
    y_ref = _bias_act_ref(x + b[:, :, None, None], act="lrelu", gain=1.7, clamp=2.5)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    gx, gb = torch.autograd.grad(y, [x, b], dy)
    gx_ref, gb_ref = torch.autograd.grad(y_ref, [x, b], dy)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gb, gb_ref, rtol=1e-12, atol=1e-12)
