"""StyleGAN v1's RLSE iteration with and without this round's kernels, in one interleaved run.

    python benchmarks/bench_sg1_fused.py --resolution 128 --batches 1,2 --rounds 3   # -> benchmarks/results/cpu-sg1-fused-<date>.json

Variants of the same networks (random weights of NVIDIA's FFHQ channel shapes; bench_backbones.networks),
the paper's RLSE (L_s native, per-face fine-tuning), the fast engine in fp32 ('auto' ops: the C++
kernels on a CPU):
  before   TF's fusion boundary (fused resampling convs from 128 px only) and the plain-PyTorch
           AdaIN epilogue: the code before the fused AdaIN kernels and the fused convs everywhere
  fused    fused resampling convs at every resolution (on a CPU from 64 px: stylegan1_layers.fused_here),
           plain-PyTorch AdaIN
  adain    TF's fusion boundary, the native AdaIN kernels (C++ on a CPU, Triton on a GPU)
  after    both
Rounds alternate the variants; each keeps its fastest round (the machine is shared: the minimum is
the least disturbed measurement). The ratios before / variant are the result.

    python benchmarks/bench_sg1_fused.py --layers --rounds 5    # -> benchmarks/results/cpu-sg1-fused-layers-<date>.json

--layers: each resampling conv alone, fused vs unfused, forward + input and weight gradients, one
face with its own weights (G's up-convs 8..128 px, D's down-convs out of 8..128 px, FFHQ channels):
where the fused 4x4 kernels pay on this device (the CPU's threshold, stylegan1_layers.fused_here).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_backbones import networks, time_fast  # noqa: E402
from rlse_fast import flops  # noqa: E402
from rlse_fast.config import RLSEConfig  # noqa: E402
from rlse_fast.imageio import atomic_write  # noqa: E402
from rlse_fast.models.stylegan1 import layers as stylegan1_layers  # noqa: E402

VARIANTS = ("before", "fused", "adain", "after")
TF_FUSED_MIN = 128  # TF StyleGAN's fused_scale='auto'


@contextlib.contextmanager
def variant(G, D, name: str):
    """The networks as `name` runs them (see the module docstring); restored on exit."""
    everywhere = name in ("fused", "after")
    ups = [layer for layer in G.synthesis.layers() if layer.up]
    blocks = [getattr(D, f"b{r}") for r in D.block_resolutions]
    saved = [m.fused for m in ups + blocks], stylegan1_layers.adain_epilogue
    for m in ups + blocks:
        m.fused = everywhere or m.resolution >= TF_FUSED_MIN
    if name in ("before", "fused"):
        stylegan1_layers.adain_epilogue = functools.partial(saved[1], impl="ref")
    try:
        yield
    finally:
        for m, f in zip(ups + blocks, saved[0]):
            m.fused = f
        stylegan1_layers.adain_epilogue = saved[1]


def layers(device, rounds: int) -> list[dict]:
    """Per-resolution fused vs unfused timings of the resampling convs (see the module docstring)."""
    from rlse_fast.models.stylegan1 import GeneratorConfig

    g = GeneratorConfig()
    rows = []
    for res in (8, 16, 32, 64, 128):
        c_lo, c_hi = g.channels(res // 2), g.channels(res)
        gen = torch.Generator().manual_seed(res)
        cases = {  # G: c(res/2) -> c(res) into res px; D: c(res) -> c(res/2) out of res px
            "up": (torch.randn(1, c_lo, res // 2, res // 2, generator=gen), torch.randn(1, c_hi, c_lo, 3, 3, generator=gen),
                   stylegan1_layers.up_conv),
            "down": (torch.randn(1, c_hi, res, res, generator=gen), torch.randn(c_lo, c_hi, 3, 3, generator=gen),
                     stylegan1_layers.conv_down),
        }
        best: dict[tuple[str, bool], float] = {}
        for _ in range(rounds):
            for kind, (x, w, op) in cases.items():
                for fused in (False, True):
                    xr, wr = x.to(device).requires_grad_(True), w.to(device).requires_grad_(True)
                    t = time.perf_counter()
                    y = op(xr, wr, fused)
                    y.backward(torch.ones_like(y))
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    best[(kind, fused)] = min(best.get((kind, fused), float("inf")), time.perf_counter() - t)
        for kind in cases:
            row = {"conv": kind, "resolution": res, "unfused_s": best[(kind, False)], "fused_s": best[(kind, True)]}
            rows.append(row)
            print(f"{kind:<5} {res:5d} px  unfused {row['unfused_s'] * 1e3:8.1f} ms  fused {row['fused_s'] * 1e3:8.1f} ms  "
                  f"{row['unfused_s'] / row['fused_s']:5.2f}x", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--factor", type=int, default=16)
    p.add_argument("--batches", default="1")
    p.add_argument("--precision", default="fp32", help="the fast engine's precision: fp32 or bf16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--small", action="store_true", help="tiny channel counts (a dry run)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--layers", action="store_true", help="the per-layer fused vs unfused table instead")
    p.add_argument("--json", default=None, help="default: benchmarks/results/cpu-sg1-fused-<date>.json on the CPU")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    if args.layers:
        return _write(args, argv, device, {"layers": layers(device, args.rounds)}, "cpu-sg1-fused-layers")
    G, D, fit = networks("stylegan1", args.resolution, device, small=args.small)
    cfg = RLSEConfig.from_mode("rlse", semantic_input="native")
    best: dict[tuple[str, int], list[float]] = {}
    for rnd in range(args.rounds):
        for batch in (int(b) for b in args.batches.split(",")):
            lo = args.resolution // args.factor
            lr = torch.rand(batch, 3, lo, lo, generator=torch.Generator().manual_seed(0)).to(device)
            for name in VARIANTS:
                with variant(G, D, name):
                    it = time_fast(G, D, lr, cfg, fit, args.warmup, args.iters, device, args.precision)
                best.setdefault((name, batch), []).append(it)
                print(f"round {rnd}: {name:<7} b{batch} {it * 1e3:9.1f} ms/iter", flush=True)
    records = []
    for (name, batch), rounds in best.items():
        before = min(best[("before", batch)])
        model = flops.for_config(G, D, cfg, batch=batch, factor=args.factor)
        records.append({"variant": name, "batch": batch, "iter_s": min(rounds), "rounds_s": rounds,
                        "speedup_vs_before": before / min(rounds),
                        "tflop_per_iter_fused": model.total / 1e12})
        print(f"{name:<7} b{batch} {min(rounds) * 1e3:9.1f} ms/iter  {before / min(rounds):5.2f}x before")
    return _write(args, argv, device, {"resolution": args.resolution, "factor": args.factor,
                                       "precision": args.precision, "small": args.small, "records": records},
                  "cpu-sg1-fused")


def _write(args, argv, device, body: dict, stem: str) -> int:
    out = args.json
    if out is None and device.type == "cpu":
        out = HERE / "results" / f"{stem}-{time.strftime('%Y-%m-%d')}.json"
    if out:
        doc = {"command": "python benchmarks/bench_sg1_fused.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "device": str(device), "threads": torch.get_num_threads() if device.type == "cpu" else None,
               "torch": torch.__version__, **body,
               "note": "shared machine (other processes running): compare ratios in one run, not absolute times"}
        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1)))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
