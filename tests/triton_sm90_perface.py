"""The per-face convolution's launches for tests/triton_sm90.py: each kernel at the StyleGAN2 and v1
shapes the networks run (1024 px layers and the 512-channel ones), fp32 and bf16, with the block
sizes and warps `triton_perface_conv` picks for them. NHWC activations and packed weights (a unit
channel stride): Triton's launcher turns an int argument equal to 1 into a constant, so the unit
strides are compiled as constants here too."""
from __future__ import annotations

import torch

from rlse_fast.ops.triton_kernels.perface_conv import conv_forward_kernel, convt_kernel, conv_wgrad_kernel

PTR = {"fp32": "*fp32", "bf16": "*bf16"}
DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16}
# (name, C_in, C_out, k, output pixels, transposed)
SHAPES = [("sg2-conv-32x32", 32, 32, 3, 1024 * 1024, False), ("sg2-conv-512x512", 512, 512, 3, 32 * 32, False),
          ("sg2-conv64-512x512", 512, 512, 3, 64 * 64, False), ("sg2-conv-256x256", 256, 256, 3, 128 * 128, False),
          ("sg2-conv-64x64", 64, 64, 3, 512 * 512, False),
          ("sg2-torgb-32x3", 32, 3, 1, 1024 * 1024, False), ("sg2-upconv-64x32", 64, 32, 3, 1024 * 1024, True),
          ("v1-conv-16x16", 16, 16, 3, 1024 * 1024, False), ("v1-upconv-32x16", 32, 16, 4, 1024 * 1024, True)]
DIMS = ["H", "W", "OH", "OW", "CI", "CO", "PAD_H", "PAD_W"]
X, WT, Y, G = ["sxb", "sxc", "sxh", "sxw"], ["swb", "swi", "swo", "swh", "sww"], ["syb", "syc", "syh", "syw"], \
    ["sgb", "sgc", "sgh", "sgw"]
OUT = ["sos", "sob", "soo", "soi", "soh", "sow"]


def _launch(kernel, dt, ptrs, ints, units, cx, warps, stages, name):
    sig = dict({p: PTR[dt] for p in ptrs}, **{n: "i32" for n in ints if n not in units})
    return name, kernel, sig, dict(cx, **{n: 1 for n in units}), warps, {"num_stages": stages}


def variants():
    """(kernel name, kernel, signature, constexprs, num_warps) of each launch to check."""
    from rlse_fast.ops.triton_perface_conv import gemm_blocks

    for dt in ("fp32", "bf16"):
        for name, ci, co, k, npix, transposed in SHAPES:
            stride = 2 if transposed else 1
            base = dict(STRIDE=stride, KH=k, KW=k, IEEE=dt == "fp32", UPCAST=False, OUT_BF16=dt == "bf16")
            conv_ints = DIMS + X + WT + Y
            tconv_ints = DIMS + ["QW", "M_TILES"] + X + WT + Y
            # forward: the packed weight's unit stride is the reduction channel of a conv, the output
            # channel of a transposed conv; the input gradient runs the other kernel with the roles swapped
            # StyleGAN2's up-conv weight is modulate's (B, O, kh, kw, I) memory seen transposed: its
            # unit stride is the reduction channel of the forward; v1's, packed, the output channel
            modulated = name.startswith("sg2")
            for grad, (cin, cout) in ((False, (ci, co)), (True, (co, ci))):
                tkernel = transposed != grad
                m = npix // stride**2 if tkernel else (npix if not transposed else npix // stride**2)
                bm, bn, bk, warps, stages = gemm_blocks(m, cout, cin, DTYPE[dt])
                cx = dict(base, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
                units = {"sxc", "syc", "swo" if (transposed and not modulated) != grad else "swi"}
                kind = "convt" if tkernel else "forward"
                kernel, ints = (convt_kernel, tconv_ints) if tkernel else (conv_forward_kernel, conv_ints)
                yield _launch(kernel, dt, ("x_ptr", "w_ptr", "y_ptr"), ints, units, cx, warps, stages,
                              f"perface_{kind} {dt} {name}{' dgrad' if grad else ''}")
            # the weight gradient: M = the gradient's channels, N = the other's, K = pixels; stored in
            # the weight's layout (unit stride: C_in of the modulated up-conv's weight = M, else N)
            m, n = (ci, co) if transposed else (co, ci)
            out_unit = "soo" if transposed and modulated else "soi"
            bm, bn, bk, warps, stages = gemm_blocks(m, n, npix, DTYPE[dt])
            for direct in (False, True):  # fp32 partials of split-K, or the result itself
                cx = dict(base, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, OUT_BF16=direct and dt == "bf16")
                sig_dt = dt if direct else "fp32"
                name_, kernel, sig, cxs, w_, opts = _launch(
                    conv_wgrad_kernel, dt, ("g_ptr", "x_ptr"), DIMS + ["N_TILES", "CHUNK", "SPLITS"] + G + X + OUT,
                    {"sgc", "sxc", out_unit}, cx, warps, stages, f"perface_wgrad {dt} {name} {'direct' if direct else 'split'}")
                yield name_, kernel, dict(sig, out_ptr=PTR[sig_dt]), cxs, w_, opts


def act_variants():
    """The per-face conv with the layer epilogue (StyleGAN2's 3x3 non-up layers, NHWC, the weight as
    modulate writes it), noise and bias, with and without the clamp; and the activation's gradient."""
    from rlse_fast.ops.triton_kernels.perface_conv_act import act_grad_kernel, conv_act_forward_kernel
    from rlse_fast.ops.triton_perface_conv import gemm_blocks
    from rlse_fast.ops.triton_perface_conv_act import ACT_WARPS, act_tiles

    for dt in ("fp32", "bf16"):
        for name, ci, co, k, npix, transposed in SHAPES:
            if transposed or not name.startswith("sg2") or k != 3:
                continue
            bm, bn, bk, warps, stages = gemm_blocks(npix, co, ci, DTYPE[dt])
            for clamp in (False, True):
                cx = dict(KH=k, KW=k, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, IEEE=dt == "fp32", UPCAST=False,
                          OUT_BF16=dt == "bf16", HAS_NOISE=True, HAS_BIAS=True, CLAMP=clamp)
                name_, kernel, sig, cxs, w_, opts = _launch(
                    conv_act_forward_kernel, dt, ("x_ptr", "w_ptr", "y_ptr"),
                    DIMS + X + WT + Y + ["n_bstride", "bias_bstride"], {"sxc", "syc", "swi", "s_bstride"}, cx, warps,
                    stages, f"perface_act_forward {dt} {name} clamp={clamp}")
                sig = dict(sig, n_ptr="*fp32", s_ptr="*fp32", bias_ptr="*fp32", code_ptr="*i8", alpha="fp32",
                           act_gain="fp32", clamp="fp32")
                yield name_, kernel, sig, cxs, w_, opts
        for channels in (32, 512):  # NHWC dy: the channel stride is 1
            bp, bc = act_tiles(channels)
            for clamp in (False, True):
                sig = {"dy_ptr": PTR[dt], "ref_ptr": "*i8" if clamp else PTR[dt], "dpre_ptr": PTR[dt],
                       "pix_ptr": "*fp32", "part_ptr": "*fp32", "P": "i32", "C": "i32", "sb": "i32", "sp": "i32",
                       "alpha": "fp32", "act_gain": "fp32"}
                cx = {"sc": 1, "CLAMP": clamp, "OUT_BF16": dt == "bf16", "NEED_PIX": True, "NEED_PART": True,
                      "BLOCK_P": bp, "BLOCK_C": bc}
                yield f"perface_act_grad {dt} {channels}ch clamp={clamp}", act_grad_kernel, sig, cx, ACT_WARPS


def sweep() -> int:
    """Compile each kernel (at the 1024 px 32 -> 32 conv's other constants) for every tile of 16-128
    x 16-128 x 16-64 (fp32: up to 64 rows, 32 deep), warps as `gemm_blocks` would give; print the
    failures and the tiles with a stack frame. What `gemm_blocks`' limits rest on."""
    import itertools

    import triton
    from triton.compiler import ASTSource

    from triton_sm90 import TARGET, resource_usage

    bases = {}
    for name, kernel, sig, cx, warps, opts in variants():
        kind, dt, shape = name.split()[:3]
        if shape == "sg2-conv-32x32":
            bases.setdefault((kind, dt), (kernel, sig, cx, opts))
    count = failed = 0
    for (kind, dt), (kernel, sig, cx, opts) in bases.items():
        rows, depths = ((16, 32, 64), (16, 32)) if dt == "fp32" else ((16, 32, 64, 128), (16, 32, 64))
        for bm, bn, bk in itertools.product(rows, (16, 32, 64, 128), depths):
            consts = dict(cx, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
            options = dict(opts, num_warps=8 if bm * bn >= 2048 else 4)
            try:
                compiled = triton.compile(ASTSource(fn=kernel, signature=dict(sig, **{k: "constexpr" for k in consts}),
                                                    constexprs=consts), target=TARGET, options=options)
                count += 1
                usage = resource_usage(compiled.asm["cubin"])
                if usage.get("stack"):
                    print(kind, dt, bm, bn, bk, options, usage, flush=True)
            except Exception as exc:  # noqa: BLE001 - report every failing tile
                failed += 1
                print("FAILED", kind, dt, bm, bn, bk, str(exc)[:300], flush=True)
    print(f"compiled {count}, failed {failed}")
    return 1 if failed else 0


if __name__ == "__main__":  # python tests/triton_sm90_perface.py (TRITON_INTERPRET unset)
    raise SystemExit(sweep())
