"""The resumable training checkpoint, written as shards small enough to travel.

A device machine takes the checkout with at most 64 MiB of extra files and returns files of at
most 16 MiB, so the checkpoint is one `torch.save` stream cut into shards of at most 15 MiB
(`checkpoint-<nimg>-<tag>.NN.bin`) named by a manifest, `checkpoint.json` (sizes and SHA-256 of
each shard). The shards are written first and the manifest last, each atomically, and shards the
new manifest does not name are removed after it: a crash leaves the previous checkpoint whole.

Adam's first moment is not stored when beta1 is 0: it is then the last gradient, overwritten
(exactly: lerp with weight 1) before it is next read, so dropping it changes nothing and saves a
quarter of the checkpoint. A single-file `checkpoint.pt` (the earlier format) still loads.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch

from ..errors import UserError
from ..imageio import atomic_write

MANIFEST_NAME = "checkpoint.json"
LEGACY_NAME = "checkpoint.pt"
SHARD_BYTES = 15 * 2**20
FORMAT = "rlse-fast prior training checkpoint"


def _slim_optimizer(state: dict) -> tuple[dict, bool]:
    """Adam's state without exp_avg when every group has beta1 == 0."""
    if not state.get("param_groups") or any(g.get("betas", (1, 1))[0] != 0 for g in state["param_groups"]):
        return state, False
    slim = {k: {n: v for n, v in s.items() if n != "exp_avg"} for k, s in state["state"].items()}
    return {**state, "state": slim}, True


def _restore_optimizer(state: dict) -> dict:
    full = {k: {**s, "exp_avg": torch.zeros_like(s["exp_avg_sq"])} for k, s in state["state"].items()}
    return {**state, "state": full}


def save_checkpoint(run_dir: str | os.PathLike, state: dict, shard_bytes: int = SHARD_BYTES) -> Path:
    """Write `state` (a dict of tensors, state dicts and numbers with 'cur_nimg') into run_dir as
    shards + manifest; returns the manifest's path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    slimmed = []
    state = dict(state)
    for key in ("opt_G", "opt_D"):
        if key in state:
            state[key], dropped = _slim_optimizer(state[key])
            if dropped:
                slimmed.append(key)
    state["slim_optimizers"] = slimmed
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getbuffer()
    tag = f"checkpoint-{int(state.get('cur_nimg', 0)):010d}-{os.urandom(3).hex()}"
    shards = []
    for i, start in enumerate(range(0, max(len(data), 1), shard_bytes)):
        chunk = bytes(data[start:start + shard_bytes])
        name = f"{tag}.{i:02d}.bin"
        atomic_write(run_dir / name, lambda tmp, chunk=chunk: Path(tmp).write_bytes(chunk))
        shards.append({"name": name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    manifest = {"format": FORMAT, "cur_nimg": int(state.get("cur_nimg", 0)), "bytes": len(data), "shards": shards}
    path = run_dir / MANIFEST_NAME
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1) + "\n"))
    keep = {s["name"] for s in shards}
    for old in run_dir.glob("checkpoint-*.bin"):
        if old.name not in keep:
            old.unlink()
    return path


def checkpoint_path(where: str | os.PathLike) -> Path | None:
    """The manifest (or legacy file) a run folder or path names; None if there is none."""
    p = Path(where)
    if p.is_dir():
        for name in (MANIFEST_NAME, LEGACY_NAME):
            if (p / name).is_file():
                return p / name
        return None
    return p if p.is_file() else None


def load_checkpoint(where: str | os.PathLike) -> dict:
    """The state `save_checkpoint` wrote, from a run folder, its manifest or a legacy checkpoint.pt."""
    path = checkpoint_path(where)
    if path is None:
        raise UserError(f"no checkpoint at {str(where)!r} to resume from; drop --resume to start a new run")
    if path.suffix != ".json":
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        manifest = json.loads(path.read_text())
        shards = manifest["shards"]
    except (ValueError, KeyError) as exc:
        raise UserError(f"{path} is not a training checkpoint manifest ({exc}); point --resume at a run folder") from None
    parts = []
    for shard in shards:
        file = path.parent / shard["name"]
        if not file.is_file():
            raise UserError(f"checkpoint shard {str(file)!r} is missing; copy the whole run folder")
        chunk = file.read_bytes()
        if hashlib.sha256(chunk).hexdigest() != shard["sha256"]:
            raise UserError(f"checkpoint shard {str(file)!r} is damaged (SHA-256 mismatch); copy the run folder again")
        parts.append(chunk)
    state = torch.load(io.BytesIO(b"".join(parts)), map_location="cpu", weights_only=False)
    for key in state.pop("slim_optimizers", []):
        state[key] = _restore_optimizer(state[key])
    return state


__all__ = ["LEGACY_NAME", "MANIFEST_NAME", "SHARD_BYTES", "checkpoint_path", "load_checkpoint", "save_checkpoint"]
