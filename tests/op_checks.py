"""Checks shared by the kernel tests: the flash-attention error budget, gradients, and the
per-backend comparison of `modulate` with its reference."""
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


def assert_modulate_matches_ref(impl, w, s, demodulate):
    """`modulate(..., impl=impl)` against `_modulate_ref` in float32: output and both gradients."""
    from rlse_fast.ops.modulate import _modulate_ref, modulate

    y0, g0 = grads(lambda w, s: _modulate_ref(w, s, demodulate), w, s)
    y1, g1 = grads(lambda w, s: modulate(w, s, demodulate, impl=impl), w, s)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g0):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
