"""`rlse-fast sr` on a folder: one process with T threads against a torchrun job of N ranks x T/N threads.

    python benchmarks/bench_launch.py [--faces 12] [--steps 30] [--threads 2] [--ranks 2] [--repeats 2] [--json out.json]

Faces: the first --faces of ../shared/data/celeba128_test resized to 64 px and downscaled 8x (8 px
inputs) for the bundled celeba64 prior. Each run is the whole command, timed from the outside: Python
and torch start-up, loading the weights, joining the process group and the super-resolution itself,
so faces/s is what a user sees. The Gaussian fit is cached before the first timed run. The settings
alternate (A B A B ...) so that a change in the machine's load falls on both.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "celeba128_test"


def make_inputs(folder: Path, n: int) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from rlse_fast.downsample import bicubic_downsample_ref
    from rlse_fast.imageio import save_image

    files = sorted(DATA.glob("*.jpg"))[:n]
    if len(files) < n:
        sys.exit(f"{DATA} holds {len(files)} faces, {n} wanted (../shared provides the data)")
    folder.mkdir(parents=True)
    for f in files:
        hr = np.asarray(Image.open(f).convert("RGB").resize((64, 64), Image.BICUBIC, reducing_gap=None))
        x = torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].double() / 255
        save_image(bicubic_downsample_ref(x, 8)[0].float(), folder / f"{f.stem}.png")


def run(args, inputs: Path, out: Path, ranks: int, threads: int, env: dict) -> float:
    sr = ["-m", "rlse_fast", "sr", str(inputs), str(out), "--weights", "celeba64", "--steps", str(args.steps),
          "--gaussian-samples", str(args.gaussian_samples), "--quiet"]
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), *sr]
    else:
        cmd = [sys.executable, *sr]
    # A rank takes cores // ranks threads (rlse_fast.launch); a single process reads OMP_NUM_THREADS.
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env={**env, "OMP_NUM_THREADS": str(threads)}, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", type=int, default=12)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2, help="threads of the single process (the cores used)")
    p.add_argument("--ranks", type=int, default=2, help="ranks of the torchrun job, threads // ranks threads each")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--gaussian-samples", type=int, default=100_000)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        make_inputs(tmp / "lr", args.faces)
        make_inputs(tmp / "warm", 1)
        run(args, tmp / "warm", tmp / "warm-out", 1, args.threads, env)  # fills the Gaussian-fit cache
        settings = {f"1 rank x {args.threads} threads": (1, args.threads),
                    f"{args.ranks} ranks x {args.threads // args.ranks} threads": (args.ranks, args.threads // args.ranks)}
        seconds = {name: [] for name in settings}
        for r in range(args.repeats):
            for i, (name, (ranks, threads)) in enumerate(settings.items()):
                seconds[name].append(run(args, tmp / "lr", tmp / f"out{r}-{i}", ranks, threads, env))
                print(f"{name}: {seconds[name][-1]:.1f} s, {args.faces / seconds[name][-1]:.3f} faces/s", flush=True)
        same = all((tmp / "out0-0" / f.name).read_bytes() == f.read_bytes() for f in (tmp / "out0-1").glob("*.png"))
    best = {name: min(s) for name, s in seconds.items()}
    names = list(settings)
    result = {
        "what": "rlse-fast sr on a folder, whole command timed (start-up included)",
        "command": "python benchmarks/bench_launch.py " + " ".join(sys.argv[1:]),
        "faces": args.faces, "steps": args.steps, "weights": "celeba64", "input_px": 8, "scale": 8,
        "cpu": platform.processor() or platform.machine(), "cores_visible": os.cpu_count(), "torch": torch.__version__,
        "load_average_at_end": os.getloadavg(),
        "seconds": seconds, "faces_per_s_best": {n: args.faces / s for n, s in best.items()},
        "speedup_ranks_over_threads": best[names[0]] / best[names[1]],
        "outputs_identical": same,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
