"""Where one fast iteration spends its time: torch.profiler's top ops, written to a file.

    python benchmarks/profile_iteration.py --resolution 1024 --batch 4 --precision bf16 --out profile.txt

    python benchmarks/profile_iteration.py --backbone stylegan1 --resolution 1024 --batch 16 --out profile_sg1_b16.txt

Random-weight networks: StyleGAN2 config-f, or StyleGAN v1 FFHQ (--backbone stylegan1, L_s native).
The op table comes from one iteration of the fast engine run eagerly (graphs off: the same
`FastLoop._iteration` that the graph replays, but with each op visible), sorted by device time on
CUDA (CPU time without CUDA), followed by the kernels bucketed by family and by forward / backward /
optimiser (profile_buckets.py; the profiled iteration synchronises around its backward call). Then,
on CUDA, the graphed iteration is timed with events over a few replays, for the launch overhead the
graph removes ('eager fast' vs 'graph replay' per iteration) and against the kernel sum.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlse_fast import flops, gaussian_fit  # noqa: E402
from rlse_fast.config import RLSEConfig  # noqa: E402
from rlse_fast.engine.fast import FastLoop  # noqa: E402
from rlse_fast.models import stylegan1, stylegan2  # noqa: E402
from rlse_fast.models.stylegan1 import discriminator as stylegan1_discriminator  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profile_buckets import buckets, phase_marks, table as bucket_table  # noqa: E402


def _time(loop: FastLoop, n: int, cuda: bool) -> float:
    """Seconds per iteration over n steps (events on CUDA)."""
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            loop.step()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3 / n
    t0 = time.perf_counter()
    for _ in range(n):
        loop.step()
    return (time.perf_counter() - t0) / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=1024)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--factor", type=int, default=None, help="downscale factor (default 16 at 1024, else 8)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--backbone", choices=["stylegan2", "stylegan1"], default="stylegan2")
    p.add_argument("--channel-base", type=int, default=None, help="default: 32768 (StyleGAN2), 16384 (v1)")
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--channels-last", action="store_true", help="FastLoop(channels_last=True): D and G in NHWC (G one face at a time)")
    p.add_argument("--rows", type=int, default=40, help="ops listed")
    p.add_argument("--out", default="profile_iteration.txt")
    args = p.parse_args(argv)

    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    res, batch = args.resolution, args.batch
    factor = args.factor or (16 if res == 1024 else 8)
    v1 = args.backbone == "stylegan1"
    g_mod, d_mod = (stylegan1, stylegan1_discriminator) if v1 else (stylegan2, stylegan2)
    ch = dict(channel_base=args.channel_base or (16384 if v1 else 32768), channel_max=args.channel_max)
    torch.manual_seed(0)
    G = g_mod.Generator(g_mod.GeneratorConfig(img_resolution=res, **ch)).eval().requires_grad_(False).to(dev)
    D = d_mod.Discriminator(d_mod.DiscriminatorConfig(img_resolution=res, **ch)).eval().requires_grad_(False).to(dev)
    fit = {k: v.to(dev) for k, v in gaussian_fit.compute(G, 4096, device=dev).items()}
    lr = torch.rand(batch, 3, res // factor, res // factor, device=dev)
    cfg = RLSEConfig.from_mode("rlse", steps=100, semantic_input="native") if v1 else RLSEConfig(steps=100)
    f = flops.for_config(G, D, cfg, batch=batch, factor=factor)

    lines = [f"profile of one fast iteration: {args.backbone}, {res}px, batch {batch}, {args.precision}"
             + (", channels_last" if args.channels_last else "") + f", {dev}"
             + (f" ({torch.cuda.get_device_name()})" if cuda else "") + f", torch {torch.__version__}",
             f"analytic FLOPs per iteration: {f.total / 1e12:.3f} TFLOP (G {f.generator / 1e12:.3f}, "
             f"D {f.discriminator / 1e12:.3f})", ""]

    loop = FastLoop(G, D, lr, cfg, fit, seeds=list(range(batch)), precision=args.precision, graphs=False,
                    channels_last=args.channels_last)
    for _ in range(2):  # lazy initialisation, cuDNN's choices
        loop.step()
    if cuda:
        torch.cuda.synchronize()
    eager_s = _time(loop, 2, cuda)
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof, phase_marks():
        loop.step()
        if cuda:
            torch.cuda.synchronize()
    kernel_buckets = buckets(prof, cuda)
    table = None
    for key in (["self_device_time_total", "self_cuda_time_total"] if cuda else ["self_cpu_time_total"]):
        try:
            table = prof.key_averages().table(sort_by=key, row_limit=args.rows)
            break
        except (KeyError, AttributeError, RuntimeError):
            continue
    lines += [f"fast, graphs off: {eager_s * 1e3:.2f} ms/iteration ({f.total / eager_s / 1e12:.1f} TFLOP/s)", "",
              table or "(no table)", "", bucket_table(kernel_buckets, "kernels" if cuda else "CPU ops (self time)"), ""]
    loop.close()
    del loop

    if cuda:
        loop = FastLoop(G, D, lr, cfg, fit, seeds=list(range(batch)), precision=args.precision, graphs=True,
                        channels_last=args.channels_last)
        for _ in range(loop.options.warmup + 1):
            loop.step()
        if loop.capture.graph is None:
            lines.append(f"graph capture failed: {loop.capture.error}")
        else:
            graph_s = _time(loop, 5, cuda)
            lines.append(f"fast, graph replay: {graph_s * 1e3:.2f} ms/iteration "
                         f"({f.total / graph_s / 1e12:.1f} TFLOP/s); graph saves {(eager_s - graph_s) * 1e3:.2f} ms; "
                         f"kernel sum {kernel_buckets['total_us'] / 1e3:.2f} ms "
                         f"({100 * kernel_buckets['total_us'] / 1e3 / (graph_s * 1e3):.0f}% of the replay)")
        lines.append(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
        loop.close()

    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
