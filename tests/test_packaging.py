"""The source distribution carries everything setup.py compiles, so that installing from it builds
like installing from a checkout."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_sdist_has_every_tracked_source(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "csrc", "CMakeLists.txt", "setup.py", "pyproject.toml"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert any(p.endswith(".cu") for p in tracked) and any(p.endswith(".h") for p in tracked)
    # A fresh egg-info: setuptools would otherwise reuse the file list of the checkout's own one.
    egg = tmp_path / "egg"
    egg.mkdir()
    res = subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(egg), "sdist", "-d",
                          str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (archive,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    missing = [p for p in tracked if p not in names]
    assert not missing, f"not in the sdist: {missing}"
