"""A census of one warm fast iteration's aten ops on the CPU: the proxy of the GPU's kernel count.

    python benchmarks/count_iteration_ops.py [--json benchmarks/results/cpu-op-census-<date>.json]
    python benchmarks/count_iteration_ops.py --time 6 --only bf16   # ms per warm iteration instead
    python benchmarks/count_iteration_ops.py --d-time 256           # L_s's D pass: plain vs prepared D
    python benchmarks/count_iteration_ops.py --d-count 1024         # its ops at a size (narrow channels)
    python benchmarks/count_iteration_ops.py --packed-styles        # with FastOptions(packed_styles=True)

The counts of another tree (the code before a change): run this file from a copy of that tree
(`git archive BASE | tar -x -C /tmp/base`, the built `rlse_fast/_C*.so` and this file copied in),
as docs/op-census.md does.

Runs `FastLoop` (rlse_fast.engine.fast) on small random-weight networks of both backbones (64 px,
16 px input, 2 faces, full RLSE with fine-tuning and L_s), in bf16 autocast and fp32, NCHW and
channels-last, one warm-up iteration, then counts every aten op the second iteration dispatches
(`OpCensus`, a TorchDispatchMode) and every call into the C++ extension (`rlse_fast._C`, whose
kernels the dispatcher does not see). Views (`is_view` ops, `_unsafe_view`) are left out: they
launch nothing on a GPU. Each op is put in a class (conv, matmul, elementwise, reduction, cast =
`_to_copy`, copy = `clone` / `copy_`, fill, native, other; alloc = empty tensors, no kernel) and a phase: forward (until
`torch.autograd.grad`), backward (inside it), optimiser (after it). Casts and copies are attributed
to where they come from: the innermost rlse_fast frame of the Python stack, and in the backward the
autograd node that runs them.

Every aten op but views and allocations is at least one kernel on a GPU, so the counts track the
kernel count (a CUDA graph replays the same kernels); a native call is one kernel or a few.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlse_fast import gaussian_fit  # noqa: E402
from rlse_fast.config import RLSEConfig  # noqa: E402
from rlse_fast.engine.fast import FastLoop  # noqa: E402

ROOT = str(Path(__file__).resolve().parents[1] / "rlse_fast")
PHASES = ("forward", "backward", "optimiser")
CLASSES = ("conv", "matmul", "elementwise", "reduction", "cast", "copy", "fill", "native", "other", "alloc")
"""Every class but 'alloc' (empty tensors: no kernel) is at least one kernel per op on a GPU."""

_CONV = {"convolution", "convolution_backward", "_convolution", "mkldnn_convolution", "_slow_conv2d_forward",
         "_slow_conv2d_backward", "slow_conv_transpose2d", "slow_conv_transpose2d_backward",
         "_mkldnn_convolution", "miopen_convolution", "cudnn_convolution", "thnn_conv2d"}
_MATMUL = {"mm", "bmm", "addmm", "baddbmm", "addbmm", "matmul", "dot", "mv", "_addmm_activation"}
_REDUCTION = {"sum", "mean", "amax", "amin", "max", "min", "norm", "linalg_vector_norm", "var", "std", "prod",
              "any", "all", "argmax", "argmin", "cumsum", "var_mean", "std_mean", "_foreach_norm"}
_CAST = {"_to_copy"}
_COPY = {"clone", "copy_", "_copy_from", "contiguous", "_copy_from_and_resize"}
_FILL = {"zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "fill_", "zero_", "new_zeros", "new_full",
         "scalar_tensor"}
_ALLOC = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_"}
_NOT_KERNELS = {"_unsafe_view", "lift_fresh", "set_", "_local_scalar_dense", "is_same_size", "sym_size", "sym_stride",
                "sym_numel", "sym_storage_offset", "is_nonzero", "equal"}


def op_class(name: str) -> str | None:
    """The class of an aten op by its packet name; None for what launches no kernel."""
    if name in _NOT_KERNELS:
        return None
    for cls, names in (("conv", _CONV), ("matmul", _MATMUL), ("reduction", _REDUCTION), ("cast", _CAST),
                       ("copy", _COPY), ("fill", _FILL), ("alloc", _ALLOC)):
        if name in names:
            return cls
    if name.startswith("_foreach_") or name.startswith("_fused_"):
        return "elementwise"
    return "elementwise" if _is_pointwise(name) else "other"


def _is_pointwise(name: str) -> bool:
    packet = getattr(torch.ops.aten, name, None)
    if packet is None:
        return False
    for overload in packet.overloads():
        if torch.Tag.pointwise in getattr(packet, overload).tags:
            return True
    return name in {"where", "clamp", "clamp_min", "clamp_max", "lerp", "addcmul", "addcdiv", "masked_fill",
                    "leaky_relu", "leaky_relu_backward", "threshold_backward", "index_select", "index_copy",
                    "index_copy_", "constant_pad_nd", "flip", "repeat", "cat", "stack", "slice_backward",
                    "select_backward", "avg_pool2d", "avg_pool2d_backward", "upsample_nearest2d",
                    "upsample_nearest2d_backward"}


_OWNERS = ("generator.py", "discriminator.py", "objective.py", "fast.py")


def _site() -> str:
    """The innermost rlse_fast frame of the Python stack (file:line function) and, in brackets, the
    network or engine module that called it (G, D, the objective, the loop), or '-'."""
    f = sys._getframe(2)
    inner = None
    while f is not None:
        path = f.f_code.co_filename
        if path.startswith(ROOT):
            here = f"{os.path.relpath(path, ROOT)}:{f.f_lineno} {f.f_code.co_name}"
            if inner is None:
                inner = here
            if path.endswith(_OWNERS):
                return inner if here == inner else f"{inner} [{os.path.basename(path)}]"
        f = f.f_back
    return inner or "-"


class OpCensus(TorchDispatchMode):
    """Counts the aten ops dispatched inside it by (phase, class, name), and the casts' and copies'
    sites (with the autograd node that runs them in the backward)."""

    def __init__(self):
        super().__init__()
        self.phase = PHASES[0]
        self.ops: collections.Counter = collections.Counter()  # (phase, class, name)
        self.sites: collections.Counter = collections.Counter()  # (phase, class, name, site)

    def record(self, cls: str, name: str, attribute: bool) -> None:
        self.ops[(self.phase, cls, name)] += 1
        if attribute:
            site = _site()
            node = torch._C._current_autograd_node() if self.phase == "backward" else None
            if node is not None:
                site = f"{node.name()} <- {site}"
            self.sites[(self.phase, cls, name, site)] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._overloadpacket.__name__
        if not func.is_view:
            cls = op_class(name)
            if cls is not None:
                if cls == "cast" and self.phase == PHASES[0] and not args[0].requires_grad:
                    name = "_to_copy(const)"  # of a tensor that needs no gradient: made from constants only
                self.record(cls, name, cls in ("cast", "copy"))
        return func(*args, **(kwargs or {}))

    @contextlib.contextmanager
    def phases(self):
        """Inside: torch.autograd.grad (the fast iteration's one backward call) switches the phase."""
        orig = torch.autograd.grad

        def grad(*args, **kwargs):
            self.phase = PHASES[1]
            try:
                return orig(*args, **kwargs)
            finally:
                self.phase = PHASES[2]

        torch.autograd.grad = grad
        try:
            yield
        finally:
            torch.autograd.grad = orig

    @contextlib.contextmanager
    def native_calls(self):
        """Inside: every call into the C++ extension is counted as one 'native' op."""
        try:
            from rlse_fast import _C
        except ImportError:
            yield
            return
        saved = {n: getattr(_C, n) for n in dir(_C) if not n.startswith("_") and callable(getattr(_C, n))}

        def counting(name, fn):
            def call(*args, **kwargs):
                self.record("native", name, False)
                return fn(*args, **kwargs)
            return call

        for n, fn in saved.items():
            setattr(_C, n, counting(n, fn))
        try:
            yield
        finally:
            for n, fn in saved.items():
                setattr(_C, n, fn)

    def summary(self) -> dict:
        by_class = {p: {c: 0 for c in CLASSES} for p in PHASES}
        for (phase, cls, _), n in self.ops.items():
            by_class[phase][cls] += n
        return {
            "by_class": by_class,
            "total": sum(self.ops.values()),
            "kernels": sum(n for (_, cls, _), n in self.ops.items() if cls != "alloc"),
            "ops": sorted(([p, c, n, k] for (p, c, n), k in self.ops.items()), key=lambda r: (-r[3], r[:3])),
            "sites": sorted(([p, c, n, s, k] for (p, c, n, s), k in self.sites.items()), key=lambda r: (-r[4], r[:4])),
        }


# ----------------------------------------------------------------------------- the cases


def networks(backbone: str, resolution: int = 64, seed: int = 0):
    """Random-weight (G, D) of `backbone` at `resolution`, channels up to 64, biases non-zero."""
    torch.manual_seed(seed)
    if backbone == "stylegan2":
        from rlse_fast.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
        G = Generator(GeneratorConfig(z_dim=64, w_dim=64, img_resolution=resolution, mapping_layers=2,
                                      channel_base=2048, channel_max=64))
        D = Discriminator(DiscriminatorConfig(img_resolution=resolution, channel_base=2048, channel_max=64))
    else:
        from rlse_fast.models.stylegan1 import Generator, GeneratorConfig
        from rlse_fast.models.stylegan1.discriminator import Discriminator, DiscriminatorConfig
        G = Generator(GeneratorConfig(z_dim=64, w_dim=64, img_resolution=resolution, mapping_layers=2,
                                      channel_base=1024, channel_max=64))
        D = Discriminator(DiscriminatorConfig(img_resolution=resolution, channel_base=1024, channel_max=64))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, t in list(G.named_parameters()) + list(D.named_parameters()):
            if name.endswith(("bias", "noise_strength")):
                t.add_(0.1 * torch.randn(t.shape, generator=gen))
    return G.eval().requires_grad_(False), D.eval().requires_grad_(False)


def make_loop(backbone: str, precision: str, channels_last: bool, faces: int = 2, factor: int = 4, **options):
    G, D = networks(backbone)
    fit = gaussian_fit.compute(G, 2048)
    size = G.img_resolution // factor
    lr = torch.rand(faces, 3, size, size, generator=torch.Generator().manual_seed(3))
    cfg = RLSEConfig.from_mode("rlse", steps=12)
    return FastLoop(G, D, lr, cfg, fit, seeds=list(range(faces)), precision=precision, channels_last=channels_last,
                    **options)


def census(loop: FastLoop) -> dict:
    """The counts of `loop`'s next iteration (run it warm: after at least one step)."""
    counter = OpCensus()
    with counter.phases(), counter.native_calls(), counter:
        loop.step()
    return counter.summary()


def _discriminator(backbone: str, resolution: int, **widths):
    if backbone == "stylegan2":
        from rlse_fast.models.stylegan2 import Discriminator, DiscriminatorConfig
    else:
        from rlse_fast.models.stylegan1.discriminator import Discriminator, DiscriminatorConfig
    return Discriminator(DiscriminatorConfig(img_resolution=resolution, **widths)).requires_grad_(False)


def _ls_pass(D, lr: torch.Tensor, dtype: torch.dtype | None):
    """L_s's forward through D for low-resolution faces lr in [0, 1] (the loop's `semantic.features`)."""
    from rlse_fast.engine import semantic
    mode = semantic.input_mode(D)
    names = semantic.block_names(D, 3, lr.shape[-1], mode)
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        return semantic.features(D, lr, names, mode=mode)


def count_discriminator(backbone: str, resolution: int) -> dict:
    """The ops of L_s's forward through D at `resolution` (a face at resolution / 16, the native ops),
    plain and prepared, bf16 and fp32: op counts do not depend on the channel widths, so 4 channels."""
    from rlse_fast.engine.fast import ops_impl
    from rlse_fast.models import registry
    D = _discriminator(backbone, resolution, channel_base=4 * resolution, channel_max=4)
    lr = torch.rand(1, 3, resolution // 16, resolution // 16).requires_grad_(True)
    out = {}
    for dtype in (torch.bfloat16, None):
        row = {}
        for what, net in (("plain", D), ("prepared", registry.prepare_discriminator(D, dtype))):
            counter = OpCensus()
            with ops_impl("cpp"), counter:
                _ls_pass(net, lr, dtype)
            row[what] = counter.summary()["kernels"]
        out["bf16" if dtype else "fp32"] = row
    return out


def time_discriminator(backbone: str, resolution: int, rounds: int = 7) -> dict:
    """L_s's pass through D (features of 2 low-resolution faces at resolution / 4, forward and the
    gradient to the image) with the plain D and with the prepared one (`registry.prepare_discriminator`),
    interleaved round by round, FFHQ channel widths, bf16 autocast and fp32: median and least ms of each
    (the least is the steadier on a loaded machine)."""
    from rlse_fast.models import registry
    D = _discriminator(backbone, resolution)
    size = resolution // 4
    lr = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    out = {}
    for dtype in (torch.bfloat16, None):
        nets = {"plain": D, "prepared": registry.prepare_discriminator(D, dtype)}
        times = {k: [] for k in nets}
        for _ in range(rounds + 1):  # the first round warms up
            for k, net in nets.items():
                x = lr.clone().requires_grad_(True)
                t = time.perf_counter()
                sum(f.float().sum() for f in _ls_pass(net, x, dtype)).backward()
                times[k].append(1e3 * (time.perf_counter() - t))
        med = {k: statistics.median(v[1:]) for k, v in times.items()}
        low = {k: min(v[1:]) for k, v in times.items()}
        out["bf16" if dtype else "fp32"] = {**{f"{k}_ms": m for k, m in med.items()},
                                            **{f"{k}_min_ms": m for k, m in low.items()},
                                            "ratio": med["plain"] / med["prepared"],
                                            "ratio_min": low["plain"] / low["prepared"]}
    return out


CASES = [(b, p, cl) for b in ("stylegan2", "stylegan1") for p in ("bf16", "fp32") for cl in (False, True)]


def case_name(backbone: str, precision: str, channels_last: bool) -> str:
    return f"{backbone} {precision} {'nhwc' if channels_last else 'nchw'}"


def table(name: str, s: dict, sites: int) -> str:
    lines = [f"{name}: {s['kernels']} ops that launch kernels on a GPU ({s['total']} with allocations; views excluded)",
             f"  {'class':<12}" + "".join(f"{p:>11}" for p in PHASES) + f"{'all':>8}"]
    for c in CLASSES:
        row = [s["by_class"][p][c] for p in PHASES]
        if sum(row):
            lines.append(f"  {c:<12}" + "".join(f"{n:>11d}" for n in row) + f"{sum(row):>8d}")
    if sites:
        lines.append("  casts and copies by site:")
        for phase, cls, op, site, n in s["sites"][:sites]:
            lines.append(f"  {n:>5d}  {phase:<9} {op:<9} {site}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write every case's counts and sites here")
    ap.add_argument("--sites", type=int, default=12, help="cast/copy sites printed per case (all go to --json)")
    ap.add_argument("--only", default="", help="a substring of the case names to keep, e.g. 'bf16'")
    ap.add_argument("--time", type=int, default=0, metavar="K",
                    help="instead of counting, time K warm iterations per case (median ms per iteration)")
    ap.add_argument("--d-time", type=int, default=0, metavar="R",
                    help="instead: time L_s's D pass, plain vs prepared D, FFHQ widths at R px, both backbones")
    ap.add_argument("--d-count", type=int, default=0, metavar="R",
                    help="instead: count the ops of L_s's D pass, plain vs prepared D, at R px, both backbones")
    ap.add_argument("--packed-styles", action="store_true",
                    help="run the loop with FastOptions(packed_styles=True): all style affines in one product")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = {}
    command = "python benchmarks/count_iteration_ops.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.d_count:
        for backbone in ("stylegan2", "stylegan1"):
            out[backbone] = count_discriminator(backbone, args.d_count)
            for prec, r in out[backbone].items():
                print(f"{backbone} D at {args.d_count} px, L_s forward, {prec}: {r['plain']} ops plain, "
                      f"{r['prepared']} prepared", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"command": command, "d_count": out}, indent=1))
        return 0
    if args.d_time:
        for backbone in ("stylegan2", "stylegan1"):
            out[backbone] = time_discriminator(backbone, args.d_time)
            for prec, r in out[backbone].items():
                print(f"{backbone} D at {args.d_time} px, {prec}: plain {r['plain_ms']:.1f} ms, prepared "
                      f"{r['prepared_ms']:.1f} ms, ratio {r['ratio']:.2f} (least: {r['plain_min_ms']:.1f}, "
                      f"{r['prepared_min_ms']:.1f}, ratio {r['ratio_min']:.2f})", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"command": command, "d_time": out}, indent=1))
        return 0
    for backbone, precision, cl in CASES:
        name = case_name(backbone, precision, cl)
        if args.only not in name:
            continue
        loop = make_loop(backbone, precision, cl, packed_styles=args.packed_styles)
        loop.step()  # warm: caches (bicubic matrices, filters' factors) filled
        if args.time:
            times = []
            for _ in range(min(args.time, loop.cfg.steps - 1)):
                t = time.perf_counter()
                loop.step()
                times.append(1e3 * (time.perf_counter() - t))
            out[name] = {"ms": statistics.median(times), "all_ms": times}
            print(f"{name}: {out[name]['ms']:.2f} ms per iteration (median of {len(times)})", flush=True)
            continue
        out[name] = census(loop)
        print(table(name, out[name], args.sites), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"torch": torch.__version__, "threads": 1, "faces": 2, "resolution": 64, "input": 16, "command": command,
                "packed_styles": args.packed_styles}
        args.json.write_text(json.dumps({"meta": meta, "cases": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
