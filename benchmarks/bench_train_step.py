"""Time of one training step of the prior (G step + D step, and R1 as lazy regularisation costs it)
under each option that changes it: reference vs native ops, the augmentation modes, bf16 on CUDA.
The variants run interleaved, round after round, so a loaded machine slows them alike; the table
gives each one's median and its ratio to the first.

    python benchmarks/bench_train_step.py --json benchmarks/results/cpu-train-step-2026-12-07.json
    python benchmarks/bench_train_step.py --device cuda --batch 32      # on a lent GPU
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from rlse_fast.models.stylegan2 import Discriminator, Generator  # noqa: E402
from rlse_fast.ops import dispatch  # noqa: E402
from rlse_fast.train.augment import augment  # noqa: E402
from rlse_fast.train.config import TrainConfig  # noqa: E402
from rlse_fast.train.losses import discriminator_step, generator_step, r1_step  # noqa: E402


def step_fn(G, D, cfg: TrainConfig, ops: str, mode: str, amp: bool, device):
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-5, betas=(0.0, 0.99))
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-5, betas=(0.0, 0.99))
    aug = lambda x: augment(x, mode, 0.5 if mode == "ada" else 1.0)  # noqa: E731
    kw = dict(augment=aug, amp=amp)
    real = torch.rand(cfg.batch, 3, cfg.resolution, cfg.resolution, device=device) * 2 - 1
    count = [0]

    def step():
        with dispatch.using(ops):
            generator_step(G, D, opt_G, torch.randn(cfg.batch, cfg.z_dim, device=device), **kw)
            discriminator_step(G, D, opt_D, torch.randn(cfg.batch, cfg.z_dim, device=device), real, **kw)
            if count[0] % cfg.r1_interval == 0:
                r1_step(D, opt_D, real, aug, cfg.gamma / 2 * cfg.r1_interval)
            count[0] += 1

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=4, help="steps per variant per round")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    cfg = TrainConfig(batch=args.batch, r1_interval=4)  # R1 every 4 steps so that each timed block holds one
    variants = [("ref", "none", False), ("auto", "none", False), ("auto", "diffaug", False), ("auto", "ada", False)]
    if device.type == "cuda":
        variants += [("auto", "none", True), ("auto", "ada", True)]
    steps = {}
    for ops, mode, amp in variants:
        torch.manual_seed(0)
        G = Generator(cfg.generator_config()).to(device).train()
        D = Discriminator(cfg.discriminator_config()).to(device).train()
        fn = step_fn(G, D, cfg, ops, mode, amp, device)
        fn()  # warm-up (kernels, autotuning, allocator)
        steps[(ops, mode, amp)] = fn
    times = {k: [] for k in steps}
    for _ in range(args.rounds):
        for key, fn in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[key].append((time.perf_counter() - t0) / args.steps)
    base = statistics.median(times[variants[0]])
    rows = []
    print(f"{'ops':5} {'augment':8} {'bf16':5} {'ms/step':>9} {'img/s':>8} {'ratio':>6}")
    for (ops, mode, amp), ts in times.items():
        med = statistics.median(ts)
        rows.append({"ops": ops, "augment": mode, "bf16": amp, "ms_per_step": med * 1000,
                     "img_per_s": args.batch / med, "ratio_to_first": med / base, "rounds_ms": [t * 1000 for t in ts]})
        print(f"{ops:5} {mode:8} {str(amp):5} {med * 1000:9.1f} {args.batch / med:8.1f} {med / base:6.2f}")
    if args.json:
        out = {"command": "python benchmarks/bench_train_step.py " + " ".join(sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d"), "device": str(device),
               "machine": "loaded shared CPU, 1 thread" if device.type == "cpu" else torch.cuda.get_device_name(),
               "batch": args.batch, "note": "R1 every 4 steps (lazy interval 4, training uses 16)", "rows": rows}
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
