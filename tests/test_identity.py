"""The identity metric (dlib's face-recognition distance) on real faces: zero for the same image,
small for the same face degraded, large for another person, and one alignment for both images."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rlse_fast.metrics import identity

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba128_test"
pytestmark = pytest.mark.skipif(not identity.available(),
                                reason="needs dlib (pip install 'rlse-fast[identity]') and `rlse-fast fetch-assets`")


def faces(n):
    files = sorted(FACES.glob("*.jpg"))[:n] if FACES.is_dir() else []
    if len(files) < n:
        pytest.skip(f"{FACES} is absent (../shared/data provides it)")
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def test_same_face_close_other_face_far():
    idn = identity.Identity.from_cache()
    a, b, c, d = faces(4)
    assert idn.distance(a, a) == 0.0
    for x, others in ((a, (b, c, d)), (b, (a, c, d))):
        blurred = np.asarray(Image.fromarray(x).resize((32, 32), Image.BICUBIC).resize((128, 128), Image.BICUBIC))
        same = idn.distance(x, blurred)
        assert same < identity.SAME_PERSON
        assert all(idn.distance(x, o) > same for o in others)


def test_sizes_must_match_and_box_is_used():
    idn = identity.Identity.from_cache()
    a, b = faces(2)
    with pytest.raises(ValueError, match="differ in size"):
        idn.distance(a, a[:64])
    # the face in a larger photo, found through its box, scores as the crop does
    big = np.zeros((300, 400, 3), np.uint8)
    big[50:178, 100:228] = a
    other = big.copy()
    other[50:178, 100:228] = b
    d_box = idn.distance(big, other, box=(100, 50, 227, 177))
    assert d_box == pytest.approx(idn.distance(a, b), abs=0.05)
