"""Identity: the distance between dlib's face-recognition embeddings of two images of one face.

dlib's ResNet (`dlib_face_recognition_resnet_model_v1`, 128-d embeddings; dlib reports 99.38% on LFW
with "same person" below a distance of 0.6) reads a 150x150 chip that dlib cuts with its own 5-point
alignment (`shape_predictor_5_face_landmarks`, 25% padding). Both files come from the
`face-recognition-models` package (`rlse-fast fetch-assets`); dlib itself is the optional `dlib-bin`
(`pip install 'rlse-fast[identity]'`).

A restored face is compared with its reference through ONE alignment: the landmarks are found on the
reference (the sharp original) and the same chip geometry cuts both images, so a blurred or
hallucinated output cannot move its own landmarks to look closer or farther than it is.

Inputs: (H, W, 3) uint8 RGB arrays of the same size; a box (x1, y1, x2, y2) in pixels around the face
(default: the whole image, right for aligned face crops).
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from .. import assets

SAME_PERSON = 0.6
"""dlib's threshold: embeddings of one person are closer than this (its LFW operating point)."""
CHIP = 150
PADDING = 0.25


def installed() -> bool:
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    return True


def available() -> bool:
    """dlib importable and both model files in the cache (what the tests and optional checks ask)."""
    return installed() and assets.available(assets.DLIB_RECOGNITION) and assets.available(assets.DLIB_LANDMARKS5)


class Identity:
    """dlib's landmark and recognition networks, loaded once."""

    def __init__(self, landmarks_path, recognition_path):
        import dlib

        self._dlib = dlib
        self.predictor = dlib.shape_predictor(str(landmarks_path))
        self.recognizer = dlib.face_recognition_model_v1(str(recognition_path))

    @classmethod
    def from_cache(cls) -> "Identity":
        if not installed():
            raise UserError("the identity metric needs dlib: pip install 'rlse-fast[identity]' (the dlib-bin wheel)")
        return cls(assets.require(assets.DLIB_LANDMARKS5, "dlib's 5-point landmark model"),
                   assets.require(assets.DLIB_RECOGNITION, "dlib's face-recognition network"))

    def shape(self, rgb: np.ndarray, box=None):
        """dlib's 5 landmarks of the face in `box` (default: the whole image)."""
        h, w = rgb.shape[:2]
        x1, y1, x2, y2 = (0, 0, w - 1, h - 1) if box is None else (int(round(float(v))) for v in box)
        return self.predictor(np.ascontiguousarray(rgb), self._dlib.rectangle(x1, y1, x2, y2))

    def embed(self, rgb: np.ndarray, shape) -> np.ndarray:
        """(128,) float64 embedding of the chip that `shape` cuts from `rgb`."""
        chip = self._dlib.get_face_chip(np.ascontiguousarray(rgb), shape, size=CHIP, padding=PADDING)
        return np.asarray(self.recognizer.compute_face_descriptor(chip), dtype=np.float64)

    def distance(self, reference: np.ndarray, other: np.ndarray, box=None) -> float:
        """Euclidean distance between the embeddings of `reference` and `other` (same size), both cut
        with the landmarks found on `reference`. 0 for identical images; below SAME_PERSON: one person."""
        if reference.shape != other.shape:
            raise ValueError(f"identity: images differ in size, {reference.shape} vs {other.shape}")
        shape = self.shape(reference, box)
        return float(np.linalg.norm(self.embed(reference, shape) - self.embed(other, shape)))
