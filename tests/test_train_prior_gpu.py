"""benchmarks/train_prior_gpu.sh, dry-run on the CPU with a tiny network: a fresh session, the
files it returns, `collect`, and a second session that resumes from what was collected."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


from rlse_fast.train.data import pack_faces

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_prior_gpu.sh"
TINY = ["--resolution", "16", "--z-dim", "32", "--mapping-layers", "1", "--channel-base", "256",
        "--channel-max", "32", "--device", "cpu", "--batch", "4"]


def test_session_collect_resume(tmp_path, face_folder):
    faces = face_folder(8)
    base = tmp_path / "prior-gpu"
    pack_faces(faces, 16, base / "data" / "faces-16.faces", progress=False)
    env = {**os.environ, "RLSE_PRIOR_BASE": str(base), "RLSE_PRIOR_DATA": str(base / "data" / "faces-16.faces"),
           "RLSE_PRIOR_INIT": "none", "RLSE_PRIOR_BATCH": "4", "RLSE_PRIOR_PREFLIGHT": "0", "PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def session(out: Path, kimg: str) -> list[str]:
        done = subprocess.run(["bash", str(SCRIPT), "1", *TINY, "--kimg", kimg],
                              env={**env, "OUT": str(out)}, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        names = sorted(p.name for p in out.iterdir())
        assert len(names) <= 8 and all((out / n).stat().st_size <= 16 * 2**20 for n in names)
        return names

    names = session(tmp_path / "out1", "0.008")
    assert {"checkpoint.json", "log.jsonl", "prior-16.safetensors", "samples.png", "train.log"} <= set(names)
    # What the device left in its copy of the run folder never comes back by itself: collect it.
    subprocess.run(["rm", "-rf", str(base / "run")], check=True)
    got = subprocess.run(["bash", str(SCRIPT), "collect", str(tmp_path / "out1")], env=env, capture_output=True,
                         text=True)
    assert got.returncode == 0, got.stderr
    assert (base / "returned" / "prior-16-kimg0.safetensors").is_file()

    session(tmp_path / "out2", "0.016")
    log = [json.loads(line) for line in (tmp_path / "out2" / "log.jsonl").read_text().splitlines()]
    assert [e["kimg"] for e in log] == [0.008, 0.016]  # the second session resumed the first
    assert "resuming" in (tmp_path / "out2" / "train.log").read_text()

    bad = subprocess.run(["bash", str(SCRIPT), "collect", str(tmp_path / "nothing")], env=env, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
