"""One Adam step on tensor lists on torch's fused kernel, driven capturably (step count and learning
rate are device tensors), as the fast loop runs it for the latent and the per-face weights."""
from __future__ import annotations

import torch

BETAS = (0.9, 0.999)
"""torch.optim.Adam's defaults, which the eager driver's optimizers use."""
EPS = 1e-8


def _adam_(params, grads, exp_avgs, exp_avg_sqs, step: torch.Tensor, lr: torch.Tensor) -> None:
    """One Adam step on tensor lists, in place, on torch's fused kernel: the kernel torch.optim.Adam
    (fused=True) runs, which `eager` uses, so the CPU results are bit-identical to the eager loop.

    step: the float32 step count (already advanced for this step), shared by every tensor; lr: a
    0-dim tensor on the parameters' device (CUDA reads it from device memory: float32; the CPU kernel
    reads it as a double, so float64 there keeps LambdaLR's learning rate exactly).
    """
    beta1, beta2 = BETAS
    # The kernel walks raw memory: every tensor of a (param, grad, moments) row must be laid out alike.
    grads = [g if g.is_contiguous() else g.contiguous() for g in grads]
    torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], [step] * len(params), lr=lr, beta1=beta1,
                       beta2=beta2, weight_decay=0.0, eps=EPS, amsgrad=False, maximize=False)
