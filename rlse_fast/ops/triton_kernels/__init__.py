"""Triton kernels of the ops (imported only through rlse_fast.ops.triton_ops, which needs triton)."""
