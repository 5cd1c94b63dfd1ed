"""Does the fast path move quality? Eager fp32 (reference ops, the baseline) against the fast engine
(native kernels; fp32 and bf16 autocast; CUDA graphs on a GPU) on the same faces and seeds.

    python benchmarks/quality_fast.py [--faces 16] [--steps 100] [--device auto] [--json out.json]

Needs nothing outside the repository, so it also runs on the GPU machine (benchmarks/gpu_check.sh):
the faces are drawn from the bundled celeba64 prior (seeded; their 64 px images are the ground truth),
downscaled 8x with PULSE's bicubic, and super-resolved by every configuration, all faces in one
batch. Reported per configuration: the mean PSNR-Y against the ground truth, its paired difference
from the baseline with a 95% interval, the largest per-pixel difference from the baseline's images
(0..1 scale), the mean relative difference of the final loss, and the time. Faces drawn from the
prior are easier than real ones; the point is the difference between engines, not the level.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlse_fast.checkpoints import load_gan  # noqa: E402
from rlse_fast.config import RLSEConfig  # noqa: E402
from rlse_fast.downsample import bicubic_downsample_ref  # noqa: E402
from rlse_fast.evaluate.stats import mean_ci, paired_ci  # noqa: E402
from rlse_fast.engine.eager import prepare_fit  # noqa: E402
from rlse_fast.devices import pick_device  # noqa: E402
from rlse_fast.engine.fast import ops_impl  # noqa: E402
from rlse_fast.engine.select import run  # noqa: E402
from rlse_fast.memory import keep_freed_memory  # noqa: E402
from rlse_fast.metrics import psnr_batch  # noqa: E402
from rlse_fast.weights import bundled_path  # noqa: E402

FACTOR = 8


def _configs(device: torch.device) -> list[dict]:
    """(name, engine settings); the first is the baseline."""
    cuda = device.type == "cuda"
    return [
        {"name": "eager-fp32-ref", "fast": False, "precision": "fp32", "impl": "ref", "graphs": False},
        {"name": "fast-fp32", "fast": True, "precision": "fp32", "impl": "auto", "graphs": cuda},
        {"name": "fast-bf16", "fast": True, "precision": "bf16", "impl": "auto", "graphs": cuda},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    keep_freed_memory()
    device = pick_device(args.device)

    gan = load_gan(bundled_path("celeba64"))
    G = gan.generator.to(device).eval().requires_grad_(False)
    D = gan.discriminator.to(device).eval().requires_grad_(False)
    cfg = RLSEConfig(steps=args.steps)
    fit = prepare_fit(gan, cfg, device=device)
    with torch.no_grad():
        z = torch.randn(args.faces, G.z_dim, generator=torch.Generator().manual_seed(1234)).to(device)
        hr = ((G(z, noise_mode="const").clamp(-1, 1) + 1) / 2).float()
        lr = bicubic_downsample_ref(hr, FACTOR).clamp(0, 1)
        # 8-bit input and truth, as files would give them
        hr, lr = (hr * 255).round() / 255, (lr * 255).round() / 255

    meta = {"device": str(device), "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
            "faces": args.faces, "steps": args.steps, "factor": FACTOR, "weights": "celeba64",
            "torch": torch.__version__}
    results, base = [], None
    for c in _configs(device):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with ops_impl(c["impl"]):
            res = run(G, D, lr, cfg, fit, seeds=0, impl=c["impl"], fast=c["fast"], precision=c["precision"],
                      graphs=c["graphs"])
        seconds = time.perf_counter() - t0
        images = res.images.float().clamp(0, 1)
        out8 = (images * 255).round() / 255
        psnr = psnr_batch(out8 * 2 - 1, hr * 2 - 1, "y").tolist()
        loss = res.best_loss.float().cpu()
        row = {**c, "seconds": seconds, "psnr_y": mean_ci(psnr).mean, "psnr_y_per_face": psnr,
               "final_loss": loss.tolist()}
        if base is None:
            base = {"images": images, "psnr": dict(enumerate(psnr)), "loss": loss}
        else:
            d = paired_ci(dict(enumerate(psnr)), base["psnr"])
            row.update(psnr_y_diff=d.mean, psnr_y_diff_half=d.half,
                       max_pixel_diff=float((images - base["images"]).abs().max()),
                       mean_pixel_diff=float((images - base["images"]).abs().mean()),
                       loss_rel_diff=float(((loss - base["loss"]) / base["loss"]).mean()))
        results.append(row)
        print(f"{c['name']:16s} {seconds:7.2f} s  PSNR-Y {row['psnr_y']:.3f}"
              + ("" if row is results[0] else
                 f"  vs baseline {row['psnr_y_diff']:+.3f} ± {row['psnr_y_diff_half']:.3f} dB, max pixel diff "
                 f"{row['max_pixel_diff']:.4f}, mean {row['mean_pixel_diff']:.5f}, loss {row['loss_rel_diff']:+.2%}"),
              flush=True)
        if args.json:  # after every configuration, so that a time limit keeps what was measured
            tmp = args.json.with_suffix(".tmp")
            tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
            tmp.replace(args.json)


if __name__ == "__main__":
    main()
