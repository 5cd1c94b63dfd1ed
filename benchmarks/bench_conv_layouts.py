"""Per-face convolutions in five layouts, forward / input gradient / weight gradient, at the shapes that
dominate StyleGAN2 and StyleGAN v1 at 1024 px: does a layout switch reach the roofline, or is a kernel
of our own needed?

    python benchmarks/bench_conv_layouts.py --json conv_layouts.json          # GPU: bf16, batch 1 and 16
    python benchmarks/bench_conv_layouts.py --smoke                           # CPU: tiny shapes, fp32

Every face has its own weights (per-face fine-tuning), so the layouts compute the same thing:
  grouped-nchw   today: faces folded into the channels of one NCHW tensor, groups = faces
  grouped-nhwc   the same grouped conv on channels-last tensors (no NCHW<->NHWC transposes)
  per-face-nhwc  one channels-last conv per face (B launches)
  shared-nhwc    one weight for all faces, channels-last: the ceiling (what cuDNN does best)
  triton-perface-nhwc  our per-face implicit GEMM (ops/perface_conv.py), NHWC, one launch for all
                 faces; forward through the op as the generator calls it (StyleGAN2's weights as
                 modulate(taps_last=True) writes them, taken without a copy; v1's in torch's layout,
                 its one-pass repacking included), the gradients through the kernels the op's
                 backward runs (on the weights it saved). On the CPU (smoke) it runs under the
                 Triton interpreter: a check that it runs and agrees, not a timing.
For StyleGAN2's 3x3 convs, direction 'layer': the whole non-up synthesis layer after modulate,
forward and backward (x, weight, per-face bias and noise strength; a shared noise map), through the
per-face conv then the noise add and bias_act ('perface+separate') or with that epilogue fused into
the conv ('perface-fused', `perface_conv_bias_act`), NHWC.
Beside them, for StyleGAN2's shapes, direction 'modulate': the per-face weights' preparation, forward
and backward (fp32 per-face weights, out in the conv's dtype), as the per-face path runs it
(layout 'modulate-taps-last': modulate writes the conv's layout, its backward reads the weight
gradient as the conv returns it) against a contiguous modulate and the conv's repacking copy
('modulate+pack').
Each case: median of CUDA-event timings after warm-up, TFLOP/s, GB/s (each tensor read or written
once), the roofline share max(FLOP / peak, bytes / bandwidth) / time (peaks measured on the lent
cards: device README), and the largest kernel of one profiled call. The per-face layouts' outputs
are compared with grouped-nchw (max_abs_diff: the same function), and so are grouped-nhwc's and the
Triton layout's input and weight gradients. Timing only; no assertion.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from microbench import add_case_args, plan, skipped, timed, top_kernel, write_json  # noqa: E402

# (name, C_in, C_out, kernel, input px, transposed (an up-conv: stride 2), padding)
SHAPES = [
    ("sg2-1024-conv-32x32", 32, 32, 3, 1024, False, 1),
    ("sg2-1024-upconv-64x32", 64, 32, 3, 512, True, 0),  # conv_transpose2d 3x3 stride 2, the FIR after it
    ("sg2-64-conv-512x512", 512, 512, 3, 64, False, 1),
    ("sg2-32-conv-512x512", 512, 512, 3, 32, False, 1),
    ("v1-1024-conv-16x16", 16, 16, 3, 1024, False, 1),
    ("v1-1024-upconv-32x16", 32, 16, 4, 512, True, 1),  # the fused 4x4 transposed conv, stride 2
]
SMOKE_SHAPES = [("smoke-conv-8x8", 8, 8, 3, 16, False, 1), ("smoke-upconv-8x4", 8, 4, 4, 8, True, 1)]
LAYOUTS = ("grouped-nchw", "grouped-nhwc", "per-face-nhwc", "shared-nhwc", "triton-perface-nhwc")
DIRECTIONS = ("forward", "dgrad", "wgrad")


def _conv(x, w, transposed, pad, groups):
    stride = 2 if transposed else 1
    return torch.ops.aten.convolution(x, w, None, [stride] * 2, [pad] * 2, [1, 1], transposed, [0, 0], groups)


def _grad(gy, x, w, transposed, pad, groups, which):
    stride = 2 if transposed else 1
    mask = [which == "dgrad", which == "wgrad", False]
    out = torch.ops.aten.convolution_backward(gy, x, w, None, [stride] * 2, [pad] * 2, [1, 1], transposed, [0, 0],
                                              groups, mask)
    return out[0] if which == "dgrad" else out[1]


def case(shape, batch, layout, direction, device, dtype):
    """(fn, check_output_fn, flop, bytes) of one case; check_output_fn returns the case's result
    per face ((B, C_out, H, W) forward, (B, C_in, H, W) dgrad, the per-face weight's shape wgrad) for
    the cross-layout comparison, or is None (per-face-nhwc's gradients, shared-nhwc)."""
    name, cin, cout, k, px, transposed, pad = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cin, px, px, generator=gen).to(device, dtype)
    # per-face weights: conv (B, O, I, k, k); transposed conv (B, I, O, k, k), as torch lays them out
    wshape = (batch, cin, cout, k, k) if transposed else (batch, cout, cin, k, k)
    w = (torch.randn(wshape, generator=gen) * 0.1).to(device, dtype)
    out_px = (px - 1) * 2 - 2 * pad + k if transposed else px + 2 * pad - k + 1
    gy = torch.randn(batch, cout, out_px, out_px, generator=gen).to(device, dtype)
    cl = torch.channels_last
    if layout in ("grouped-nchw", "grouped-nhwc"):
        fmt = cl if layout == "grouped-nhwc" else torch.contiguous_format
        xg = x.reshape(1, batch * cin, px, px).contiguous(memory_format=fmt)
        wg = w.reshape(batch * wshape[1], *wshape[2:]).contiguous(memory_format=fmt)
        gyg = gy.reshape(1, batch * cout, out_px, out_px).contiguous(memory_format=fmt)
        fwd = lambda: _conv(xg, wg, transposed, pad, batch)  # noqa: E731
        run = {"forward": fwd,
               "dgrad": lambda: _grad(gyg, xg, wg, transposed, pad, batch, "dgrad"),
               "wgrad": lambda: _grad(gyg, xg, wg, transposed, pad, batch, "wgrad")}[direction]
        per_face = {"forward": (cout, out_px, out_px), "dgrad": (cin, px, px), "wgrad": wshape[1:]}[direction]
        check = lambda: run().reshape(batch, *per_face)  # noqa: E731
    elif layout == "per-face-nhwc":
        xs = [x[i:i + 1].contiguous(memory_format=cl) for i in range(batch)]
        ws = [w[i].contiguous(memory_format=cl) for i in range(batch)]
        gys = [gy[i:i + 1].contiguous(memory_format=cl) for i in range(batch)]
        fwd = lambda: [_conv(a, b, transposed, pad, 1) for a, b in zip(xs, ws)]  # noqa: E731
        run = {"forward": fwd,
               "dgrad": lambda: [_grad(g, a, b, transposed, pad, 1, "dgrad") for g, a, b in zip(gys, xs, ws)],
               "wgrad": lambda: [_grad(g, a, b, transposed, pad, 1, "wgrad") for g, a, b in zip(gys, xs, ws)]}[direction]
        check = (lambda: torch.cat(fwd())) if direction == "forward" else None
    elif layout == "triton-perface-nhwc":
        run, check = _triton_perface(x.contiguous(memory_format=cl), w, gy.contiguous(memory_format=cl), transposed,
                                     pad, direction, modulated(name))
    else:
        xc, wc, gyc = x.contiguous(memory_format=cl), w[0].contiguous(memory_format=cl), gy.contiguous(memory_format=cl)
        run = {"forward": lambda: _conv(xc, wc, transposed, pad, 1),
               "dgrad": lambda: _grad(gyc, xc, wc, transposed, pad, 1, "dgrad"),
               "wgrad": lambda: _grad(gyc, xc, wc, transposed, pad, 1, "wgrad")}[direction]
        check = None  # another function: one weight
    macs = batch * cin * cout * k * k * (px * px if transposed else out_px * out_px)
    size = torch.finfo(dtype).bits // 8
    nw = (1 if layout == "shared-nhwc" else batch) * cin * cout * k * k
    nx, ny = batch * cin * px * px, batch * cout * out_px * out_px
    bytes_ = size * (nx + ny + nw)  # each direction reads two of x, y (dy), w and writes the third
    return run, check, 2 * macs, bytes_


def modulated(name: str) -> bool:
    """StyleGAN2's convs (and the smoke shapes) take their weights from modulate; v1's do not."""
    return not name.startswith("v1")


def network_weight(w, transposed, from_modulate):
    """w (B, O, I, k, k), or (B, I, O, k, k) transposed, in the memory the network hands the conv:
    modulate(taps_last=True)'s (B, O, kh, kw, I) (the up-conv's transposed view of it), or torch's."""
    from rlse_fast.ops.layout import taps_last

    if not from_modulate:
        return w
    return taps_last(w.transpose(1, 2)).transpose(1, 2) if transposed else taps_last(w)


def _modulate_case(shape, batch, layout, device, dtype):
    """(run, flop, bytes) of the per-face weights' preparation, forward and backward."""
    from rlse_fast.ops import modulate
    from rlse_fast.ops.layout import taps_last

    _, cin, cout, k, _, transposed, _ = shape
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(batch, cout, cin, k, k, generator=gen).to(device).requires_grad_(True)
    styles = (torch.randn(batch, cin, generator=gen) + 1).to(device).requires_grad_(True)
    g = taps_last(torch.randn(batch, cout, cin, k, k, generator=gen).to(device, dtype))  # as the conv's wgrad

    def run():
        if layout == "modulate-taps-last":
            w = modulate(weight, styles, out_dtype=dtype, taps_last=True)
        else:
            w = taps_last(modulate(weight, styles, out_dtype=dtype))
        w.backward(g)
    n = weight.numel()
    return run, 6 * n, n * (4 + 4 + 2 * torch.finfo(dtype).bits // 8)  # read w twice, write dw, y and read g


def _layer_case(shape, batch, layout, device, dtype):
    """(run, flop, bytes) of the 3x3 layer's conv and epilogue, forward and backward."""
    from rlse_fast.ops.fir_act import noise_bias_act
    from rlse_fast.ops.perface_conv import perface_conv2d
    from rlse_fast.ops.perface_conv_act import perface_conv_bias_act

    _, cin, cout, k, px, _, pad = shape
    gen = torch.Generator().manual_seed(0)
    cl = torch.channels_last
    x = torch.randn(batch, cin, px, px, generator=gen).to(device, dtype).contiguous(memory_format=cl)
    w = network_weight((torch.randn(batch, cout, cin, k, k, generator=gen) * 0.1).to(device, dtype), False, True)
    noise = torch.randn(px, px, generator=gen).to(device)
    strength, bias = torch.full((batch,), 0.1, device=device), torch.zeros(batch, cout, device=device)
    leaves = [t.detach().requires_grad_(True) for t in (x, w, strength, bias)]
    dy = torch.randn(batch, cout, px, px, generator=gen).to(device, dtype).contiguous(memory_format=cl)

    def run():
        xl, wl, sl, bl = leaves
        if layout == "perface-fused":
            y = perface_conv_bias_act(xl, wl, pad, noise, sl, bl, impl="triton")
        else:  # as the layer runs unfused: the noise add, then bias_act with 'auto' (CUDA on a GPU)
            y = noise_bias_act(perface_conv2d(xl, wl, 1, pad, impl="triton"), noise, sl, bl)
        return torch.autograd.grad(y, leaves, dy)
    macs = batch * cin * cout * k * k * px * px
    size = torch.finfo(dtype).bits // 8
    nbytes = size * (3 * x.numel() + 3 * dy.numel() + 2 * w.numel())  # fwd: x, w, y; bwd: dy, y, x, w, dx, dw
    return run, 3 * 2 * macs, nbytes


def _triton_perface(x, w, gy, transposed, pad, direction, from_modulate=False):
    """(run, check) of the Triton per-face conv: x, gy NHWC; w per face in torch's layout, handed to
    the op as `network_weight` lays it out."""
    from rlse_fast.ops import triton_perface_conv as tp
    from rlse_fast.ops.perface_conv import perface_conv2d

    stride, pads = (2 if transposed else 1), (pad, pad)
    w = network_weight(w, transposed, from_modulate)
    w5 = tp.packed(w, x.shape[0])  # what the op's forward saves for its backward

    def fwd():
        with torch.no_grad():
            return perface_conv2d(x, w, stride, pad, transposed, impl="triton")
    if direction == "forward":
        run = fwd
    elif direction == "dgrad":  # its result is the check: (B, C_in, H, W), the weight's (B, ...) shape
        run = ((lambda: tp.conv(gy, w5, stride, pads, reduce_dim=2, like=x)) if transposed else
               (lambda: tp.conv_transposed(gy, w5, stride, pads, reduce_dim=1, out_hw=tuple(x.shape[2:]), like=x)))
    else:
        run = ((lambda: tp.conv_wgrad(x, gy, stride, pads, w5, False)) if transposed else
               (lambda: tp.conv_wgrad(gy, x, stride, pads, w5, False)))
    return run, run


def warm_triton(shapes, batches, dtype) -> int:
    """Compile every Triton launch of the triton-perface-nhwc cases into Triton's on-disk cache,
    launching nothing (meta tensors; `kernel.warmup`). gpu_check.sh runs this in the background
    during its first stages, so that the conv stage's budget goes to timing, not to compiling."""
    from triton.runtime.jit import MockTensor

    from rlse_fast.ops import triton_perface_conv as tp

    class Warm:  # kernel[grid](*args) -> kernel.warmup(*args, grid=grid), tensors by dtype only
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            return lambda *a, **kw: self.kernel.warmup(
                *[MockTensor(t.dtype) if isinstance(t, torch.Tensor) else t for t in a], grid=grid, **kw)

    from rlse_fast.ops import triton_perface_conv_act as tpa

    for module, name in ((tp, "conv_forward_kernel"), (tp, "convt_kernel"), (tp, "conv_wgrad_kernel"),
                         (tpa, "conv_act_forward_kernel"), (tpa, "act_grad_kernel")):
        setattr(module, name, Warm(getattr(module, name)))
    tp.CPU_SMS = torch.cuda.get_device_properties(0).multi_processor_count  # the splits the card will get
    count = 0
    cl = torch.channels_last
    for name, cin, cout, k, px, transposed, pad in shapes:
        out_px = (px - 1) * 2 - 2 * pad + k if transposed else px + 2 * pad - k + 1
        for batch in batches:
            x = torch.empty(batch, cin, px, px, device="meta", dtype=dtype).contiguous(memory_format=cl)
            w = torch.empty((batch, cin, cout, k, k) if transposed else (batch, cout, cin, k, k), device="meta",
                            dtype=dtype)
            gy = torch.empty(batch, cout, out_px, out_px, device="meta", dtype=dtype).contiguous(memory_format=cl)
            w5 = tp.packed(network_weight(w, transposed, modulated(name)), batch)
            stride, pads = (2, (pad, pad)) if transposed else (1, (pad, pad))
            (tp.conv_transposed if transposed else tp.conv)(x, w5, stride, pads, reduce_dim=1 if transposed else 2)
            for direction in DIRECTIONS[1:]:
                run, _ = _triton_perface(x, w, gy, transposed, pad, direction, modulated(name))
                run()
            count += 3
            if modulated(name) and not transposed and k == 3:  # the 'layer' rows' fused kernels
                count += _warm_layer(tpa, x, tp.packed(network_weight(w, False, True), batch), gy, pad)
            print(f"warmed {name} batch {batch}", flush=True)
    return count


def _warm_layer(tpa, x, w5, gy, pad) -> int:
    """Launch (into the warm-up wrappers) what `_layer_case`'s fused op runs, forward and backward."""
    class Ctx:  # what the autograd.Function's methods use of their ctx
        needs_input_grad = (True, True, False, True, True)

        def save_for_backward(self, *t):
            self.saved_tensors = t

    ctx, batch, cout = Ctx(), x.shape[0], w5.shape[1]
    noise = torch.empty(gy.shape[2:], device="meta")
    strength, bias = torch.empty(batch, device="meta"), torch.empty(batch, cout, device="meta")
    tpa._PerFaceConvAct.forward(ctx, x, w5, noise, strength, bias, (pad, pad), 0.2, 2**0.5, -1.0)
    tpa._PerFaceConvAct.backward(ctx, gy)
    return 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_case_args(p, "1,2", 2, "tiny shapes")
    p.add_argument("--warm-triton", action="store_true",
                   help="only compile the Triton layout's kernels for these shapes (GPU; gpu_check.sh runs it early)")
    args = p.parse_args(argv)
    device, smoke, dtype, shapes, batches, reps, gpu, peak = plan(args, SHAPES, SMOKE_SHAPES, "1,2", 2)
    if device.type == "cpu":  # the Triton layout on CPU tensors: the interpreter, set before triton loads
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if args.warm_triton:
        if device.type != "cuda":
            print("--warm-triton: no GPU, nothing to compile for")
            return 0
        t = time.perf_counter()
        print(f"compiled the launches of {warm_triton(shapes, batches, dtype)} cases in {time.perf_counter() - t:.1f} s")
        return 0
    t0 = time.perf_counter()
    rows = []
    print(f"{gpu}, {dtype}, reps {reps}, peaks {peak}")
    print(f"{'shape':<24}{'B':>3} {'direction':<9}{'layout':<15}{'us':>10}{'TFLOP/s':>9}{'GB/s':>8}{'roof%':>7}"
          f"{'diff':>9}  top kernel")
    for shape in shapes:
        for batch in batches:
            outputs = {}
            cases = [(d, layout) for d in DIRECTIONS for layout in LAYOUTS]
            if modulated(shape[0]):
                cases += [("modulate", "modulate+pack"), ("modulate", "modulate-taps-last")]
            if modulated(shape[0]) and not shape[5] and shape[3] == 3:
                cases += [("layer", "perface+separate"), ("layer", "perface-fused")]
            for direction, layout in cases:
                if args.budget_s and time.perf_counter() - t0 > args.budget_s:
                    rows.append({"shape": shape[0], "batch": batch, "direction": direction, "layout": layout,
                                 "skipped": "budget"})
                    continue
                try:
                    if direction in ("modulate", "layer"):
                        make = _modulate_case if direction == "modulate" else _layer_case
                        (run, flop, nbytes), check = make(shape, batch, layout, device, dtype), None
                    else:
                        run, check, flop, nbytes = case(shape, batch, layout, direction, device, dtype)
                    if device.type == "cpu" and layout.startswith(("triton", "perface")):  # interpreted: one call
                        secs, (kernel, share) = timed(run, device, 1, warmup=0), ("triton interpreter", 1.0)
                    else:
                        secs = timed(run, device, reps, warmup=2)
                        kernel, share = top_kernel(run, device)
                    diff = None
                    if check is not None:
                        out = check().float()
                        if layout == "grouped-nchw":
                            outputs[direction] = out
                        elif direction in outputs:
                            diff = (out - outputs[direction]).abs().max().item()
                        del out
                except (RuntimeError, ImportError, torch.cuda.OutOfMemoryError) as exc:  # out of memory, no kernel
                    rows.append(skipped({"shape": shape[0], "batch": batch, "direction": direction,
                                         "layout": layout}, exc, device))
                    continue
                roof = max(flop / peak[0], nbytes / peak[1]) / secs if peak else None
                row = {"shape": shape[0], "batch": batch, "direction": direction, "layout": layout,
                       "seconds": secs, "tflops": flop / secs / 1e12, "gbps": nbytes / secs / 1e9,
                       "roofline_share": roof, "flop": flop, "bytes": nbytes, "top_kernel": kernel,
                       "top_kernel_share": share, "max_abs_diff_vs_grouped_nchw": diff}
                rows.append(row)
                print(f"{shape[0]:<24}{batch:>3} {direction:<9}{layout:<15}{secs * 1e6:>10.1f}{row['tflops']:>9.2f}"
                      f"{row['gbps']:>8.0f}{(f'{100 * roof:.0f}' if roof else '-'):>7}"
                      f"{(f'{diff:.1e}' if diff is not None else '-'):>9}  {kernel} ({100 * share:.0f}%)", flush=True)
            del outputs
    write_json(args.json, "bench_conv_layouts.py", argv, {
        "device": gpu, "dtype": str(dtype), "torch": torch.__version__, "peaks": peak,
        "cudnn_benchmark": torch.backends.cudnn.benchmark, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
