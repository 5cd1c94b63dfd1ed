"""`rlse-fast sr` (or `photo`) alone and beside a competing 2-thread process, before and after a change, in one run.

    git worktree add --detach ../before e787ad5 && cp rlse_fast/_C*.so ../before/rlse_fast/
    python benchmarks/bench_contention.py --before ../before [--photo ../shared/data/photos/four_researchers.jpg]
        [--steps 20] [--repeats 2] [--cap 240] [--nice -15] [--json benchmarks/results/cpu-contention-2026-12-07.json]

Variants (each the whole command, timed from the outside, with OMP_NUM_THREADS and OMP_WAIT_POLICY
removed from the environment so each tree's own default decides):
  before           the tree at --before (its defaults: libgomp's idle threads spin up to 300,000 times)
  before-active    the tree at --before with OMP_WAIT_POLICY=ACTIVE (idle threads only spin: the worst case
                   of the old default, which spins whenever a wait is shorter than its spin count)
  after            this tree (its defaults: OMP_WAIT_POLICY=PASSIVE, PyTorch's thread count)
  after-threads1   this tree with --threads 1
Each is run alone and beside the load: a second process whose 2 threads hash a buffer in a loop
(hashlib releases the GIL; no OpenMP, so the load itself neither spins nor yields). Runs alternate
(variant by variant, alone then loaded, repeated) so a change in the machine's load falls on all.
A run still going after --cap seconds is stopped and recorded as at least --cap. The 1-minute load
average before each run is recorded: other users of the machine show there. --nice runs the command
and the load at that niceness (root only below 0), so that on a machine others also use the two take
most of the CPU, as on an otherwise idle machine.
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

from PIL import Image

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


AFTER = ["--restore", "all", "--strength", "1"]
"""Today's `photo` keeps faces the bundled prior would make worse; the benchmark times the fits the
older tree made (every face restored and pasted as it was), so both sides do the same work."""


def face_sources(n: int) -> list[Path]:
    """The first n faces of ../shared/data/celeba128_test by name, else the bundled example n times."""
    shared = sorted((ROOT.parent / "shared" / "data" / "celeba128_test").glob("*.jpg"))[:n]
    return shared if len(shared) == n else [ROOT / "rlse_fast" / "data" / "example_lr.png"] * n


def fresh(cmd: list[str], out: Path) -> list[str]:
    """The command with its {out} placeholder replaced by a new, empty folder under `out`."""
    run = Path(tempfile.mkdtemp(dir=out, prefix="run_"))
    return [c.replace("{out}", str(run)) for c in cmd]


def env_for(tree: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    return {**env, "PYTHONPATH": str(tree), **extra}


def timed(cmd: list[str], env: dict, cap: float, nice: int = 0) -> tuple[float, float, bool]:
    """(wall seconds, CPU seconds (user + system), finished) of the command; stopped at `cap` seconds.
    CPU seconds beyond the work itself are what idle threads burn spinning, taken from everyone else."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.nice(nice)) if nice else None)
    try:
        _, err = proc.communicate(timeout=cap)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        finished = False
    else:
        finished = True
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), finished


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True,
                    help="the tree before the change (its rlse_fast/ with the built extension)")
    ap.add_argument("--command", choices=("sr", "photo"), default="sr",
                    help="sr: a folder of --faces 16 px faces in one batch, the same work in both trees (default); "
                         "photo: --photo, today's tree with --restore all (its pipeline sizes faces differently)")
    ap.add_argument("--faces", type=int, default=4)
    ap.add_argument("--photo", type=Path, default=PHOTO)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cap", type=float, default=240.0, help="seconds after which a run is stopped")
    ap.add_argument("--nice", type=int, default=0, help="niceness of the command and the load (e.g. -15, as root)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.command == "photo" and not args.photo.is_file():
        sys.exit(f"{args.photo} not found (../shared provides the photos)")
    if not (args.before / "rlse_fast").is_dir():
        sys.exit(f"--before {args.before} holds no rlse_fast/")

    out = Path(tempfile.mkdtemp(prefix="bench_contention_"))
    if args.command == "sr":
        faces = out / "faces"
        faces.mkdir()
        for i, path in enumerate(face_sources(args.faces)):
            Image.open(path).convert("RGB").resize((64, 64), Image.LANCZOS).resize((16, 16), Image.LANCZOS).save(
                faces / f"{i:02d}.png")
        # A fresh OUT each run (the {out} placeholder), so no run keeps another's results.
        base = [sys.executable, "-m", "rlse_fast", "sr", str(faces), "{out}/sr", "--weights", "celeba64",
                "--steps", str(args.steps), "--batch", str(args.faces), "--quiet"]
        after = []
    else:
        base = [sys.executable, "-m", "rlse_fast", "photo", str(args.photo), "{out}/out.png", "--weights", "celeba64",
                "--steps", str(args.steps), "--quiet"]
        after = AFTER
    variants = {"before": (env_for(args.before), []), "before-active": (env_for(args.before, OMP_WAIT_POLICY="ACTIVE"), []),
                "after": (env_for(ROOT), after), "after-threads1": (env_for(ROOT), after + ["--threads", "1"])}
    timed(fresh(base + after, out), env_for(ROOT), 3600)  # fills the Gaussian fit's cache and the page cache: not timed

    runs = []
    for rep in range(args.repeats):
        for name, (env, extra) in variants.items():
            for loaded in (False, True):
                load = subprocess.Popen([sys.executable, "-c", LOAD],
                                        preexec_fn=(lambda: os.nice(args.nice)) if args.nice else None) if loaded else None
                try:
                    if load:
                        time.sleep(1.0)  # the load's threads are running before the command starts
                    load_avg = os.getloadavg()[0]
                    seconds, cpu, finished = timed(fresh(base + extra, out), env, args.cap, args.nice)
                finally:
                    if load:
                        load.kill()
                        load.wait()
                runs.append({"variant": name, "loaded": loaded, "repeat": rep, "seconds": round(seconds, 2),
                             "cpu_seconds": round(cpu, 2), "finished": finished, "load_avg_1min": round(load_avg, 2)})
                print(f"{name:15s} {'loaded' if loaded else 'alone ':6s} {seconds:7.1f} s  cpu {cpu:6.1f} s"
                      f"{'' if finished else ' (stopped: at least)'}  load avg {load_avg:.2f}", flush=True)

    table = {}
    for name in variants:
        alone = statistics.median(r["seconds"] for r in runs if r["variant"] == name and not r["loaded"])
        loaded = statistics.median(r["seconds"] for r in runs if r["variant"] == name and r["loaded"])
        cpu_alone = statistics.median(r["cpu_seconds"] for r in runs if r["variant"] == name and not r["loaded"])
        cpu_loaded = statistics.median(r["cpu_seconds"] for r in runs if r["variant"] == name and r["loaded"])
        capped = any(not r["finished"] for r in runs if r["variant"] == name)
        table[name] = {"alone_s": round(alone, 2), "loaded_s": round(loaded, 2),
                       "slowdown": round(loaded / alone, 2), "cpu_alone_s": round(cpu_alone, 2),
                       "cpu_loaded_s": round(cpu_loaded, 2), "some_runs_stopped_at_cap": capped}
    print("\n| variant | alone: wall (s) | CPU (s) | beside a 2-thread load: wall (s) | CPU (s) | slowdown |\n"
          "|---|---|---|---|---|---|")
    for name, row in table.items():
        more = ">= " if row["some_runs_stopped_at_cap"] else ""
        print(f"| {name} | {row['alone_s']:.1f} | {row['cpu_alone_s']:.1f} | {more}{row['loaded_s']:.1f} | "
              f"{row['cpu_loaded_s']:.1f} | {more}{row['slowdown']:.1f}x |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": "python " + " ".join(sys.argv), "what": args.command, "faces": args.faces, "photo": str(args.photo), "steps": args.steps, "nice": args.nice,
            "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
            "note": "the machine was shared with other users (see load_avg_1min); compare variants within this run",
            "median": table, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
