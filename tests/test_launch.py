"""`sr`, `photo` and `eval` as torchrun jobs on the CPU (gloo): 2 ranks against 1 process, a killed rank, resume."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gan_files import tiny_gan
from rlse_fast.checkpoints import save_gan
from rlse_fast.downsample import bicubic_downsample_ref
from rlse_fast.evaluate.runner import read_rows, write_rows
from rlse_fast.imageio import save_image
from rlse_fast.launch import ShardedTable, shard

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not sys.platform.startswith("linux"),
                                reason="needs torch.distributed (gloo) on Linux")

FAST = ["--steps", "4", "--gaussian-samples", "4096", "--impl", "ref", "--quiet"]
FACES = "abcdefgh"


def launch(command, *args, nproc=2, env, timeout=300, wait=True):
    """`rlse-fast COMMAND ARGS` as torchrun would start it (nproc=0: a plain single process)."""
    runner = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)] if nproc else []
    cmd = [sys.executable, *runner, "-m", "rlse_fast", command, *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("launch")
    G, D = tiny_gan(seed=3)
    save_gan(root / "tiny.safetensors", G, D)
    with torch.no_grad():
        z = torch.randn(len(FACES), G.z_dim, generator=torch.Generator().manual_seed(5))
        hr = (G(z, noise_mode="const").clamp(-1, 1) + 1) / 2
    lr = bicubic_downsample_ref(hr, 4)  # 32 px faces -> 8 px inputs
    for d in ("hr", "lr"):
        (root / d).mkdir()
    for i, name in enumerate(FACES):
        save_image(lr[i], root / "lr" / f"{name}.png")
        save_image(hr[i], root / "hr" / f"{name}.png")
    home = root / "home"
    # One thread per process everywhere (torchrun's ranks get cores // 2 = 1 here): float sums split over
    # more threads round differently in the last bits of the loss log, whatever the number of processes.
    env = {**os.environ, "RLSE_FAST_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": "1"}
    # Fill the Gaussian-fit cache once, single process: later runs all read it.
    res = launch("sr", root / "lr" / "a.png", root / "warm.png", "--weights", root / "tiny.safetensors", "--steps", "1",
                 "--gaussian-samples", "4096", "--quiet", nproc=0, env=env)
    assert res.returncode == 0, res.stderr
    return root, env


@pytest.fixture(scope="module")
def one_process(data):
    root, env = data
    out = root / "sr1"
    res = launch("sr", root / "lr", out, "--weights", root / "tiny.safetensors", *FAST, nproc=0, env=env)
    assert res.returncode == 0, res.stderr
    return out


def _sidecar(path: Path) -> dict:
    meta = json.loads(path.read_text())
    del meta["seconds"]  # the only field that is a measurement
    meta["output"] = Path(meta["output"]).name
    return meta


def _same_outputs(a: Path, b: Path) -> None:
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for name in FACES:
        assert (a / f"{name}.png").read_bytes() == (b / f"{name}.png").read_bytes(), name
        assert _sidecar(a / f"{name}.json") == _sidecar(b / f"{name}.json"), name


def test_sr_two_ranks_write_what_one_process_writes(data, one_process):
    root, env = data
    out = root / "sr2"
    res = launch("sr", root / "lr", out, "--weights", root / "tiny.safetensors", *FAST[:-1], env=env)
    assert res.returncode == 0, res.stderr
    _same_outputs(one_process, out)
    # One summary line, from rank 0, counting both ranks' faces.
    lines = [ln for ln in res.stdout.splitlines() if "faces written" in ln]
    assert lines == [f"{len(FACES)} faces written to {out}, 0 kept from an earlier run with the same settings, 0 failed"], res.stdout


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of torchrun's worker process with RANK=rank (read from /proc), or None yet."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            env = (d / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in env:
            return int(d.name)
    return None


def test_killed_rank_loses_nothing_and_a_one_process_rerun_finishes(data, one_process):
    root, env = data
    out = root / "sr-killed"
    job = launch("sr", root / "lr", out, "--weights", root / "tiny.safetensors", *FAST, env=env, wait=False)
    try:
        deadline = time.time() + 120
        # Rank 1 owns b, d, f, h (the pending list is sharded pending[rank::2]); kill it after its first face.
        while not (out / "b.json").exists():
            assert job.poll() is None and time.time() < deadline, "rank 1 never wrote its first face"
            time.sleep(0.05)
        pid = _rank_pid(job.pid, 1)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        job.wait(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode != 0
    written = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}
    assert not [p for p in written if p.name.startswith(".")], "a temporary file was left behind"
    done = {p.stem for p in written if p.suffix == ".json"}
    assert "b" in done and "h" not in done, sorted(done)  # midway: rank 1 did b, not yet h
    res = launch("sr", root / "lr", out, "--weights", root / "tiny.safetensors", *FAST[:-1], nproc=0, env=env)
    assert res.returncode == 0, res.stderr
    assert f"{len(FACES) - len(done)} faces written to {out}, {len(done)} kept from an earlier run with the same settings, 0 failed" in res.stdout
    # Nothing written twice: every finished face kept its files untouched ...
    for p, stamp in written.items():
        if p.stem in done:
            assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp, p.name
    # ... and nothing lost: the folder is what one uninterrupted process writes.
    _same_outputs(one_process, out)


def _metrics(path: Path) -> list[dict]:
    rows = list(csv.DictReader(open(path)))
    for r in rows:
        del r["seconds"]
    return rows


def test_eval_two_ranks_give_the_rows_of_one(data):
    root, env = data
    args = ["--hr", root / "hr", "--scale", "4", "--methods", "bicubic,pulse", "--weights", root / "tiny.safetensors",
            "-n", "4", "--no-lpips", "--grid", "3", *FAST]
    one, two = root / "eval1", root / "eval2"
    res = launch("eval", *args, "--out", one, nproc=0, env=env)
    assert res.returncode == 0, res.stderr
    res = launch("eval", *args, "--out", two, env=env)
    assert res.returncode == 0, res.stderr
    rows = _metrics(two / "metrics.csv")
    assert rows == _metrics(one / "metrics.csv") and len(rows) == 4 * 2
    assert (two / "summary.md").is_file() and (two / "report.html").is_file()
    assert not (two / ".ranks").exists()
    # The grid's images come from whichever rank had the face, the same pixels.
    for face in "abc":
        for name in ("lr.png", "hr.png", "pulse.png"):
            assert (one / "images" / "x4" / face / name).read_bytes() == (two / "images" / "x4" / face / name).read_bytes()


PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos" / "tiny_3faces_128.png"


@pytest.mark.skipif(not PHOTO.is_file(), reason=f"{PHOTO} is absent (../shared/data/photos provides it)")
def test_photo_two_ranks_write_what_one_process_writes(data):
    import shutil

    from PIL import Image

    from rlse_fast import assets

    if not assets.available("mtcnn/onet.pt"):
        pytest.skip("MTCNN weights absent: run `rlse-fast fetch-assets`")
    root, env = data
    src = root / "photos"
    src.mkdir()
    shutil.copy(PHOTO, src / "a.png")
    Image.open(PHOTO).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(src / "b.png")
    canvas = Image.new("RGB", (160, 144), (200, 190, 180))
    canvas.paste(Image.open(PHOTO).convert("RGB"), (21, 9))
    canvas.save(src / "c.png")
    home = Path(env["RLSE_FAST_HOME"])
    if not (home / "assets").exists():
        (home / "assets").symlink_to(assets.assets_dir(), target_is_directory=True)
    args = ["--weights", root / "tiny.safetensors", "--steps", "2", "--gaussian-samples", "4096", "--impl", "ref"]
    one, two = root / "photo1", root / "photo2"
    res = launch("photo", src, one, *args, "--quiet", nproc=0, env=env)
    assert res.returncode == 0, res.stderr
    res = launch("photo", src, two, *args, env=env)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    for name in "abc":
        assert (one / f"{name}.png").read_bytes() == (two / f"{name}.png").read_bytes(), name
        faces = [json.loads((d / f"{name}.json").read_text())["faces"] for d in (one, two)]
        assert [f["box"] for f in faces[0]] == [f["box"] for f in faces[1]] and len(faces[0]) == 3
    lines = [ln for ln in res.stdout.splitlines() if "photos written" in ln]
    assert lines == [f"3 photos written to {two}, 0 already done, 0 failed or without faces"], res.stdout


def test_photo_eval_two_ranks_give_the_rows_of_one(data):
    import shutil

    from rlse_fast import assets
    from rlse_fast.metrics import identity

    if not identity.available() or not assets.available(assets.LPIPS_ALEXNET) or not assets.available("mtcnn/onet.pt"):
        pytest.skip("needs dlib (pip install 'rlse-fast[identity]') and `rlse-fast fetch-assets`")
    root, env = data
    src = root / "protocol"
    src.mkdir()
    for name in ("four_researchers.jpg", "voc_2008_002470.jpg"):
        if not (PHOTO.parent / name).is_file():
            pytest.skip(f"{PHOTO.parent / name} is absent (../shared/data/photos provides it)")
        shutil.copy(PHOTO.parent / name, src)
    home = Path(env["RLSE_FAST_HOME"])
    if not (home / "assets").exists():
        (home / "assets").symlink_to(assets.assets_dir(), target_is_directory=True)
    args = ["--scale", "2", "--weights", root / "tiny.safetensors", "--steps", "2", "--gaussian-samples", "4096",
            "--impl", "ref", "--restore-all", "--quiet"]
    one, two = root / "pe1", root / "pe2"
    res = launch("photo-eval", src, "--out", one, *args, nproc=0, env=env)
    assert res.returncode == 0, res.stderr
    res = launch("photo-eval", src, "--out", two, *args, env=env)
    assert res.returncode == 0, res.stderr
    rows = [(d / "metrics.csv").read_text() for d in (one, two)]
    assert rows[0] == rows[1] and rows[0].count("\n") > 2 * 10 and not (two / ".ranks").exists()


def test_sharded_table_merges_a_killed_jobs_parts(tmp_path):
    def row(image, psnr):
        return {"image": image, "scale": "4", "method": "bicubic", "psnr_y": psnr}

    path = tmp_path / "metrics.csv"
    write_rows(path, [row("a.png", 1.0)])
    write_rows(tmp_path / ".ranks" / "metrics.rank1.csv", [row("c.png", 3.0), row("a.png", 9.0)])
    write_rows(tmp_path / ".ranks" / "metrics.rank0.csv", [row("b.png", 2.0)])
    table = ShardedTable(path, read_rows, write_rows, key=lambda r: (r["image"], int(r["scale"]), r["method"]))
    rows = table.open()
    assert [(r["image"], r["psnr_y"]) for r in rows] == [("a.png", "1"), ("b.png", "2"), ("c.png", "3")]
    assert not (tmp_path / ".ranks").exists()
    assert read_rows(path) == rows
    table.add(row("d.png", 4.0))
    assert [r["image"] for r in table.close()] == ["a.png", "b.png", "c.png", "d.png"]
    assert [r["image"] for r in read_rows(path)] == ["a.png", "b.png", "c.png", "d.png"]


def test_without_torchrun_the_shard_is_everything(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert shard([3, 1, 2]) == [3, 1, 2]
