"""The RLSE loop for accelerators: one whole iteration captured in a CUDA graph and replayed.

Same objective (`objective.Objective`) and the same `Result` as `eager.super_resolve`; what changes is how the work is
issued, never what is computed:
- every tensor the loop touches lives in a static buffer made once: the latent, the noise maps,
  the per-face generator copies, both optimizers' moments, the best iterate, a (steps, B, 4) log of
  the per-step losses and the step counter itself (a device tensor);
- the two Adam steps run torch's fused Adam kernel (`_adam_`: one pass over parameters, gradients
  and moments, where the unfused update makes nine), with the step count a device tensor and the
  learning-rate schedule precomputed into a (steps, 2) device table indexed by the step counter,
  so nothing in an iteration reads a value back to the host: no .item(), no .tolist(), no
  `if better.any()`;
- after `warmup` eager iterations on a side stream, one iteration (forward, losses, backward,
  both optimizer steps, the spherical projection, the best-iterate bookkeeping) is captured in a
  CUDA graph and replayed for the remaining steps; the losses are read back once, at the end;
- optional bf16 autocast of the forward pass, with fp32 master weights and optimizer state;
- the frozen discriminator is a private copy made for the run's precision and layout
  (`models.registry.prepare_discriminator`): its convolutions' equalised-lr gains, casts and fused
  kernels are computed once, bit for bit what each call computed before;
- gradients only for what is optimised (`torch.autograd.grad` on the latent, the trainable noise
  and the per-face weights): the discriminator's weight gradients, which `backward()` computes when
  a caller's D requires grad, are never formed.

Without CUDA (or with graphs=False) the very same `FastLoop._iteration` runs eagerly; in fp32 on
the CPU it reproduces `eager.super_resolve` (bit for bit in the tests: both run the same fused
Adam kernel with the same learning rate and step count).
"""
from __future__ import annotations

import contextlib
import gc
import time
import warnings
from dataclasses import dataclass, replace
from typing import Callable

import torch

from .. import gaussian_fit
from ..config import RLSEConfig
from ..models import registry
from ..models.stylegan2 import fused_up
from ..ops import dispatch
from .buffers import Buffers, schedule_table
from .fast_options import FastOptions
from .fused_adam import _adam_
from .objective import LOSS_NAMES, Objective
from .result import Result
from .spherical import _radius
from .state import check_batch

def ops_impl(impl: str):
    """Every op called with impl='auto' inside the block runs `impl` (`ops.dispatch.using`)."""
    return dispatch.using(impl)


@dataclass
class Capture:
    """The CUDA graph of one iteration: captured after the warm-up, then replayed."""

    enabled: bool
    """Capture (or replay) from the step after the warm-up on; False without CUDA, without
    `graphs`, and after a failed capture."""
    side: torch.cuda.Stream | None
    """The warm-up's side stream, as capture requires."""
    graph: torch.cuda.CUDAGraph | None = None
    error: str | None = None
    """Why the capture failed ('Type: first line'), if it did."""


class FastLoop:
    """The state and the iteration of one `super_resolve_fast` run; `step()` advances one iteration.

    Benchmarks drive it directly (`step()` k times, then synchronise). G, D, lr_images, cfg, fit,
    seeds: as `eager.super_resolve`; options: `FastOptions` (its fields also as keywords, which
    override it). The loop holds the problem (G, D, cfg, `objective`), `options` (as they apply on
    the images' device), `buffers` (`Buffers`), `capture` (`Capture`) and its progress (`done`,
    `closed`).
    """

    def __init__(self, G, D, lr_images: torch.Tensor, cfg: RLSEConfig, fit: dict[str, torch.Tensor],
                 seeds: int | list[int] = 0, options: FastOptions | None = None, **option_fields):
        options = replace(options or FastOptions(), **option_fields)
        self.t0 = time.perf_counter()
        device = lr_images.device
        self.factor, seeds = check_batch(G, D, lr_images, cfg, seeds)
        self.options = options = options.on(device)
        if D is not None and cfg.semantic:
            # D is frozen: a private copy whose run-time weights (gains folded, cast to the autocast
            # dtype, NHWC with channels_last) are made once here, not on every call; the caller's D untouched.
            D = registry.prepare_discriminator(D, options.autocast_dtype, torch.channels_last if options.channels_last
                                               else torch.contiguous_format)
        self.G, self.D, self.cfg, self.device = G, D, cfg, device
        G.synthesis.eval()

        self.lrs, table = schedule_table(cfg)
        self.buffers = Buffers.make(G, cfg, fit, seeds, table, lr_images.shape[0], device, options.keep_image,
                                    options.packed_styles)
        with ops_impl(options.impl), self._autocast():  # the target features, as the iterations will see them
            self.objective = Objective(D, lr_images, cfg, self.factor, channels_last=options.channels_last)

        self.done = 0
        self.closed = False
        self.capture = Capture(enabled=options.graphs, side=torch.cuda.Stream(device) if options.graphs else None)

    # ------------------------------------------------------------------------- the iteration

    def _autocast(self):
        dtype = self.options.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype, cache_enabled=False)

    def _iteration(self) -> None:
        """One RLSE iteration on the static buffers; issues device work only (graph-capturable)."""
        if not self.options.cudnn_benchmark:
            return self._iteration_body()
        before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            return self._iteration_body()
        finally:
            torch.backends.cudnn.benchmark = before

    def _iteration_body(self) -> None:
        b = self.buffers
        with ops_impl(self.options.impl), fused_up.using("auto" if self.options.fused_fir else None):
            with self._autocast():
                ws = gaussian_fit.to_w(self.G, b.z, b.mean, b.std)
                params = b.params if b.affines is None else {**b.params, **b.affines.styles(ws)}
                img01 = (self.G.synthesis(ws, noise=b.noise, params=params, channels_last=self.options.channels_last)
                         + 1) / 2
                terms = self.objective.terms(ws, img01)
            grads = torch.autograd.grad(terms["total"].sum(), b.leaves, allow_unused=True)

        with torch.no_grad():
            # The best iterate is the image evaluated at this step, before its update.
            total = terms["total"].detach()
            better = self.objective.better(total, b.best_loss)
            b.best.copy_(torch.where(better.view(-1, 1, 1, 1), img01.detach(), b.best))
            b.best_loss.copy_(torch.where(better, total, b.best_loss))
            b.best_step.copy_(torch.where(better, b.idx, b.best_step))
            b.loss_log.index_copy_(0, b.idx, self.objective.row(terms).unsqueeze(0))
            if b.image is not None:
                b.image.copy_(img01.detach())

            # This step's learning rates, looked up on the device: [lr_t, finetune_lr].
            lrs = b.table.index_select(0, b.idx)[0]
            b.adam_step.add_(1)
            n = len(b.latents)
            self._adam_group(range(n), grads, lrs[0])
            for p, r in zip(b.latents, b.radii):  # back onto the spheres (SphericalOptimizer)
                p.div_(_radius(p)).mul_(r)
            if b.params is not None:
                self._adam_group(range(n, len(b.leaves)), grads, lrs[1])
            b.idx.add_(1)

    def _adam_group(self, indices, grads, lr) -> None:
        # A leaf the loss does not reach gets no update, as torch.optim skips grad-less params.
        live = [i for i in indices if grads[i] is not None]
        if live:
            b = self.buffers
            _adam_([b.leaves[i] for i in live], [grads[i] for i in live], [b.exp_avgs[i] for i in live],
                   [b.exp_avg_sqs[i] for i in live], b.adam_step, lr)

    # ------------------------------------------------------------------------- driving it

    def step(self) -> None:
        """Run the next iteration: eagerly during the warm-up (or always without graphs), then by
        capturing the iteration once and replaying it."""
        if self.done >= self.cfg.steps or self.closed:
            raise RuntimeError(f"all {self.cfg.steps} steps are done" if not self.closed else "the loop is closed")
        capture = self.capture
        if capture.graph is not None:
            capture.graph.replay()
        elif capture.enabled and self.done >= self.options.warmup:
            self._capture()
        elif capture.enabled:
            # Warm-up on a side stream, as CUDA graph capture requires (lazy init, cuDNN autotuning).
            capture.side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(capture.side):
                self._iteration()
            torch.cuda.current_stream(self.device).wait_stream(capture.side)
        else:
            self._iteration()
        self.done += 1

    def _capture(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()  # the warm-up's cached blocks cannot serve the graph's private pool
        stream = torch.cuda.current_stream(self.device)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._iteration()
        except Exception as exc:  # an op that syncs or allocates on the host cannot be captured
            # An invalidated capture makes torch.cuda.graph's exit raise from capture_end before it
            # restores the stream: restore it here, and report the op's error, not capture_end's.
            torch.cuda.set_stream(stream)
            _release_rng_from_capture(self.device)
            cause = exc.__context__ if exc.__context__ is not None else exc
            self.capture.error = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
        else:
            self.capture.graph = graph
            graph.replay()  # capturing runs nothing: this replay is the step
            return
        # Out of the except block (its traceback held the capture's tensors): free the failed graph
        # and its private pool before the eager iteration needs the memory.
        del graph
        gc.collect()
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()
        self.capture.enabled = False
        warnings.warn(f"CUDA graph capture failed ({self.capture.error}); continuing without graphs", RuntimeWarning)
        self._iteration()  # nothing ran during the failed capture

    def losses(self, step: int) -> dict:
        """The history entry of a finished step (reads the device: syncs)."""
        values = self.buffers.loss_log[step].t().tolist()
        return {"step": step, "lr": self.lrs[step], **dict(zip(LOSS_NAMES, values))}

    def result(self) -> Result:
        """The best iterates and the per-step history of the steps done so far (syncs once)."""
        b = self.buffers
        log = b.loss_log[: self.done].permute(0, 2, 1).tolist()  # (steps, 4, B)
        history = [{"step": t, "lr": self.lrs[t], **dict(zip(LOSS_NAMES, rows))} for t, rows in enumerate(log)]
        with torch.no_grad():
            lr_best = self.objective.downscale(b.best)
        return Result(images=b.best.clone(), lr_images=lr_best, best_loss=b.best_loss.clone(),
                      best_step=b.best_step.tolist(), history=history, seconds=time.perf_counter() - self.t0)

    def close(self) -> None:
        """Free the graph (and its memory pool) and the optimisation state; `result()` still works."""
        self.capture.graph = None
        self.closed = True
        b = self.buffers
        b.params = b.affines = None
        b.leaves, b.latents, b.exp_avgs, b.exp_avg_sqs = [], [], [], []


def _release_rng_from_capture(device: torch.device) -> None:
    """Take the device's default CUDA generator out of capture mode after a failed capture.

    Capture puts the generator in capture mode and only a successful capture_end takes it out
    (torch 2.11): after an invalidated capture every CUDA random op in the process raised "Offset
    increment outside graph capture encountered unexpectedly" (seen on an H100). A
    clone of its state (same seed and offset, not capturing) swapped in clears that; the failed
    graph keeps the old state until it is freed."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    gen = torch.cuda.default_generators[index]
    if hasattr(gen, "graphsafe_set_state"):
        gen.graphsafe_set_state(gen.clone_state())


def super_resolve_fast(G, D, lr_images: torch.Tensor, cfg: RLSEConfig, fit: dict[str, torch.Tensor],
                       seeds: int | list[int] = 0, impl: str = "auto", precision: str = "bf16", graphs: bool = True,
                       channels_last: bool = False, warmup: int = 3,
                       on_step: Callable[[int, torch.Tensor, dict], None] | None = None) -> Result:
    """`eager.super_resolve` with static buffers, a CUDA graph per iteration and bf16 autocast.

    Arguments and result as `eager.super_resolve`, plus: precision 'fp32' | 'bf16' (autocast of
    the forward pass; on the CPU bf16 works but is slow), graphs (CUDA only), channels_last (G and
    D on NHWC activations, G one face at a time), warmup (eager iterations before the capture). impl applies
    to every op of the loop (`ops_impl`). on_step(step, images01, losses) is called after each
    iteration with that step's evaluated images; it reads the device every step, so leave it None
    for speed.
    """
    options = FastOptions(impl=impl, precision=precision, graphs=graphs, channels_last=channels_last, warmup=warmup,
                          keep_image=on_step is not None)
    loop = FastLoop(G, D, lr_images, cfg, fit, seeds=seeds, options=options)
    try:
        for step in range(cfg.steps):
            loop.step()
            if on_step is not None:
                on_step(step, loop.buffers.image, loop.losses(step))
        return loop.result()
    finally:
        loop.close()
