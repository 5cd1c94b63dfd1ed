"""Finding faces and their 5 landmarks in a photo, offline.

The detector is MTCNN (`mtcnn.py`, weights from the asset cache: `rlse-fast fetch-assets`). It was
chosen over dlib's HOG detector (`dlib-bin`) for recall on 12-64 px faces: see the table in docs/photos.md
and `benchmarks/bench_face_recall.py`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .mtcnn import MTCNN

DETECTORS = ("mtcnn",)
MIN_SCORE = 0.8
"""Default lowest detector score kept. MTCNN's last stage keeps >= 0.7; the three photos with ground
truth (docs/photos.md) had false positives (an arm, a cable box, a hand) at 0.74-0.82
and true faces from 0.84 up, so 0.8 was picked on those same photos: a judgement, not a fit."""
_CACHE: dict = {}


@dataclass
class Face:
    """One detected face: box (x1, y1, x2, y2) and landmarks (5, 2) (left eye, right eye, nose, mouth
    corners) in the photo's pixel indices; score in [0, 1]."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    extra: dict = field(default_factory=dict)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 4),
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks]}


def _mtcnn(min_face: float, device):
    key = ("mtcnn", float(min_face), str(device))
    if key not in _CACHE:
        base = next((d for k, d in _CACHE.items() if k[0] == "mtcnn"), None)
        if base is None:
            _CACHE[key] = MTCNN.from_cache(min_face=min_face, device=device)
        else:  # same networks, another pyramid
            det = MTCNN((base.pnet.state_dict(), base.rnet.state_dict(), base.onet.state_dict()),
                        min_face=min_face, device=device)
            _CACHE[key] = det
    return _CACHE[key]


def detect(rgb: np.ndarray, min_face: float = 12.0, max_faces: int | None = None, detector: str = "mtcnn",
           device="cpu", min_score: float = MIN_SCORE) -> list[Face]:
    """(H, W, 3) uint8 -> faces at least `min_face` px wide scored at least `min_score`, the
    `max_faces` widest when given, ordered top to bottom then left to right."""
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    boxes, scores, lms = _mtcnn(max(min_face, 12.0), device).detect(rgb)
    faces = [Face(b, float(s), lm) for b, s, lm in zip(boxes, scores, lms)
             if b[2] - b[0] >= min_face and s >= min_score]
    if max_faces is not None and len(faces) > max_faces:
        faces = sorted(faces, key=lambda f: -f.width)[:max_faces]
    return sorted(faces, key=lambda f: (round(float(f.box[1]) / 16), float(f.box[0])))
