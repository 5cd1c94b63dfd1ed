"""Shared by the CLI tests: a tiny GAN file, low-resolution faces it can upscale, and `rlse-fast`
run in this process (fast: no new interpreter per call) with its exit code, stdout and stderr."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gan_files import tiny_gan
from rlse_fast.checkpoints import save_gan
from rlse_fast.downsample import bicubic_downsample_ref
from rlse_fast.imageio import save_image

FAST = ["--steps", "2", "--gaussian-samples", "4096", "--quiet"]


# Fixtures the CLI test modules import (pytest finds fixtures in a module's namespace).
@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The tiny GAN's weights file, made once per module."""
    return make_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh cache folder (Gaussian fits) per test."""
    monkeypatch.setenv("RLSE_FAST_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def make_weights(root: Path, nan: bool = False) -> Path:
    """A 32 px generator/discriminator in our safetensors format (nan: one generator weight NaN)."""
    G, D = tiny_gan(seed=2)
    if nan:
        with torch.no_grad():
            next(p for n, p in G.named_parameters() if "synthesis" in n and n.endswith("weight")).view(-1)[0] = float("nan")
    path = root / ("tiny-nan.safetensors" if nan else "tiny.safetensors")
    save_gan(path, G, D)
    return path


def make_faces(n: int = 3, factor: int = 4) -> torch.Tensor:
    """(n, 3, 32 / factor, 32 / factor) faces in [0, 1] from the tiny generator, downscaled."""
    G, _ = tiny_gan(seed=2)
    with torch.no_grad():
        hr = (G(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(0)), noise_mode="const").clamp(-1, 1) + 1) / 2
    return bicubic_downsample_ref(hr, factor)


def face_folder(root: Path, names: list[str]) -> Path:
    """A new folder `root` of tiny faces under the given file names."""
    root.mkdir()
    for face, name in zip(make_faces(len(names)), names):
        save_image(face, root / name)
    return root


def cli(capsys, *args) -> tuple[int, str, str]:
    """`rlse-fast ARGS` in this process: (exit code, stdout, stderr)."""
    from rlse_fast.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code: int, err: str, exit_code: int = 2) -> str:
    """Assert a one-line `error:` on stderr with the exit code; return the line."""
    lines = err.strip().splitlines()
    assert code == exit_code and len(lines) == 1 and "error:" in lines[0], (code, err)
    assert "Traceback" not in err
    return lines[0]


def tree(root: Path) -> list[str]:
    """Every path under root (hidden ones too), to check that nothing was left behind."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
