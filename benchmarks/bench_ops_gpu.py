"""GPU timings of the ops: eager PyTorch reference vs the CUDA and Triton kernels, at StyleGAN2 sizes
(and StyleGAN v1's adain_epilogue).

    pytest benchmarks/bench_ops_gpu.py --benchmark-only [--benchmark-json out.json]

Skips without a CUDA device; an implementation that is not built/installed is skipped per case.
Each timed call ends with torch.cuda.synchronize(), so a round is the full GPU time of the op
(forward, or forward + backward). Fixed rounds (pedantic mode) keep a run short and predictable.
"""
from __future__ import annotations

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from rlse_fast.ops import bias_act, dispatch, downsample2d, filter2d, setup_filter, upsample2d  # noqa: E402
from rlse_fast.ops.downsample_loss import downsample_loss  # noqa: E402

ROUNDS, WARMUP = 20, 3
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
SHAPES = {"4x512x32": (4, 512, 32, 32), "1x64x256": (1, 64, 256, 256), "1x32x512": (1, 32, 512, 512)}


def _need(op: str, impl: str, x: torch.Tensor) -> None:
    if impl == "ref":
        return
    try:
        dispatch.pick(op, impl, x)
    except RuntimeError as exc:
        pytest.skip(str(exc))


def _run(benchmark, fn):
    def timed():
        fn()
        torch.cuda.synchronize()

    timed()  # compile / autotune / allocate outside the timing
    benchmark.pedantic(timed, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("impl", ["ref", "cuda", "triton"])
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_bias_act(benchmark, impl, shape, dtype, mode):
    x = torch.randn(SHAPES[shape], device="cuda", dtype=DTYPES[dtype])
    b = torch.randn(x.shape[1], device="cuda", dtype=x.dtype)
    _need("bias_act", impl, x)
    benchmark.group = f"bias_act lrelu {mode} {shape} {dtype}"
    if mode == "fwd":
        _run(benchmark, lambda: bias_act(x, b, act="lrelu", impl=impl))
    else:
        xg, bg = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
        g = torch.randn_like(x)

        def step():
            xg.grad = bg.grad = None
            bias_act(xg, bg, act="lrelu", clamp=256, impl=impl).backward(g)

        _run(benchmark, step)


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("impl", ["ref", "triton"])
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_modulate(benchmark, impl, batch, mode):
    """One 512-channel 3x3 layer's per-face weights (config-f), fp32 as in the fast engine."""
    from rlse_fast.ops import modulate

    w = torch.randn(batch, 512, 512, 3, 3, device="cuda")
    s = torch.randn(batch, 512, device="cuda") + 1
    _need("modulate", impl, w)
    benchmark.group = f"modulate {mode} {batch}x512x512x3x3 fp32"
    if mode == "fwd":
        with torch.no_grad():
            _run(benchmark, lambda: modulate(w, s, impl=impl))
    else:
        wg, sg = w.clone().requires_grad_(True), s.clone().requires_grad_(True)
        g = torch.randn_like(w)

        def step():
            wg.grad = sg.grad = None
            modulate(wg, sg, impl=impl).backward(g)

        _run(benchmark, step)


# StyleGAN v1's 1024 px layers at batch 1 and 16 besides StyleGAN2's sizes.
ADAIN_SHAPES = {**SHAPES, "1x16x1024": (1, 16, 1024, 1024), "16x16x1024": (16, 16, 1024, 1024)}


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", list(ADAIN_SHAPES))
@pytest.mark.parametrize("impl", ["ref", "triton", "copy"])
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_adain_epilogue(benchmark, impl, shape, dtype, mode):
    """StyleGAN v1's layer epilogue (noise, bias, lrelu, instance norm, AdaIN) at StyleGAN sizes.
    impl 'copy': the memory roofline, the bytes an ideal kernel moves as plain copies (forward: read
    x, write y; backward: read x and dy, write dx)."""
    from rlse_fast.ops.adain import adain_epilogue

    x = torch.randn(ADAIN_SHAPES[shape], device="cuda", dtype=DTYPES[dtype])
    b, c, h, w = x.shape
    noise = torch.randn(1, 1, h, w, device="cuda")  # the networks' constant noise map (fp32, untrained)
    strength, bias = torch.randn(c, device="cuda"), torch.randn(c, device="cuda")
    scale, shift = torch.randn(b, c, device="cuda") + 1, torch.randn(b, c, device="cuda")
    benchmark.group = f"adain_epilogue {mode} {shape} {dtype}"
    g = torch.randn_like(x)
    if impl == "copy":
        y, dx = torch.empty_like(x), torch.empty_like(x)
        if mode == "fwd":
            _run(benchmark, lambda: y.copy_(x))
        else:
            _run(benchmark, lambda: (y.copy_(x), torch.add(x, g, out=dx)))
        return
    _need("adain_epilogue", impl, x)
    if mode == "fwd":
        with torch.no_grad():
            _run(benchmark, lambda: adain_epilogue(x, noise, strength, bias, scale, shift, impl=impl))
    else:
        xg, sg = x.clone().requires_grad_(True), scale.clone().requires_grad_(True)

        def step():
            xg.grad = sg.grad = None
            adain_epilogue(xg, noise, strength, bias, sg, shift, impl=impl).backward(g)

        _run(benchmark, step)


UPFIRDN = {
    "upsample2d": lambda x, f, impl: upsample2d(x, f, impl=impl),
    "downsample2d": lambda x, f, impl: downsample2d(x, f, impl=impl),
    "filter2d": lambda x, f, impl: filter2d(x, f, padding=0, impl=impl),
}


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("impl", ["ref", "cuda"])
@pytest.mark.parametrize("what", list(UPFIRDN))
@pytest.mark.parametrize("separable", [False, True], ids=["2d", "sep"])
def test_upfirdn2d(benchmark, impl, what, shape, dtype, separable):
    """'2d': the models' 4x4 filter as they pass it; 'sep': its 1-D taps. Since 2026-11-28 the CUDA
    wrapper hands the kernel a 2-D outer product's 1-D factor (`separable_form`), so the two CUDA
    cases run the same kernel; the run of 2026-11-28 measured them before that."""
    x = torch.randn(SHAPES[shape], device="cuda", dtype=DTYPES[dtype])
    f = setup_filter([1, 3, 3, 1], separable=separable).cuda()
    _need("upfirdn2d", impl, x)
    benchmark.group = f"upfirdn2d {what} {'sep' if separable else '2d'} {shape} {dtype}"
    _run(benchmark, lambda: UPFIRDN[what](x, f, impl))


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("what", list(UPFIRDN))
def test_upfirdn2d_layout(benchmark, what, layout):
    """A 1024 px layer's FIR (32 channels, bf16, the models' 4x4 filter), forward + backward: the
    tiled NCHW kernels vs the NHWC one that channels_last runs."""
    x = torch.randn(1, 32, 1024, 1024, device="cuda", dtype=torch.bfloat16)
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    f = setup_filter([1, 3, 3, 1]).cuda()
    _need("upfirdn2d", "cuda", x)
    g = torch.randn_like(UPFIRDN[what](x.detach(), f, "cuda"))  # randn_like keeps the layout
    benchmark.group = f"upfirdn2d {what} fwd+bwd 1x32x1024 bf16 by layout"

    def step():
        x.grad = None
        UPFIRDN[what](x, f, "cuda").backward(g)

    _run(benchmark, step)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("factor", [64, 16])
@pytest.mark.parametrize("impl", ["ref", "cuda", "triton"])
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_downsample_loss(benchmark, impl, factor, dtype, mode):
    y = torch.randn(16, 3, 1024, 1024, device="cuda", dtype=DTYPES[dtype])
    x = torch.randn(16, 3, 1024 // factor, 1024 // factor, device="cuda")
    _need("downsample_loss", impl, y)
    benchmark.group = f"downsample_loss /{factor} {mode} 16x3x1024 {dtype}"
    if mode == "fwd":
        with torch.no_grad():
            _run(benchmark, lambda: downsample_loss(y, x, factor, impl=impl))
    else:
        yg = y.clone().requires_grad_(True)

        def step():
            yg.grad = None
            downsample_loss(yg, x, factor, impl=impl).sum().backward()

        _run(benchmark, step)

