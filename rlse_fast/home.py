"""The cache folder every download and computed file goes under (weights, Gaussian fits, assets)."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The cache folder: $RLSE_FAST_HOME, else <XDG cache>/rlse-fast."""
    if os.environ.get("RLSE_FAST_HOME"):
        return Path(os.environ["RLSE_FAST_HOME"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rlse-fast"
