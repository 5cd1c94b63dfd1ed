"""One full RLSE iteration, StyleGAN (v1) vs StyleGAN2, at the same resolution, measured in one run.

    python benchmarks/bench_backbones.py --rounds 2           # CPU, 256 px, 1 thread -> benchmarks/results/cpu-backbones-<date>.json
    python benchmarks/bench_backbones.py --device cuda --resolution 1024 --batches 1,16 --engines eager-fp32,fast-bf16

Random weights of the official channel shapes (StyleGAN2 config-f: min(32768 // r, 512); StyleGAN v1
FFHQ: min(16384 // r, 512)), z/w 512, 8 mapping layers, input resolution / 16, the paper's RLSE
(L_p + L_s + L_g, per-face fine-tuning). StyleGAN v1 runs with L_s 'native' (its default: the
low-resolution images enter D at their own resolution) and 'upsampled' (as StyleGAN2 must).
Each case: `warmup` iterations, then the median of `iters` timed ones (`--rounds`: the whole set
repeated, the backbones alternating, each case's fastest round kept) (the eager engine's interval
between steps; the fast engine's replayed iterations, synchronised), with the analytic FLOPs of
`rlse_fast.flops` and TFLOP/s. On a GPU a case that runs out of memory is recorded as skipped.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlse_fast import flops, gaussian_fit  # noqa: E402
from rlse_fast.config import RLSEConfig  # noqa: E402
from rlse_fast.engine.eager import super_resolve  # noqa: E402
from rlse_fast.engine.fast import FastLoop, ops_impl  # noqa: E402
from rlse_fast.models import stylegan1, stylegan2  # noqa: E402
from rlse_fast.models.stylegan1 import discriminator as stylegan1_discriminator  # noqa: E402


def networks(backbone: str, res: int, device, small: bool = False):
    """Random networks of the official channel shapes (small: channels min(1024 // r, 64), for dry runs)."""
    torch.manual_seed(0)
    ch = dict(channel_base=1024, channel_max=64) if small else {}
    if backbone == "stylegan2":
        G = stylegan2.Generator(stylegan2.GeneratorConfig(img_resolution=res, **ch))
        D = stylegan2.Discriminator(stylegan2.DiscriminatorConfig(img_resolution=res, **ch))
    else:
        G = stylegan1.Generator(stylegan1.GeneratorConfig(img_resolution=res, **ch))
        D = stylegan1_discriminator.Discriminator(stylegan1_discriminator.DiscriminatorConfig(img_resolution=res, **ch))
    G = G.eval().requires_grad_(False).to(device)
    D = D.eval().requires_grad_(False).to(device)
    fit = gaussian_fit.compute(G, 2048, device=device)
    return G, D, {k: v.to(device) for k, v in fit.items()}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_eager(G, D, lr, cfg, fit, warmup, iters, device) -> float:
    stamps = []
    cfg = RLSEConfig(**{**cfg.to_dict(), "steps": warmup + iters + 1})

    def on_step(step, img, losses):
        sync(device)
        stamps.append(time.perf_counter())

    with ops_impl("ref"):
        super_resolve(G, D, lr, cfg, fit, seeds=list(range(lr.shape[0])), impl="ref", on_step=on_step)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])][warmup:]
    return statistics.median(gaps)


def time_fast(G, D, lr, cfg, fit, warmup, iters, device, precision) -> float:
    cfg = RLSEConfig(**{**cfg.to_dict(), "steps": warmup + 3 + iters})
    loop = FastLoop(G, D, lr, cfg, fit, seeds=list(range(lr.shape[0])), precision=precision, warmup=warmup)
    try:
        for _ in range(warmup + 1):
            loop.step()
        sync(device)
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            loop.step()
            sync(device)
            times.append(time.perf_counter() - t)
        return statistics.median(times)
    finally:
        loop.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--factor", type=int, default=16)
    p.add_argument("--batches", default="1")
    p.add_argument("--engines", default="eager-fp32", help="comma list of eager-fp32, fast-fp32, fast-bf16")
    p.add_argument("--backbones", default="stylegan1-native,stylegan1-upsampled,stylegan2")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--small", action="store_true", help="tiny channel counts (a dry run of the script)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1, help="repeat every case, alternating backbones; keep each case's fastest")
    p.add_argument("--json", default=None, help="output path (default: benchmarks/results/cpu-backbones-<date>.json on the CPU)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    res, factor = args.resolution, args.factor
    records = {}
    # Rounds alternate the backbones, and each case keeps its fastest round: on a shared machine the
    # load drifts, and the minimum is the least disturbed measurement of each.
    for rnd in range(args.rounds):
        for backbone_mode in args.backbones.split(","):
            backbone, _, mode = backbone_mode.partition("-")
            G, D, fit = networks(backbone, res, device, small=args.small)
            cfg = RLSEConfig.from_mode("rlse", semantic_input=mode or "auto")
            for batch in (int(b) for b in args.batches.split(",")):
                lr = torch.rand(batch, 3, res // factor, res // factor, generator=torch.Generator().manual_seed(0)).to(device)
                model = flops.for_config(G, D, cfg, batch=batch, factor=factor)
                for engine in args.engines.split(","):
                    name = f"{backbone_mode}-{engine}-b{batch}"
                    try:
                        if engine == "eager-fp32":
                            it = time_eager(G, D, lr, cfg, fit, args.warmup, args.iters, device)
                        else:
                            it = time_fast(G, D, lr, cfg, fit, args.warmup, args.iters, device, engine.split("-")[1])
                    except torch.cuda.OutOfMemoryError as exc:
                        records[name] = {"name": name, "skipped": f"out of memory: {str(exc)[:120]}"}
                        torch.cuda.empty_cache()
                        continue
                    rounds = records.get(name, {}).get("rounds_s", []) + [it]
                    it = min(rounds)
                    rec = {"name": name, "backbone": backbone, "semantic_input": mode or "upsampled", "engine": engine,
                           "resolution": res, "factor": factor, "batch": batch, "iter_s": it, "rounds_s": rounds,
                           "per_face_s": 100 * it / batch, "faces_per_s": batch / (100 * it),
                           "tflop_per_iter": model.total / 1e12, "tflops": model.total / it / 1e12,
                           "flops": model.as_dict()}
                    records[name] = rec
                    print(f"round {rnd}: {name:<40} {rounds[-1] * 1e3:9.1f} ms/iter  {rec['tflop_per_iter']:.3f} TFLOP/iter",
                          flush=True)
            del G, D
    records = list(records.values())
    for rec in records:
        if "iter_s" in rec:
            print(f"{rec['name']:<40} {rec['iter_s'] * 1e3:9.1f} ms/iter  {rec['per_face_s']:8.2f} s/face (100 it)  "
                  f"{rec['tflop_per_iter']:.3f} TFLOP/iter  {rec['tflops']:.2f} TFLOP/s")
    by = {(r["backbone"], r["semantic_input"], r["engine"], r["batch"]): r for r in records if "iter_s" in r}
    ratios = {}
    for (bb, mode, engine, batch), r in by.items():
        ref = by.get(("stylegan2", "upsampled", engine, batch))
        if bb == "stylegan1" and ref:
            ratios[f"stylegan2 / stylegan1-{mode} {engine} b{batch}"] = {
                "time": ref["iter_s"] / r["iter_s"], "flops": ref["tflop_per_iter"] / r["tflop_per_iter"]}
    for k, v in ratios.items():
        print(f"{k}: time {v['time']:.2f}x, FLOPs {v['flops']:.2f}x")
    out = args.json
    if out is None and device.type == "cpu":
        out = Path(__file__).resolve().parent / "results" / f"cpu-backbones-{time.strftime('%Y-%m-%d')}.json"
    if out:
        doc = {"command": "python benchmarks/bench_backbones.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "device": str(device), "threads": torch.get_num_threads() if device.type == "cpu" else None,
               "torch": torch.__version__, "small": args.small, "records": records, "ratios": ratios}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(out) + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(out)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
