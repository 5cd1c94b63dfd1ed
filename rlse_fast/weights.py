"""Weights by path or by name: NVIDIA's official StyleGAN2 FFHQ networks (downloaded once into the
cache, resumable and atomic) or the prior bundled with the package."""
from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .errors import UserError
from .home import home
from .launch.env import world

NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files"
NAMED = {
    "ffhq": f"{NGC}/stylegan2-ffhq-1024x1024.pkl",
    "ffhq512": f"{NGC}/stylegan2-ffhq-512x512.pkl",
    "ffhq256": f"{NGC}/stylegan2-ffhq-256x256.pkl",
}
BUNDLED = {"celeba64": "celeba64.safetensors"}
DATA_DIR = Path(__file__).resolve().parent / "data"


def cache_path(name: str) -> Path:
    return home() / "weights" / NAMED[name].rsplit("/", 1)[1]


def bundled_path(name: str) -> Path:
    return DATA_DIR / BUNDLED[name]


def default_weights() -> tuple[str, str | None]:
    """('ffhq', None) when FFHQ is in the cache, else the bundled prior with a one-line notice."""
    if cache_path("ffhq").is_file():
        return "ffhq", None
    for name in BUNDLED:
        if bundled_path(name).is_file():
            return name, (f"using the bundled {name} prior (64 px faces, trained on CelebA); for FFHQ's 1024 px run "
                          f"once online with --weights ffhq, or put stylegan2-ffhq-1024x1024.pkl at "
                          f"{cache_path('ffhq')}. --weights {name} silences this note")
    return "ffhq", None


_told = False


def tell_default(spec: str | None, quiet: bool = False, write=None) -> None:
    """The default weights' notice on stderr when `spec` is None (no --weights) and the default is the
    bundled prior: once per process, on rank 0 of a torchrun job only. Commands call it after their
    inputs and options are checked, so the note never precedes an input error. `write(text, file=)`
    prints it (a progress bar's write keeps the bar intact)."""
    global _told
    if spec is not None or quiet or _told:
        return

    _told = True
    notice = default_weights()[1]
    if notice and world().main:
        (write or print)(f"note: {notice}", file=sys.stderr)


def resolve(spec: str | None, quiet: bool = False) -> Path:
    """A weights path for a path or a name (None: `default_weights()`; a named network is downloaded on
    first use, with a progress bar unless `quiet`). The default's notice is `tell_default`'s."""
    if spec is None:
        spec = default_weights()[0]
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if spec in BUNDLED:
        if not bundled_path(spec).is_file():
            raise UserError(f"the bundled prior {spec} is missing from this install; reinstall rlse-fast")
        return bundled_path(spec)
    if spec in NAMED:
        target = cache_path(spec)
        if not target.is_file():
            download(NAMED[spec], target, quiet=quiet)
        return target
    if os.sep in spec or spec.endswith((".pkl", ".pt", ".safetensors")):
        raise UserError(f"weights file not found: {spec}")
    names = ", ".join(sorted(list(NAMED) + list(BUNDLED)))
    raise UserError(f"unknown weights {spec!r}: give a file path or one of {names}")


def download(url: str, target: Path, quiet: bool = False, timeout: float = 30.0) -> None:
    """Fetch `url` to `target`: resumes a partial `.part` file, renames only when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if have and resp.status != 206:  # server ignored the range: start over
                have = 0
            total = resp.length + have if resp.length is not None else None
            with open(part, "ab" if have else "wb") as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                              desc=target.name, disable=quiet) as bar:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"could not download {url} ({reason}); download it elsewhere and put it at {target}") from None
    if total is not None and part.stat().st_size != total:
        raise UserError(f"download of {url} stopped early; run again to resume (partial file {part})")
    os.replace(part, target)
