"""Triton kernel of bias_act: forward, or the first-order gradient (the rule of csrc/common/bias_act.h).

One program per BLOCK elements of the flattened tensor; math in fp32 (fp64 for float64 tensors).
"""
import triton
import triton.language as tl

from .rounding import round_bf16


@triton.jit
def bias_act_kernel(x_ptr, b_ptr, xref_ptr, yref_ptr, y_ptr, n, step_b, size_b, alpha, gain, clamp,
                    GRAD: tl.constexpr, ACT: tl.constexpr, HAS_B: tl.constexpr, HAS_XREF: tl.constexpr,
                    CLAMP: tl.constexpr, F64: tl.constexpr, OUT_BF16: tl.constexpr, BLOCK: tl.constexpr):
    """GRAD 0: y = clamp(act(x + b) * gain). GRAD 1: x is dy, y is dx; the slope comes from
    xref + b (HAS_XREF, required with CLAMP) or from the sign of yref * gain."""
    acc = tl.float64 if F64 else tl.float32
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(x_ptr + offs, mask=mask, other=0).to(acc)
    bias = tl.zeros([BLOCK], acc)
    if HAS_B:
        bias = tl.load(b_ptr + (offs // step_b) % size_b, mask=mask, other=0).to(acc)
    if GRAD == 0:
        v = v + bias
        if ACT == 2:
            v = tl.where(v < 0, 0.0, v)
        if ACT == 3:
            v = tl.where(v < 0, v * alpha, v)
        v = v * gain
        if CLAMP:
            v = tl.where(v > clamp, clamp, tl.where(v < -clamp, -clamp, v))
    else:
        pre = tl.zeros([BLOCK], acc)
        if HAS_XREF:
            pre = tl.load(xref_ptr + offs, mask=mask, other=0).to(acc) + bias
        elif ACT != 1:
            pre = tl.load(yref_ptr + offs, mask=mask, other=0).to(acc) * gain
        if ACT == 2:
            v = tl.where(pre > 0, v, 0.0)
        if ACT == 3:
            v = tl.where(pre > 0, v, v * alpha)
        v = v * gain
        if CLAMP:
            # The unclamped output; torch.clamp passes the gradient at the bounds.
            z = pre
            if ACT == 2:
                z = tl.where(z < 0, 0.0, z)
            if ACT == 3:
                z = tl.where(z < 0, z * alpha, z)
            z = z * gain
            v = tl.where((z >= -clamp) & (z <= clamp), v, 0.0)
    if OUT_BF16:
        v = round_bf16(v)
    tl.store(y_ptr + offs, v.to(y_ptr.dtype.element_ty), mask=mask)
