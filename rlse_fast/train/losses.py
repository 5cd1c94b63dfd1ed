"""The three losses of a training step and the optimiser steps on them, with the precision policy
and the augmentation of every image the discriminator sees.

Precision, after StyleGAN2-ADA's mixed-precision rules, with bf16 where it uses fp16: the mapping
network, D's epilogue (minibatch-stddev, the 4x4 convolution and the fully connected layers), the
loss reductions and R1 run in float32; G's synthesis layers and D's convolution blocks run under
bf16 autocast (G's toRGB sums its image in float32 already). bf16 keeps float32's exponent range, so
StyleGAN2-ADA's clamp of convolution outputs to +-256 (against fp16 overflow) is not needed.

Ops: the G and D passes run whatever `dispatch` picks in the caller's context; R1 differentiates D
twice, so `r1_penalty` runs the plain-PyTorch references (the native backward passes are
once-differentiable).
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F

from ..models.stylegan2 import Discriminator, Generator
from ..ops import dispatch

Augment = Callable[[torch.Tensor], torch.Tensor]


def autocast(x_or_device, amp: bool):
    """bf16 autocast on the tensors' device type when `amp`, else a no-op context."""
    if not amp:
        return contextlib.nullcontext()
    device = x_or_device.device if isinstance(x_or_device, torch.Tensor) else torch.device(x_or_device)
    return torch.autocast(device.type, dtype=torch.bfloat16)


def float32(device) -> contextlib.AbstractContextManager:
    """Autocast off: the enclosed ops run in the dtype of their inputs (float32 here)."""
    return torch.autocast(torch.device(device).type, enabled=False)


def generate_ws(G: Generator, z: torch.Tensor, mixing_prob: float) -> torch.Tensor:
    """The mapping network in float32, with style mixing at `mixing_prob`."""
    with float32(z.device):
        ws = G.mapping(z.float())
        if mixing_prob > 0 and torch.rand([]).item() < mixing_prob:
            cutoff = int(torch.randint(1, ws.shape[1], []).item())
            ws = ws.clone()
            ws[:, cutoff:] = G.mapping(torch.randn_like(z))[:, cutoff:]
    return ws


def generate(G: Generator, z: torch.Tensor, mixing_prob: float, amp: bool) -> torch.Tensor:
    """z (B, z_dim) -> images (B, 3, R, R) float32."""
    ws = generate_ws(G, z, mixing_prob)
    with autocast(z, amp):
        return G.synthesis(ws, noise_mode="random").float()


def run_D(D: Discriminator, img: torch.Tensor, amp: bool, channels_last: bool = False) -> torch.Tensor:
    """img (B, 3, R, R) -> float32 logits (B, 1): the blocks under bf16 autocast when `amp`, the
    epilogue in float32."""
    if channels_last:
        img = img.contiguous(memory_format=torch.channels_last)
    x = None
    with autocast(img, amp):
        for res in D.block_resolutions:
            x = getattr(D, f"b{res}")(x, img)
    with float32(img.device):
        return D.b4(x.float()).float()


def generator_loss(G: Generator, D: Discriminator, z: torch.Tensor, augment: Augment, mixing_prob: float = 0.0,
                   amp: bool = False, channels_last: bool = False) -> torch.Tensor:
    """Non-saturating logistic loss of G on the fakes of z (scalar, float32)."""
    fake = generate(G, z, mixing_prob, amp)
    return F.softplus(-run_D(D, augment(fake), amp, channels_last)).mean()


def discriminator_loss(G: Generator, D: Discriminator, z: torch.Tensor, real: torch.Tensor, augment: Augment,
                       mixing_prob: float = 0.0, amp: bool = False,
                       channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic loss of D on the fakes of z (G frozen) and the reals -> (loss, real logits (B, 1))."""
    with torch.no_grad():
        fake = generate(G, z, mixing_prob, amp)
    fake_logits = run_D(D, augment(fake), amp, channels_last)
    real_logits = run_D(D, augment(real), amp, channels_last)
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean(), real_logits


def reference_ops():
    """The plain-PyTorch ops inside the block (what R1's double backward needs)."""
    return dispatch.using("ref")


def r1_penalty(D: Discriminator, real: torch.Tensor, augment: Augment) -> torch.Tensor:
    """E ||d D(augment(x)) / dx||^2 over the reals, in float32 with the reference ops; the gradient
    is taken with respect to the un-augmented images, through the augmentation."""
    with reference_ops(), float32(real.device):
        x = real.detach().float().requires_grad_(True)
        logits = D(augment(x))
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        return grad.square().sum(dim=[1, 2, 3]).mean()


def _descend(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def generator_step(G: Generator, D: Discriminator, opt: torch.optim.Optimizer, z: torch.Tensor,
                   **loss_kwargs) -> torch.Tensor:
    """One step of G's optimiser on `generator_loss` (D frozen); returns the loss."""
    G.requires_grad_(True)
    D.requires_grad_(False)
    loss = generator_loss(G, D, z, **loss_kwargs)
    _descend(opt, loss)
    return loss


def discriminator_step(G: Generator, D: Discriminator, opt: torch.optim.Optimizer, z: torch.Tensor,
                       real: torch.Tensor, **loss_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of D's optimiser on `discriminator_loss` (G frozen) -> (loss, real logits)."""
    G.requires_grad_(False)
    D.requires_grad_(True)
    loss, real_logits = discriminator_loss(G, D, z, real, **loss_kwargs)
    _descend(opt, loss)
    return loss, real_logits


def r1_step(D: Discriminator, opt: torch.optim.Optimizer, real: torch.Tensor, augment: Augment,
            weight: float) -> torch.Tensor:
    """One step of D's optimiser on weight * `r1_penalty` (lazy R1: weight = gamma / 2 * interval);
    returns the penalty."""
    penalty = r1_penalty(D, real, augment)
    _descend(opt, penalty * weight)
    return penalty


__all__ = ["autocast", "discriminator_loss", "discriminator_step", "generate", "generate_ws", "generator_loss",
           "generator_step", "r1_penalty", "r1_step", "reference_ops", "run_D"]
