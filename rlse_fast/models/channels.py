"""Architecture inference shared by the loaders."""
from __future__ import annotations

from ..errors import UserError


def channel_params(channels: dict[int, int], what: str) -> tuple[int, int]:
    """(channel_base, channel_max) reproducing channels[res] = min(base // res, max) for every res."""
    cmax = max(channels.values())
    below = sorted(res for res, ch in channels.items() if ch < cmax)
    base = channels[below[0]] * below[0] if below else cmax * max(channels)
    if any(min(base // res, cmax) != ch for res, ch in channels.items()):
        raise UserError(f"{what}: channel counts {channels} do not follow min(base // res, max); unsupported architecture")
    return base, cmax


