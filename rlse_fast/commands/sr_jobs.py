"""What `rlse-fast sr` and `photo` have to do: the (input, output) pairs, output name clashes in folder
mode, and which earlier results a rerun keeps (same settings) or refuses to overwrite silently (other
settings)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..config import RLSEConfig
from ..errors import UserError
from ..imageio import IMAGE_SUFFIXES, INPUT_SUFFIXES


def plan(src: Path, dst: Path) -> tuple[list[tuple[Path, Path]], bool]:
    """[(input path, output path)] and whether IN is a folder. In a folder, faces whose names differ
    only in the extension (face.png, face.jpg) would write the same output: refused, naming them. A
    single IN with an existing folder OUT writes OUT/<IN's name>.png, as `cp` would write into it."""
    if dst.exists() and dst.resolve() == src.resolve():
        raise UserError(f"OUT is IN ({src}): the results would overwrite or mix with the inputs; choose another OUT")
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise UserError(f"IN is a folder, so OUT must be a folder too; {dst} is a file")
        if not dst.exists() and dst.suffix.lower() in IMAGE_SUFFIXES:
            raise UserError(f"IN is a folder, so OUT must be a folder too; {dst.name} names an image: "
                            f"give a folder (e.g. {dst.with_suffix('')})")
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in INPUT_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise UserError(f"{src} holds no images ({', '.join(INPUT_SUFFIXES)})")
        by_stem: dict[str, list[Path]] = {}
        for f in files:
            by_stem.setdefault(f.stem.casefold(), []).append(f)
        clashes = [group for group in by_stem.values() if len(group) > 1]
        if clashes:
            names = "; ".join(" and ".join(p.name for p in group) for group in clashes[:3])
            more = f" (and {len(clashes) - 3} more)" if len(clashes) > 3 else ""
            raise UserError(f"{names}{more} in {src} would write the same output (OUT/<name>.png); "
                            "rename or move one of each")
        return [(f, dst / (f.stem + ".png")) for f in files], True
    if not src.exists():
        raise UserError(f"input not found: {src}")
    if dst.is_dir():
        dst = dst / (src.stem + ".png")
        if dst.resolve() == src.resolve():
            raise UserError(f"OUT is IN ({src}): the result would overwrite the input; choose another OUT")
    if dst.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"OUT must end in .png, .jpg or .webp, got {dst.name!r}")
    return [(src, dst)], False


def subfolders(src: Path) -> int:
    """How many folders sit in the folder IN (never entered: only its images are inputs)."""
    return sum(1 for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def settings(src: Path, common: dict) -> dict:
    """What decides an output: the input's bytes plus the run's settings (seed, config, weights,
    engine, precision, size), as the sidecar stores them (JSON types)."""
    return json.loads(json.dumps({"input_sha256": file_sha256(src), **common}))


def recorded_settings(sidecar: dict, new: dict):
    """The settings an `sr` sidecar records (older sidecars' with the fields added since)."""
    return _with_new_fields(sidecar.get("settings"))


def select(jobs, common: dict, overwrite: bool, recorded=recorded_settings):
    """Split folder jobs into (todo, kept): an output whose sidecar records the same settings is
    kept; one made with other settings stops the run (before any work) unless `overwrite`.
    recorded(sidecar, new settings): the settings an earlier output's sidecar records (None: unknown)."""
    todo, kept, differ = [], [], []
    for src, dst in jobs:
        side = dst.with_suffix(".json")
        if overwrite or not (dst.is_file() and side.is_file()):
            todo.append((src, dst))
            continue
        new = settings(src, common)
        try:
            old = recorded(json.loads(side.read_text()), new)
        except (OSError, ValueError, AttributeError, KeyError, TypeError):  # unreadable or not ours
            old = None
        if old == new:
            kept.append((src, dst))
        else:
            differ.append((dst, _what_differs(old, new)))
    if differ:
        names = ", ".join(d.name for d, _ in differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
        raise UserError(f"{names} in {differ[0][0].parent} were made with other settings ({differ[0][1]}); "
                        "rerun with --overwrite to redo them, or choose another OUT")
    return todo, kept


def _with_new_fields(old):
    """An older sidecar's settings with the config fields added since (pixel_floor, keep) at their
    defaults, the behaviour that version had: upgrading redoes no output."""
    if not (isinstance(old, dict) and isinstance(old.get("config"), dict)):
        return old

    defaults = json.loads(json.dumps(RLSEConfig().to_dict()))
    return {**old, "config": {**{k: v for k, v in defaults.items() if k not in old["config"]}, **old["config"]}}


def _what_differs(old, new: dict) -> str:
    if not isinstance(old, dict):
        return "not recorded in the sidecar"
    keys = []
    for k in new:
        if old.get(k) == new[k]:
            continue
        if k == "config" and isinstance(old.get(k), dict):  # name the config's fields that differ
            keys += [f"config.{c}" for c in new[k] if old[k].get(c) != new[k][c]]
        else:
            keys.append(k)
    return "different " + ", ".join(k.replace("_sha256", "") for k in keys)
