"""Checks shared by the kernel tests: the flash-attention error budget, gradients, and the
per-backend comparison of `modulate` with its reference."""
import pytest
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


def _upstream_in_layout(g, layout):
    """g with the same values in the memory layout a consumer may hand back: contiguous, (B, O, kh,
    kw, I) (the per-face conv's weight gradient of a 3x3 conv) or that of a transposed view's
    taps-last memory (of its up-conv)."""
    if layout == "taps-last":
        return g.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    if layout == "up-conv":
        return g.transpose(1, 2).permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3).transpose(1, 2)
    return g.contiguous()


def assert_taps_last_is_a_layout_change(impl, w, s, demodulate=True, out_dtype=None):
    """`modulate(..., taps_last=True)` gives the same bits as the contiguous result, stored as
    (B, O, kh, kw, I); its weight and style gradients, for an upstream gradient in any of the
    layouts the convolutions return, are the contiguous run's bits (the reference's: to float
    rounding, as its autograd sums the products in the gradient's memory order)."""
    from rlse_fast.ops.modulate import modulate

    def run(taps_last, layout):
        ws, ss = w.detach().clone().requires_grad_(True), s.detach().clone().requires_grad_(True)
        y = modulate(ws, ss, demodulate, impl=impl, out_dtype=out_dtype, taps_last=taps_last)
        g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(device=y.device, dtype=y.dtype)
        y.backward(_upstream_in_layout(g, layout))
        return y.detach(), ws.grad, ss.grad

    y0, dw0, ds0 = run(False, "contiguous")
    assert y0.is_contiguous()
    for layout in ("contiguous", "taps-last", "up-conv"):
        y1, dw1, ds1 = run(True, layout)
        assert y1.dtype == y0.dtype and y1.shape == y0.shape and y1.permute(0, 1, 3, 4, 2).is_contiguous()
        assert y1.shape[2] == 1 or y1.stride(2) == 1
        assert torch.equal(y1, y0), layout
        if impl == "ref":
            torch.testing.assert_close(dw1, dw0, rtol=1e-5, atol=1e-6, msg=layout)
            torch.testing.assert_close(ds1, ds0, rtol=1e-5, atol=1e-6, msg=layout)
        else:
            assert torch.equal(dw1, dw0) and torch.equal(ds1, ds0), layout


def adain_inputs(batch, c, h, w, per_sample, noise_batch, dtype=torch.float32, device="cpu", seed=0):
    """(x, noise, strength, bias, scale, shift) of the v1 epilogue: x and noise in dtype, the
    parameters float32 (float64 with dtype float64) as the networks hold them; noise_batch 0: no noise."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, dt=dtype):
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dt)

    par = torch.float64 if dtype == torch.float64 else torch.float32
    shape = (batch, c) if per_sample else (c,)
    return [rand(batch, c, h, w), rand(noise_batch, 1, h, w) if noise_batch else None, rand(*shape, dt=par),
            rand(*shape, dt=par), rand(batch, c, dt=par) + 1, rand(batch, c, dt=par)]


def adain_grads(impl, inputs, trained=(True,) * 6):
    """The epilogue's output and its inputs' gradients (None where not `trained`) for a fixed
    upstream gradient."""
    from rlse_fast.ops.adain import _adain_epilogue_ref, adain_epilogue

    ins = [t.detach().clone().requires_grad_(bool(tr)) if t is not None else None for t, tr in zip(inputs, trained)]
    fn = _adain_epilogue_ref if impl == "ref" else lambda *a: adain_epilogue(*a, impl=impl)
    y = fn(*ins)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y.backward(g.to(device=y.device, dtype=y.dtype))
    return y.detach(), [t.grad if t is not None else None for t in ins]


def assert_adain_matches_ref(impl, inputs, trained=(True,) * 6):
    """Forward and every trained input's gradient against the reference (same dtype: float32 or
    float64); untrained inputs get none; per-sample parameters' gradients contiguous."""
    from rlse_fast.ops.adain import adain_epilogue

    y0, g0 = adain_grads("ref", inputs, trained)
    y1, g1 = adain_grads(impl, inputs, trained)
    assert y1.dtype == y0.dtype
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=2e-5)
    for name, a, b in zip(("x", "noise", "strength", "bias", "scale", "shift"), g1, g0):
        if b is None:
            assert a is None, name
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, name
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * (1 + b.abs().max().item()), msg=name)
    # Per-face strength and bias are the fast loop's leaves, whose gradients it takes with
    # autograd.grad (`.backward` would lay them out anew in .grad): contiguous, they go into the
    # fused Adam without a copy. The per-sample scale and shift likewise.
    ins = [t.detach().clone().requires_grad_(bool(tr)) if t is not None else None for t, tr in zip(inputs, trained)]
    y = adain_epilogue(*ins, impl=impl)
    per_face = [(n, t) for n, t in zip(("strength", "bias", "scale", "shift"), ins[2:]) if t.requires_grad and t.ndim == 2]
    grads = torch.autograd.grad(y.float().square().sum(), [t for _, t in per_face], allow_unused=True)
    for (name, _), g in zip(per_face, grads):
        assert g is None or g.is_contiguous(), f"{name}: gradient strides {g.stride()}"


def assert_adain_within_budget(impl, inputs):
    """Reduced precision (x and noise in a 16-bit dtype): the flash-attention rule against float64,
    forward and every gradient."""
    wide = [t.double() if t is not None else None for t in inputs]
    y64, g64 = adain_grads("ref", wide)
    y_low, g_low = adain_grads("ref", inputs)
    y, g = adain_grads(impl, inputs)
    assert y.dtype == inputs[0].dtype
    within_budget(y, y64, y_low, f"adain {impl} {y.dtype} forward")
    for name, a, b, c in zip(("x", "noise", "strength", "bias", "scale", "shift"), g, g64, g_low):
        if b is not None:
            assert a.dtype == c.dtype, name
            within_budget(a, b, c, f"adain {impl} {y.dtype} d{name}")


def skip_unless_interpreted_as_asked(kernel, device) -> None:
    """Skip the module when `kernel` was decorated in the other mode than its tests need: interpreted
    on the CPU, compiled on a GPU (TRITON_INTERPRET only counts before triton_ops' first import)."""
    import pytest

    interpreted = type(kernel).__name__ == "InterpretedFunction"
    if interpreted != (device.type == "cpu"):
        pytest.skip("the Triton kernels were imported before this module set TRITON_INTERPRET; run this file alone")


def _cpp_built() -> bool:
    try:
        import rlse_fast._C  # noqa: F401
    except ImportError:
        return False
    return True


# The C++ CPU kernels' test modules skip as a whole without the extension.
needs_cpp = pytest.mark.skipif(not _cpp_built(), reason="rlse_fast._C is not built; run `pip install --no-build-isolation .`")
# The reduced precisions every kernel claims.
LOW = [torch.float16, torch.bfloat16]
