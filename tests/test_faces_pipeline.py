"""The photo pipeline's Python API on a real small photo with a stand-in super-resolver (no GAN):
detection, per-face records, batching by input size, seeds, and the paste-back."""
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from rlse_fast import assets

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos"
pytestmark = pytest.mark.skipif(not all(assets.available(n) for n in ("mtcnn/pnet.pt", "mtcnn/rnet.pt", "mtcnn/onet.pt")),
                                reason="MTCNN weights absent: run `rlse-fast fetch-assets`")


def photo(name):
    path = PHOTOS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/data/photos provides it)")
    from rlse_fast.faces.photo_io import read_photo

    return read_photo(path)


@dataclass
class _Out:
    images: torch.Tensor
    best_loss: torch.Tensor
    seconds: float


class FlatSession:
    """Stands in for `session.Session`: every face becomes a flat magenta image; records its calls."""

    resolution = 64
    spec = "celeba64"

    def __init__(self):
        self.calls = []
        self.gan = type("Gan", (), {"metadata": {}, "path": "celeba64.safetensors", "source_format": "safetensors"})()

    def run(self, lr, seeds):
        self.calls.append((tuple(lr.shape), list(seeds)))
        img = torch.zeros(len(seeds), 3, 64, 64)
        img[:, 0] = img[:, 2] = 1.0
        return _Out(img, torch.arange(len(seeds), dtype=torch.float32), 0.5)


def test_tiny_photo_three_faces_found_and_pasted():
    from rlse_fast.faces.paste import upscale_photo
    from rlse_fast.faces.pipeline import restore_photo

    rgb = photo("tiny_3faces_128.png")
    session = FlatSession()
    # a flat face fails every check of 'auto'; pasted as it is (no back-projection) so that it can be seen
    out = restore_photo(rgb, session, seed=7, batch=2, restore="all", back_project=0)
    assert len(out.faces) == 3  # the README: 3 faces, 15-17 px wide
    assert all(12 <= f.face.width <= 30 and f.face.score > 0.9 for f in out.faces)
    assert out.frame == "celeba" and out.upscale in (2, 3, 4)
    assert set(out.stages) >= {"detect", "align", "super_resolve", "paste"}
    # batches hold one input size each, at most `batch` faces; seeds follow the faces' order
    for shape, seeds in session.calls:
        assert shape[0] <= 2 and shape[2] == shape[3] and 64 % shape[2] == 0
    assert sorted(s for _, seeds in session.calls for s in seeds) == [7, 8, 9]
    # each face is replaced around its landmarks, the background is the Lanczos resampling
    bg = upscale_photo(rgb, out.upscale)
    assert out.image.shape == bg.shape
    changed = (out.image != bg).any(-1)
    for f in out.faces:
        x, y = ((f.face.landmarks.mean(0) + 0.5) * out.upscale).astype(int)
        r, g, b = out.image[y, x].astype(int)
        assert r > 200 and b > 200 and g < 60
    assert changed.mean() < 0.5 and not changed[:, :5].any()


def test_max_faces_keeps_the_widest_and_min_face_filters():
    from rlse_fast.faces.pipeline import restore_photo

    rgb = photo("tiny_3faces_128.png")
    all3 = restore_photo(rgb, FlatSession())
    one = restore_photo(rgb, FlatSession(), max_faces=1)
    assert len(one.faces) == 1 and one.faces[0].face.width == max(f.face.width for f in all3.faces)
    none = restore_photo(rgb, FlatSession(), min_face=40)
    assert none.faces == [] and none.image.shape[0] == 128 * none.upscale


def test_exif_rotated_photo_face_found_only_upright():
    # The README: stored 640x480 with Orientation=6; one face, found on the rotated pixels only.
    from rlse_fast.faces.detect import detect

    rgb = photo("exif_rotated.jpg")
    assert rgb.shape[:2] == (640, 480)
    upright = detect(rgb, min_face=40)
    assert len(upright) == 1 and upright[0].width > 100
    assert detect(rgb.transpose(1, 0, 2)[::-1].copy(), min_face=40) == []  # the stored orientation
