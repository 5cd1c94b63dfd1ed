"""Checks shared by the kernel tests: the flash-attention error budget and gradients."""
import torch


def within_budget(out, ref64, ref_low, what=""):
    """Flash-attention rule: |out - ref64| <= 2 |ref_low - ref64| + a tiny epsilon."""
    err = (out.double().cpu() - ref64.cpu()).abs().max().item()
    ref_err = (ref_low.double().cpu() - ref64.cpu()).abs().max().item()
    eps = 1e-6 * max(ref64.abs().max().item(), 1.0)
    assert err <= 2 * ref_err + eps, f"{what}: kernel error {err:.3g} > 2 x reference error {ref_err:.3g}"


def grads(fn, *inputs, upstream=None):
    """fn's output and the gradients of its inputs for a fixed random upstream gradient."""
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    if upstream is None:
        upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(upstream.to(device=out.device, dtype=out.dtype))
    return out.detach(), [t.grad for t in inputs]
