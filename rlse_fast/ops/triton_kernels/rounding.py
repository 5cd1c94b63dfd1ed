"""fp32 -> bf16 rounding shared by the kernels."""
import triton
import triton.language as tl


@triton.jit
def round_bf16(v):
    """v (fp32) rounded to the nearest bf16 value, ties to even, still as fp32.

    The conversion that follows is then exact. A GPU's cvt already rounds to nearest, but Triton's
    interpreter truncates: rounding here makes both give the same bits, so the CPU tests are exact.
    """
    bits = v.to(tl.uint32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return tl.where(v != v, v, bits.to(tl.float32, bitcast=True))
