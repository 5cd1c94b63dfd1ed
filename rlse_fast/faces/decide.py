"""Per face: can the generator add detail, and did it? A face is restored only where it cannot come
out worse than the resized photo around it.

Before the fit (`plan`), from sizes alone:
- at --upscale 1 a back-projected face is the photo's own again (nothing is added below its pixel
  grid), so no face is fitted;
- a face whose square in the output is larger than the generator's output is kept: the result would be
  stretched, and the resized original already holds at least as much detail there (unless the protocol
  measured these weights winning on such faces too, back-projected: `Measured.larger`);
- a face is never shrunk below the size it has to fit the generator's input: the input is the
  smallest valid size at least 1/1.1 of the face's aligned side (the same 10% slack `align.lr_size`
  allows), and a face larger than every valid input size is kept;
- a face so small that the input must be enlarged by more than the factor the method then adds is kept;
- weights measured on the photo protocol (`PROTOCOL`) restore only at the input sizes where they
  beat Lanczos there (the bundled celeba64 prior: its one size, 32 px, back-projected; none without).
After the fit (`check`):
- consistency: the result, downscaled by the method's own operator to the input's size, must
  reproduce the input to CONSISTENT_DB PSNR-Y, else the fit failed (weights the protocol measured
  take their own, lower bar where their back-projected faces won below it: `Measured.consistent_db`);
- identity: where dlib is installed, the result must stay within IDENTITY_MAX of the input face
  (enlarged bicubically to the generator's size), else it became someone else.
A kept face is the resized original (the photo's Lanczos resampling). `--restore all` restores every
face the weights can take (shrinking only faces larger than every input size) and skips the checks;
`--restore none` keeps every face.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..downsample import bicubic_downsample_ref
from ..metrics import psnr_batch
from ..metrics.pixels import tensor_to_uint8
from .align import lr_size, valid_sizes

RESTORE = ("auto", "all", "none")
SLACK = 1.1
"""A face may be enlarged or reduced by this much before it counts as larger or smaller."""
CONSISTENT_DB = 30.0
"""Lowest PSNR-Y (dB) of the downscaled result against its input for a fit to count as consistent."""
IDENTITY_MAX = 0.6
"""Largest dlib identity distance to the input face; dlib's same-person threshold (`metrics.identity`)."""


@dataclass
class Plan:
    input_size: int | None
    """Input size to super-resolve from; None: the face is kept."""
    reason: str
    """Why: the rule that decided, in words a user reads in the summary."""


@dataclass(frozen=True)
class Measured:
    """What the photo protocol (docs/photo-protocol.md) measured for one set of weights, pasted with or
    without back-projection (`project.py`)."""

    wins: tuple[int, ...]
    """Generator input sizes (px) at which restored faces beat Lanczos there; `auto` restores only these."""
    strength: float
    """The --strength default for these weights: the highest that met the protocol's bar at every scale
    measured (or, where none did, the one closest to it)."""
    larger: bool = False
    """The protocol measured a win on faces whose output square is larger than the generator's output
    too: `auto` restores them instead of keeping them."""
    consistent_db: float = CONSISTENT_DB
    """The consistency (PSNR-Y, dB) a fit needs to count as consistent with its input (`check`): the
    lowest at which the protocol measured these weights' faces winning, CONSISTENT_DB where it did not
    measure lower."""


PROTOCOL: dict[tuple[str, bool], Measured] = {
    # The bundled celeba64 prior (docs/eval/photo_protocol_celeba64), keyed by (sha256, back-projected).
    # Back-projected, restored faces beat Lanczos at x2 and x4 in every face-size bucket, those larger
    # than the generator's 64 px included, and kept identity, at strength 1; fits of 25-30 dB
    # consistency, which CONSISTENT_DB kept, won as well once back-projected (25.06 dB the lowest
    # measured; docs/photo-protocol.md, "The consistency bar").
    ("12f18e3bba4ea945df5a2bb2f9f106c9f23feaee2189868b7f03d37c01469d48", True):
        Measured(wins=(32,), strength=1.0, larger=True, consistent_db=25.0),
    # Pasted as the generator made them, they lost identity to Lanczos at every size (and LPIPS at x2),
    # so `auto` keeps every face; with --restore all no strength met the bar and 0.25 lost least.
    ("12f18e3bba4ea945df5a2bb2f9f106c9f23feaee2189868b7f03d37c01469d48", False): Measured(wins=(), strength=0.25),
}
"""Weights (sha256, back-projected or not) measured on the photo protocol. Weights not listed have no
measurement: the size rules and the checks alone decide, and --strength defaults to 1 (the result)."""
UNMEASURED_STRENGTH = 1.0


def measurement(sha256: str | None, back_projected: bool = True) -> Measured | None:
    """What the protocol measured for these weights pasted this way; None: not measured."""
    return PROTOCOL.get((sha256 or "", bool(back_projected)))


def default_strength(sha256: str | None, back_projected: bool = True) -> float:
    m = measurement(sha256, back_projected)
    return UNMEASURED_STRENGTH if m is None else m.strength


def plan(side: float, upscale: float, resolution: int, restore: str = "auto",
         measured: Measured | None = None, back_projected: bool = False) -> Plan:
    """The decision from sizes: `side` the face's aligned square in input-photo pixels, `upscale` the
    output factor, `resolution` the generator's output size; `measured`: what the photo protocol
    measured for these weights (None: not measured, the size rules alone); `back_projected`: the
    result will be back-projected onto the photo (`project.py`), which at `upscale` 1 gives the photo
    back, so the fit would be wasted."""
    if restore == "none":
        return Plan(None, "kept: --restore none")
    sizes = sorted(valid_sizes(resolution))
    fitting = [d for d in sizes if SLACK * d >= side]
    if restore == "all":  # not shrunk where an input size is large enough; else shrunk, as `align.lr_size`
        size = fitting[0] if fitting and fitting[0] / side <= resolution / fitting[0] else lr_size(side, resolution)
        return Plan(size, "restored: --restore all" if size else f"kept: too small for these weights ({side:.0f} px)")
    if back_projected and upscale <= 1:
        return Plan(None, "kept: --upscale 1 leaves no room for detail (back-projected, the face is the photo's)")
    out_side = side * upscale
    if out_side > SLACK * resolution and not (measured is not None and measured.larger):
        return Plan(None, f"kept: larger than the generator's {resolution} px")
    if not fitting:
        return Plan(None, f"kept: larger than the generator's {sizes[-1]} px input")
    d = fitting[0]
    if d / side > resolution / d:
        return Plan(None, f"kept: too small for these weights ({side:.0f} px)")
    if measured is not None and d not in measured.wins:
        return Plan(None, f"kept: these weights lose to Lanczos at {d} px on the photo protocol")
    return Plan(d, "restored")


def consistency_db(sr: torch.Tensor, lr: torch.Tensor) -> float:
    """PSNR-Y (dB) of `sr` (3, R, R) downscaled to `lr`'s size (3, s, s) against `lr`, both in [0, 1]."""
    down = bicubic_downsample_ref(sr[None].double(), sr.shape[-1] // lr.shape[-1])
    return float(psnr_batch(down * 2 - 1, lr[None].double() * 2 - 1, "y")[0])  # both as 8-bit images


def identity_distance(sr: torch.Tensor, lr: torch.Tensor, identity) -> float:
    """dlib distance between the input face `lr` enlarged bicubically to `sr`'s size and `sr`."""
    up = F.interpolate(lr[None].float(), size=sr.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    return identity.distance(tensor_to_uint8(up * 2 - 1)[0], tensor_to_uint8(sr[None].float() * 2 - 1)[0])


def check(sr: torch.Tensor, lr: torch.Tensor, identity=None,
          consistent: float = CONSISTENT_DB) -> tuple[bool, str, float, float | None]:
    """(restore?, reason, consistency dB, identity distance or None) for one fitted face; `consistent`:
    the PSNR-Y (dB) below which the fit failed (`Measured.consistent_db` for measured weights)."""
    db = consistency_db(sr, lr)
    if db < consistent:
        return False, f"kept: the fit failed ({db:.1f} dB < {consistent:g} dB against its input)", db, None
    dist = identity_distance(sr, lr, identity) if identity is not None else None
    if dist is not None and dist > IDENTITY_MAX:
        return False, f"kept: another person (identity distance {dist:.2f} > {IDENTITY_MAX:g})", db, dist
    return True, "restored", db, dist
