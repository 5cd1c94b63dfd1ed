"""Does `--batch` change a face's result? Each of 3 faces alone against the same 3 in one batch.

    python benchmarks/batch_equivalence.py [--steps 1 100] [--device auto] [--json out.json]

The faces are drawn from the bundled celeba64 prior (seeded), downscaled 8x and rounded to 8 bits
as files would give them; `rlse-fast sr`'s engine runs them with one seed, as the CLI does. Reported
per step count: the mean and largest absolute difference of the 8-bit outputs (in 1/255), and how
many of the 3 x 64 x 64 x 3 values differ at all; and for the longest run, the largest float
difference of the current iterates (0..1 scale) at a few steps, to show the growth. Batched convolutions and reductions add in another
order, so the first iterate already differs by float rounding; the optimiser then amplifies it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlse_fast.checkpoints import load_gan  # noqa: E402
from rlse_fast.config import RLSEConfig  # noqa: E402
from rlse_fast.downsample import bicubic_downsample_ref  # noqa: E402
from rlse_fast.engine.eager import prepare_fit  # noqa: E402
from rlse_fast.devices import pick_device  # noqa: E402
from rlse_fast.engine.select import pick_engine, run  # noqa: E402
from rlse_fast.imageio import to_uint8  # noqa: E402
from rlse_fast.memory import keep_freed_memory  # noqa: E402
from rlse_fast.weights import bundled_path  # noqa: E402

FACES, FACTOR = 3, 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    fast, precision = pick_engine("auto", "auto", device)  # what `rlse-fast sr` runs by default

    gan = load_gan(bundled_path("celeba64"))
    G = gan.generator.to(device).eval().requires_grad_(False)
    D = gan.discriminator.to(device).eval().requires_grad_(False)
    with torch.no_grad():
        z = torch.randn(FACES, G.z_dim, generator=torch.Generator().manual_seed(1234)).to(device)
        hr = ((G(z, noise_mode="const").clamp(-1, 1) + 1) / 2).float()
        lr = (bicubic_downsample_ref(hr, FACTOR).clamp(0, 1) * 255).round() / 255

    rows = []
    for steps in args.steps:
        cfg = RLSEConfig(steps=steps)
        fit = prepare_fit(gan, cfg, device=device)

        iterates: dict[tuple, torch.Tensor] = {}

        def sr(batch, key):
            def keep(step, img, losses):
                for j in range(img.shape[0]):
                    iterates[(key + j, step)] = img[j].detach().cpu()

            res = run(G, D, batch, cfg, fit, seeds=0, fast=fast, precision=precision, on_step=keep)
            return torch.stack([torch.from_numpy(to_uint8(img)).float() for img in res.images])

        alone = torch.cat([sr(lr[i:i + 1], i) for i in range(FACES)])
        together = sr(lr, FACES)
        diff = (alone - together).abs()
        trace = {s: max(float((iterates[(i, s)] - iterates[(FACES + i, s)]).abs().max()) for i in range(FACES))
                 for s in sorted({0, 1, 2, 5, 10, 20, 50, steps - 1}) if s < steps}
        row = {"steps": steps, "mean_abs_diff_255": float(diff.mean()), "max_abs_diff_255": float(diff.max()),
               "values_differing": int((diff > 0).sum()), "values": diff.numel(),
               "max_float_diff_of_iterate_at_step": trace}
        rows.append(row)
        print(f"{steps:4d} steps: mean |alone - batch of 3| {row['mean_abs_diff_255']:.3f}/255, max "
              f"{row['max_abs_diff_255']:.0f}/255, {row['values_differing']} of {row['values']} 8-bit values differ; "
              f"iterates' float max diff by step: " + ", ".join(f"{k}: {v:.1e}" for k, v in trace.items()),
              flush=True)
    meta = {"device": str(device), "engine": "fast" if fast else "eager", "precision": precision,
            "faces": FACES, "factor": FACTOR, "weights": "celeba64", "threads": args.threads,
            "torch": torch.__version__}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
