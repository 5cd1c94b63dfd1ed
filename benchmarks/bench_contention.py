"""`rlse-fast photo` alone and beside a competing 2-thread process, before and after a change, in one run.

    python benchmarks/bench_contention.py [--before /work/main] [--photo ../shared/data/photos/four_researchers.jpg]
        [--steps 20] [--repeats 2] [--cap 240] [--json benchmarks/results/cpu-contention-2026-12-07.json]

Variants (each the whole command, timed from the outside, with OMP_NUM_THREADS and OMP_WAIT_POLICY
removed from the environment so each tree's own default decides):
  before           the tree at --before (its defaults: libgomp's spinning idle threads)
  after            this tree (its defaults: OMP_WAIT_POLICY=PASSIVE, PyTorch's thread count)
  after-threads1   this tree with --threads 1
Each is run alone and beside the load: a second process whose 2 threads hash a buffer in a loop
(hashlib releases the GIL; no OpenMP, so the load itself neither spins nor yields). Runs alternate
(variant by variant, alone then loaded, repeated) so a change in the machine's load falls on all.
A run still going after --cap seconds is stopped and recorded as at least --cap. The 1-minute load
average before each run is recorded: other users of the machine show there.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "photos" / "four_researchers.jpg"

LOAD = """
import hashlib, threading
buf = b"x" * (1 << 20)
def work():
    while True:
        hashlib.sha256(buf).digest()
threads = [threading.Thread(target=work, daemon=True) for _ in range(2)]
[t.start() for t in threads]
threads[0].join()
"""


def env_for(tree: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(tree)
    return env


def timed(cmd: list[str], env: dict, cap: float) -> tuple[float, bool]:
    """(seconds, finished) of the command; stopped at `cap` seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=cap)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return cap, False
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    return time.perf_counter() - start, True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, default=ROOT.parent.parent / "main",
                    help="the tree before the change (its rlse_fast/ with the built extension)")
    ap.add_argument("--photo", type=Path, default=PHOTO)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cap", type=float, default=240.0, help="seconds after which a run is stopped")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not args.photo.is_file():
        sys.exit(f"{args.photo} not found (../shared provides the photos)")
    if not (args.before / "rlse_fast").is_dir():
        sys.exit(f"--before {args.before} holds no rlse_fast/")

    out = Path(tempfile.mkdtemp(prefix="bench_contention_"))
    base = [sys.executable, "-m", "rlse_fast", "photo", str(args.photo), str(out / "out.png"), "--weights", "celeba64",
            "--steps", str(args.steps), "--quiet"]
    variants = {"before": (args.before, []), "after": (ROOT, []), "after-threads1": (ROOT, ["--threads", "1"])}
    timed(base, env_for(ROOT), 3600)  # fills the Gaussian fit's cache and the page cache: not timed

    runs = []
    for rep in range(args.repeats):
        for name, (tree, extra) in variants.items():
            for loaded in (False, True):
                load = subprocess.Popen([sys.executable, "-c", LOAD]) if loaded else None
                try:
                    if load:
                        time.sleep(1.0)  # the load's threads are running before the command starts
                    load_avg = os.getloadavg()[0]
                    seconds, finished = timed(base + extra, env_for(tree), args.cap)
                finally:
                    if load:
                        load.kill()
                        load.wait()
                runs.append({"variant": name, "loaded": loaded, "repeat": rep, "seconds": round(seconds, 2),
                             "finished": finished, "load_avg_1min": round(load_avg, 2)})
                print(f"{name:15s} {'loaded' if loaded else 'alone ':6s} {seconds:7.1f} s"
                      f"{'' if finished else ' (stopped: at least)'}  load avg {load_avg:.2f}", flush=True)

    table = {}
    for name in variants:
        alone = statistics.median(r["seconds"] for r in runs if r["variant"] == name and not r["loaded"])
        loaded = statistics.median(r["seconds"] for r in runs if r["variant"] == name and r["loaded"])
        capped = any(not r["finished"] for r in runs if r["variant"] == name)
        table[name] = {"alone_s": round(alone, 2), "loaded_s": round(loaded, 2),
                       "slowdown": round(loaded / alone, 2), "some_runs_stopped_at_cap": capped}
    print("\n| variant | alone (s) | beside a 2-thread load (s) | slowdown |\n|---|---|---|---|")
    for name, row in table.items():
        more = ">= " if row["some_runs_stopped_at_cap"] else ""
        print(f"| {name} | {row['alone_s']:.1f} | {more}{row['loaded_s']:.1f} | {more}{row['slowdown']:.1f}x |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": "python " + " ".join(sys.argv), "photo": str(args.photo), "steps": args.steps,
            "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
            "note": "the machine was shared with other users (see load_avg_1min); compare variants within this run",
            "median": table, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
