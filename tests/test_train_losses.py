"""The training losses: the native ops give the reference's losses and gradients; the bf16 policy
keeps mapping, D's epilogue, the losses and R1 in float32."""
from __future__ import annotations

import pytest
import torch

from rlse_fast.models.stylegan2 import Discriminator, Generator
from rlse_fast.ops import dispatch
from rlse_fast.train.augment import augment
from rlse_fast.train.config import TrainConfig
from rlse_fast.train.losses import discriminator_loss, generator_loss, r1_penalty

CFG = TrainConfig(resolution=16, z_dim=32, mapping_layers=1, channel_base=256, channel_max=32, batch=4)


def _nets(device="cpu"):
    torch.manual_seed(0)
    return (Generator(CFG.generator_config()).train().to(device),
            Discriminator(CFG.discriminator_config()).train().to(device))


def _losses_and_grads(impl: str, device: str = "cpu", amp: bool = False):
    G, D = _nets(device)
    aug = lambda x: augment(x, "ada", 0.5)  # noqa: E731
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(4, 32, generator=g).to(device), torch.randn(4, 32, generator=g).to(device)
    real = (torch.rand(4, 3, 16, 16, generator=g) * 2 - 1).to(device)
    with dispatch.using(impl):
        torch.manual_seed(2)
        loss_G = generator_loss(G, D, z1, aug, amp=amp)
        loss_G.backward()
        grads_G = {n: p.grad.clone() for n, p in G.named_parameters()}
        G.requires_grad_(False)
        torch.manual_seed(3)
        loss_D, logits = discriminator_loss(G, D, z2, real, aug, amp=amp)
        D.zero_grad()
        loss_D.backward()
        grads_D = {n: p.grad.clone() for n, p in D.named_parameters()}
        torch.manual_seed(4)
        r1 = r1_penalty(D, real, aug)  # must run (the references) inside any block
    return loss_G, loss_D, logits, r1, grads_G, grads_D


@pytest.mark.parametrize("device, impl", [("cpu", "cpp"), ("cuda", "auto")])
def test_native_ops_give_the_reference_losses_and_gradients(device, impl):
    # On CUDA 'auto' takes the CUDA or Triton kernels, whichever this installation has.
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    dispatch._load_natives()
    if impl in dispatch._UNAVAILABLE:
        pytest.skip(dispatch._UNAVAILABLE[impl])
    ref = _losses_and_grads("ref", device)
    native = _losses_and_grads(impl, device)
    for a, b in zip(ref[:4], native[:4]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    for grads_ref, grads_native in zip(ref[4:], native[4:]):
        assert grads_ref.keys() == grads_native.keys()
        for name in grads_ref:
            torch.testing.assert_close(grads_native[name], grads_ref[name], rtol=1e-3, atol=1e-5, msg=name)


def _flat(grads: dict) -> torch.Tensor:
    return torch.cat([g.float().flatten() for g in grads.values()])


@pytest.mark.parametrize("device, impl", [("cpu", "cpp"), ("cuda", "auto")])
def test_native_ops_under_bf16_err_no_more_than_the_references(device, impl):
    # The flash-attention rule: against the float32 reference, the native kernels under bf16 autocast
    # may err at most about twice as much as the plain-PyTorch ops under the same autocast.
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    dispatch._load_natives()
    if impl in dispatch._UNAVAILABLE:
        pytest.skip(dispatch._UNAVAILABLE[impl])
    exact = _losses_and_grads("ref", device, amp=False)
    ref16 = _losses_and_grads("ref", device, amp=True)
    nat16 = _losses_and_grads(impl, device, amp=True)
    for i in range(2):  # loss_G, loss_D
        err_ref, err_nat = (ref16[i] - exact[i]).abs().item(), (nat16[i] - exact[i]).abs().item()
        assert err_nat <= 2 * err_ref + 1e-3 * abs(exact[i].item()), (i, err_nat, err_ref)
    for j in (4, 5):  # G's and D's gradients, as one vector each
        g = _flat(exact[j])
        err_ref = (_flat(ref16[j]) - g).norm() / g.norm()
        err_nat = (_flat(nat16[j]) - g).norm() / g.norm()
        assert err_nat <= 2 * err_ref + 1e-3, (j, err_nat.item(), err_ref.item())


def test_bf16_policy_keeps_mapping_epilogue_and_losses_in_float32():
    G, D = _nets()
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else output
            seen.setdefault(name, (first.dtype, output.dtype if isinstance(output, torch.Tensor) else output[0].dtype))
        return hook

    G.mapping.register_forward_hook(record("mapping"))
    G.synthesis.b8.conv0.register_forward_hook(record("synthesis_conv"))
    D.b16.conv0.register_forward_hook(record("D_block_conv"))
    D.b4.register_forward_hook(record("D_epilogue"))
    z = torch.randn(4, 32)
    loss = generator_loss(G, D, z, lambda x: x, amp=True)
    assert seen["mapping"][1] == torch.float32
    assert seen["synthesis_conv"][1] == torch.bfloat16
    assert seen["D_block_conv"][1] == torch.bfloat16
    assert seen["D_epilogue"] == (torch.float32, torch.float32)
    assert loss.dtype == torch.float32
    r1 = r1_penalty(D, torch.rand(4, 3, 16, 16) * 2 - 1, lambda x: x)
    assert r1.dtype == torch.float32
    # bf16 is the float32 loss to bf16 rounding (8 bits of mantissa through a few layers).
    G, D = _nets()
    loss_fp32 = generator_loss(G, D, z, lambda x: x, amp=False)
    assert loss.item() == pytest.approx(loss_fp32.item(), rel=0.05)
