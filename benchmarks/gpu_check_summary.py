"""gpu_check.sh's last step: gather the stages' logs, the test report and the benchmarks' files into
one summary, $OUT/<gpu>-<date>.json, and print the stage table and the iteration rows.

    python benchmarks/gpu_check_summary.py OUT WORK TAG GPU DATE ELAPSED_S
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

out, work, tag, gpu, date, elapsed = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])


def read(path, limit=None):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    return text if limit is None else text[-limit:]


stages = []
for line in (read(work / "stages.tsv") or "").splitlines():
    name, rc, secs, limit = line.split("\t")
    log = read(work / f"{name}.log") or ""
    summary = [l for l in log.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", l)]
    stages.append({"stage": name, "rc": rc, "seconds": int(secs), "limit_s": int(limit),
                   "timed_out": rc == "124", "summary": summary[-1] if summary else None,
                   "log_tail": log[-3000:]})

tests = None
if (work / "tests.xml").is_file():
    try:
        root = ET.parse(work / "tests.xml").getroot()
        cases = []
        for tc in root.iter("testcase"):
            status = "passed"
            for kind in ("failure", "error", "skipped"):
                el = tc.find(kind)
                if el is not None:
                    status = kind
                    msg = (el.get("message") or "")[:300]
                    break
            else:
                msg = ""
            cases.append({"test": f"{tc.get('classname')}::{tc.get('name')}", "status": status,
                          "seconds": float(tc.get("time") or 0), "message": msg})
        tests = {"cases": cases, "counts": {s: sum(c["status"] == s for c in cases)
                                            for s in ("passed", "failure", "error", "skipped")}}
    except ET.ParseError as exc:
        tests = {"error": str(exc)}


def bench(name):
    try:
        data = json.loads(read(out / name) or "null")
    except json.JSONDecodeError:
        return None
    if not data:
        return None
    return [{"name": b["name"], "group": b.get("group"), "median_s": b["stats"]["median"],
             "min_s": b["stats"]["min"], "rounds": b["stats"]["rounds"], "extra_info": b.get("extra_info", {})}
            for b in data.get("benchmarks", [])]


def load_json(path):
    try:
        return json.loads(read(path) or "null")
    except json.JSONDecodeError as exc:
        return {"error": f"{path.name}: {exc}"}


iteration_lines = [json.loads(l) for l in (read(work / "iteration.jsonl") or "").splitlines() if l.strip()]


def git_rev():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except Exception:
        return None


summary = {
    "tag": tag, "gpu": gpu, "date": date,
    "elapsed_s": elapsed, "git": git_rev(), "env": read(work / "env.log"),
    "stages": stages, "tests": tests,
    "bench_iteration": bench("bench_iteration.json"), "iteration_records": iteration_lines,
    "bench_ops_gpu": bench("bench_ops_gpu.json"), "profile": read(out / "profile.txt"),
    "profile_sg1_b1": read(work / "profile_sg1_b1.txt"), "profile_sg1_b16": read(work / "profile_sg1_b16.txt"),
    "conv_layouts": load_json(work / "conv_layouts.json"), "sg1_before_after": load_json(work / "sg1_ab.json"),
    "fir_nhwc": load_json(work / "fir_nhwc.json"),
    "quality_fast": load_json(out / "quality_fast.json"),
    "bench_sg1": load_json(out / "bench_sg1.json"),
}
path = out / f"{tag}.json"
tmp = path.with_suffix(".json.tmp")
tmp.write_text(json.dumps(summary, indent=1))
tmp.replace(path)

print(f"\n== summary written to {path}")
print(f"{'stage':<9}{'rc':>8}{'s':>6}{'limit':>7}  result")
for s in stages:
    print(f"{s['stage']:<9}{s['rc']:>8}{s['seconds']:>6}{s['limit_s']:>7}  {s['summary'] or ''}")
rows = iteration_lines
if rows:
    print(f"\n{'case':<28}{'iter ms':>9}{'face s/100':>11}{'faces/s':>9}{'TFLOP/s':>9}{'GiB':>7}")
    for r in rows:
        if "iter_s" in r:
            print(f"{r['name'].split('[')[-1].rstrip(']'):<28}{r['iter_s'] * 1e3:>9.1f}{r['per_face_s']:>11.2f}"
                  f"{r['faces_per_s']:>9.3f}{r['tflops']:>9.1f}{r.get('max_memory_gib', 0):>7.1f}")
        else:
            print(f"{r['name']:<28}  {r.get('skipped')}")
