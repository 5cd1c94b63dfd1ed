"""`FastOptions`: how the fast loop issues the work of a run (kernels, precision, graphs, layout),
never what it computes."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class FastOptions:
    """How `FastLoop` issues the work of a run, never what it computes."""

    impl: str = "auto"
    """The implementation of every op called with impl='auto' (`ops_impl`)."""
    precision: str = "bf16"
    """'fp32' or 'bf16': autocast of the forward pass; weights and optimizer state stay fp32."""
    graphs: bool = True
    """Capture one iteration in a CUDA graph after `warmup` eager ones (CUDA only; ignored on the CPU)."""
    channels_last: bool = False
    """Run the discriminator (a private NHWC copy of the frozen D) and the generator's activations in
    NHWC, so that cuDNN skips its layout conversions (21% of a batch-4 iteration at 1024 px on an H100
    in NCHW); the native bias_act and upfirdn2d take NHWC as it is. G then runs one face at a time
    (see `SynthesisNetwork.forward`). Off by default (`benchmarks/bench_iteration.py` measures both)."""
    fused_fir: bool = False
    """With channels_last: G's up-layers run their FIR, noise, bias and leaky ReLU as one NHWC op
    forward and one backward (`models/stylegan2/fused_up.py`, `ops/fir_act.py`; Triton on CUDA). Off
    by default until a GPU has timed it (`benchmarks/bench_fir_nhwc.py`)."""
    packed_styles: bool = False
    """With fine-tuning: every style affine of G as one product over one (B, S, w_dim) leaf of the
    per-face affine weights and one (B, S) leaf of their biases (`models/style_affines.py`): one
    bmm, one bias add and one gather for all layers, and the weights' gradient in the leaf's own
    layout (no copy before the fused Adam). Its sums run in another order than the layers' einsum,
    so the fp32 loop then equals the eager one to float rounding, not bit for bit: off by default
    (`benchmarks/bench_iteration.py`'s fast-pf case runs it on a card)."""
    warmup: int = 3
    """Eager iterations before the capture (at least one)."""
    keep_image: bool = False
    """Also keep each step's image (`Buffers.image`, for on_step)."""
    cudnn_benchmark: bool = False
    """On CUDA, let cuDNN time its algorithms for each convolution shape during the warm-up and keep
    the fastest; the global setting is restored after every iteration. Off by default: on an H200
    (1024 px, bf16, batch 1 and 4) the replayed iterations took the same time with and without it,
    and the timing added seconds of set-up (the README's GPU measurements)."""

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def on(self, device: torch.device) -> FastOptions:
        """These options as they apply on `device`: graphs and cuDNN's timing on CUDA only, at least
        one warm-up iteration."""
        cuda = device.type == "cuda"
        return replace(self, graphs=bool(self.graphs) and cuda, cudnn_benchmark=bool(self.cudnn_benchmark) and cuda,
                       warmup=max(int(self.warmup), 1))

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.precision == "bf16" else None
