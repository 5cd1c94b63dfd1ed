"""Compile every Triton kernel for Hopper (sm_90) ahead of time, without a GPU, and report each
compiled variant's registers and spills: a JSON line per variant.

    python tests/triton_sm90.py          # TRITON_INTERPRET must be unset (the test runs it so)

The variants are the launches the wrappers in rlse_fast/ops/triton_ops.py make at StyleGAN2 / RLSE
sizes: each dtype, forward and backward, the flags they pass, their block sizes and warps. Triton
lowers to PTX and runs its bundled ptxas, so a kernel that does not build for the GPU fails here,
on a CPU machine, as the CUDA stage of CI does for the .cu files; cuobjdump (also bundled) reads the
resource usage of the cubin.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from rlse_fast.ops.triton_kernels.adain import (adain_backward_kernel, adain_backward_sums_kernel, adain_forward_kernel,
                                               adain_tile_stats_kernel)
from rlse_fast.ops.triton_kernels.bias_act import bias_act_kernel
from rlse_fast.ops.triton_kernels.downsample_loss import downsample_diff_kernel, downsample_loss_backward_kernel
from rlse_fast.ops.triton_kernels.modulate import modulate_backward_kernel, modulate_kernel
from triton_sm90_fir import fir_variants
from triton_sm90_perface import act_variants as perface_act_variants
from triton_sm90_perface import variants as perface_variants

TARGET = GPUTarget("cuda", 90, 32)
PTR = {"fp32": "*fp32", "bf16": "*bf16", "fp16": "*fp16", "fp64": "*fp64"}
BIAS_ACT_BLOCK = 1024  # triton_ops.BLOCK


def _acc(dt: str) -> str:
    return "*fp64" if dt == "fp64" else "*fp32"


def _unit(sig: dict, units: dict) -> dict:
    """sig without the int arguments that the launch passes as 1 (constants: `_only` gives them)."""
    return {k: v for k, v in sig.items() if k not in units}


def _only(units: dict, sig: dict) -> dict:
    return {k: v for k, v in units.items() if k in sig}


def variants():
    """(kernel name, kernel, signature, constexprs, num_warps) of each launch to check."""
    from rlse_fast.ops.triton_ops import BLOCK, DS_BACKWARD_WARPS, modulate_warps

    assert BLOCK == BIAS_ACT_BLOCK
    for dt in ("fp32", "bf16", "fp16", "fp64"):
        sig = {"x_ptr": PTR[dt], "b_ptr": PTR[dt], "xref_ptr": PTR[dt], "yref_ptr": PTR[dt], "y_ptr": PTR[dt],
               "n": "i32", "step_b": "i32", "size_b": "i32", "alpha": "fp32", "gain": "fp32", "clamp": "fp32"}
        for grad, has_xref, clamp in ((0, False, False), (0, False, True), (1, False, False), (1, True, True)):
            cx = {"GRAD": grad, "ACT": 3, "HAS_B": True, "HAS_XREF": has_xref, "CLAMP": clamp,
                  "F64": dt == "fp64", "OUT_BF16": dt == "bf16", "BLOCK": BLOCK}
            yield f"bias_act {dt} grad={grad} xref={has_xref} clamp={clamp}", bias_act_kernel, sig, cx, 4

    for dt in ("fp32", "bf16", "fp64"):
        for factor, w in ((8, 128), (16, 64), (64, 16)):  # 1024 px images
            ntaps = 4 * factor
            ks = triton.next_power_of_2(ntaps)
            block_j = min(triton.next_power_of_2(w), max(1, 4096 // ks))
            sig = {"y_ptr": PTR[dt], "x_ptr": _acc(dt), "k_ptr": _acc(dt), "diff_ptr": _acc(dt),
                   "part_ptr": _acc(dt), "H": "i32", "W": "i32", "h": "i32", "w": "i32", "s": "i32",
                   "pad0": "i32", "ntaps": "i32", "n_jb": "i32"}
            cx = {"BLOCK_J": block_j, "KS": ks, "F64": dt == "fp64"}
            yield f"downsample_diff {dt} /{factor}", downsample_diff_kernel, sig, cx, 8
        sig = {"diff_ptr": _acc(dt), "g_ptr": _acc(dt), "k_ptr": _acc(dt), "dy_ptr": PTR[dt], "C": "i32",
               "H": "i32", "W": "i32", "h": "i32", "w": "i32", "s": "i32", "pad0": "i32", "pad1": "i32",
               "ntaps": "i32", "ih_max": "i32", "jw_max": "i32", "n_yb": "i32", "n_xb": "i32"}
        yield (f"downsample_loss_backward {dt}", downsample_loss_backward_kernel, sig,
               {"BY": 16, "BX": 64, "OUT_BF16": dt == "bf16"}, DS_BACKWARD_WARPS)

    for dt, out in (("fp32", "fp32"), ("fp32", "bf16"), ("bf16", "bf16"), ("fp64", "fp64")):
        for channels, taps in ((512, 9), (128, 9), (512, 1)):  # config-f, the bundled prior, to-RGB
            bi, bk = triton.next_power_of_2(channels), triton.next_power_of_2(taps)
            # the row stored (and its gradient read) as (I, kh, kw) or, for the per-face conv, (kh, kw, I);
            # a stride equal to 1 is a constant (Triton's launcher specialises it)
            for layout, units in (("oikk", {"sg_w": 1}), ("okki", {"sg_i": 1})):
                if taps == 1 and layout == "okki":
                    continue  # 1 x 1: the same memory
                sig = {"w_ptr": PTR[dt], "s_ptr": PTR[dt], "out_ptr": PTR[out], "d_ptr": _acc(dt), "O": "i32",
                       "I": "i32", "K": "i32", "w_bstride": "i32", "eps": "fp32"}
                cx = {"DEMOD": taps > 1, "BLOCK_I": bi, "BLOCK_K": bk, "F64": dt == "fp64", "OUT_BF16": out == "bf16",
                      "TAPS_LAST": layout == "okki"}
                yield (f"modulate {dt}->{out} {channels}x{taps} {layout}", modulate_kernel, _unit(sig, units),
                       dict(cx, **_only(units, sig)), modulate_warps(bi * bk))
                sig = {"g_ptr": PTR[out], "w_ptr": PTR[dt], "s_ptr": PTR[dt], "d_ptr": _acc(dt), "dw_ptr": PTR[dt],
                       "part_ptr": _acc(dt), "O": "i32", "I": "i32", "K": "i32", "KW": "i32", "w_bstride": "i32",
                       "sg_b": "i32", "sg_o": "i32", "sg_i": "i32", "sg_h": "i32", "sg_w": "i32"}
                cx = {"DEMOD": taps > 1, "NEED_DW": True, "NEED_DS": True, "BLOCK_I": bi, "BLOCK_K": bk,
                      "F64": dt == "fp64", "OUT_BF16": dt == "bf16"}
                yield (f"modulate_backward {dt}<-{out} {channels}x{taps} {layout}", modulate_backward_kernel,
                       _unit(sig, units), dict(cx, **_only(units, sig)), modulate_warps(bi * bk))

    from rlse_fast.ops.triton_ops import ADAIN_BLOCK, adain_warps

    # StyleGAN v1's epilogue: activations and dy in dt, the noise map as the networks hold it (fp32),
    # per-plane parameters and partial sums fp32; 1024 px planes (256 tiles), and 4x4 ones (one tile).
    for dt in ("fp32", "bf16"):
        for has_noise in (True, False):
            for block, tiles in ((ADAIN_BLOCK, 256), (16, 1)):
                t_block = triton.next_power_of_2(tiles)
                plane = {"x_ptr": PTR[dt], "n_ptr": "*fp32", "s_ptr": "*fp32", "b_ptr": "*fp32"}
                dims = {"C": "i32", "HW": "i32", "T": "i32", "n_bstride": "i32"}
                cx = {"HAS_NOISE": has_noise, "F64": False, "BLOCK": block}
                tag = f"{dt} noise={has_noise} block={block}"
                sig = dict(plane, part_ptr="*fp32", **dims, alpha="fp32")
                yield f"adain_tile_stats {tag}", adain_tile_stats_kernel, sig, cx, adain_warps(block)
                sig = dict(plane, sc_ptr="*fp32", sh_ptr="*fp32", y_ptr=PTR[dt], part_ptr="*fp32", stats_ptr="*fp32",
                           **dims, eps="fp32", alpha="fp32")
                yield f"adain_forward {tag}", adain_forward_kernel, sig, dict(cx, T_BLOCK=t_block), adain_warps(block)
                sig = dict(g_ptr=PTR[dt], **plane, stats_ptr="*fp32", part_ptr="*fp32", **dims, alpha="fp32")
                yield f"adain_backward_sums {tag}", adain_backward_sums_kernel, sig, cx, adain_warps(block)
                sig = dict(g_ptr=PTR[dt], **plane, sc_ptr="*fp32", stats_ptr="*fp32", part_ptr="*fp32",
                           dx_ptr=PTR[dt], dpart_ptr="*fp32", sums_ptr="*fp32", **dims, alpha="fp32")
                yield (f"adain_backward {tag}", adain_backward_kernel, sig, dict(cx, T_BLOCK=t_block),
                       adain_warps(block))

    yield from fir_variants()
    yield from perface_variants()
    yield from perface_act_variants()


def resource_usage(cubin: bytes) -> dict:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        return {}
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True, timeout=60).stdout
    for line in out.splitlines():
        if "REG:" in line:
            return {k.lower(): int(v) for k, v in (kv.split(":") for kv in line.split() if kv.split(":")[1].isdigit())
                    if k in ("REG", "STACK", "SHARED", "LOCAL")}
    return {}


def main() -> int:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("triton_sm90: unset TRITON_INTERPRET (the interpreter decorates no compilable kernels)", file=sys.stderr)
        return 2
    failed = 0
    for name, kernel, sig, cx, warps, *options in variants():  # options: more compile options, if any
        options = dict(options[0] if options else {}, num_warps=warps)
        row = {"kernel": name, **options}
        try:
            full = dict(sig, **{k: "constexpr" for k in cx})
            compiled = triton.compile(ASTSource(fn=kernel, signature=full, constexprs=cx), target=TARGET,
                                      options=options)
            row.update(ok=True, **resource_usage(compiled.asm["cubin"]))
        except Exception as exc:  # noqa: BLE001 - report every failing variant
            failed += 1
            row.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:2000]}")
        print(json.dumps(row), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
