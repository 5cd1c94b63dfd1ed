"""The NHWC FIR kernels' launches for tests/triton_sm90.py: StyleGAN2's up-layers at 1024 px
(32 channels), 256 px (128) and 64 px (512), fp32 and bf16, each epilogue flag the layer passes.

    python tests/triton_sm90_fir.py      # the same variants with a launch's divisibility hints
"""
from __future__ import annotations

PTR = {"fp32": "*fp32", "bf16": "*bf16"}


def fir_variants():
    from rlse_fast.ops.triton_fir import BACKWARD_WARPS, WARPS, tiles
    from rlse_fast.ops.triton_kernels.fir_nhwc import fir_act_backward_kernel, fir_act_forward_kernel

    dims = {k: "i32" for k in ("C", "H", "W", "Ho", "Wo", "n_rb", "n_xb", "n_cb", "n_bstride", "s_bstride")}
    for dt in ("fp32", "bf16"):
        for channels, res in ((32, 1024), (128, 256), (512, 64)):
            rh, tw, bc = tiles(channels, res, res)
            tile = {"PX0": 1, "PY0": 1, "RH": rh, "TW": tw, "BC": bc, "F64": False, "OUT_BF16": dt == "bf16"}
            for noise, clamp in ((True, False), (True, True)):
                tag = f"{dt} {res}px C={channels} noise={noise} clamp={clamp}"
                sig = {"x_ptr": PTR[dt], "t_ptr": "*fp32", "n_ptr": "*fp32", "s_ptr": "*fp32", "b_ptr": "*fp32",
                       "y_ptr": PTR[dt], "code_ptr": "*i8", **dims, "b_bstride": "i32", "alpha": "fp32",
                       "act_gain": "fp32", "clamp": "fp32"}
                cx = dict(tile, HAS_NOISE=noise, HAS_BIAS=True, CLAMP=clamp)
                yield f"fir_act_forward {tag}", fir_act_forward_kernel, sig, cx, WARPS
                sig = {"dy_ptr": PTR[dt], "ref_ptr": "*i8" if clamp else PTR[dt], "t_ptr": "*fp32", "n_ptr": "*fp32",
                       "s_ptr": "*fp32", "dx_ptr": PTR[dt], "pb_ptr": "*fp32", "ps_ptr": "*fp32", "dn_ptr": "*fp32",
                       **dims, "alpha": "fp32", "act_gain": "fp32"}
                cx = dict(tile, HAS_NOISE=noise, NEED_DN=noise and res <= 64, CLAMP=clamp)
                yield f"fir_act_backward {tag}", fir_act_backward_kernel, sig, cx, BACKWARD_WARPS


def main() -> int:
    """Compile the variants as a launch specialises them (pointers and the sizes divisible by 16
    marked so, which lets Triton vectorise the channel loads) and print registers and spills:
    tests/triton_sm90.py compiles without those hints, the harder case."""
    import json
    import sys

    import triton
    from triton.compiler import ASTSource

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from triton_sm90 import TARGET, resource_usage

    for name, kernel, sig, cx, warps in fir_variants():
        full = dict(sig, **{k: "constexpr" for k in cx})
        names = list(full)
        attrs = {(names.index(k),): [["tt.divisibility", 16]] for k in sig
                 if k.endswith("_ptr") or k in ("C", "H", "W", "Ho", "Wo", "n_bstride")}
        compiled = triton.compile(ASTSource(fn=kernel, signature=full, constexprs=cx, attrs=attrs), target=TARGET,
                                  options={"num_warps": warps})
        print(json.dumps({"kernel": name, "num_warps": warps, **resource_usage(compiled.asm["cubin"])}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
