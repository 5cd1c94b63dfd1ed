"""Align -> warp -> paste geometry on synthetic photos with known landmarks (no detector, no GAN)."""
import math

import numpy as np
import pytest
import torch

from rlse_fast.faces.frames import CELEBA, FFHQ
from rlse_fast.faces.align import Alignment, align, lr_size, warp_face
from rlse_fast.faces.paste import mask, paste, upscale_photo

# A face's 5 landmarks (eyes, nose, mouth corners) with eye distance 12 px, in face coordinates.
FACE = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 6.0], [-4.5, 11.0], [4.5, 11.0]])


def landmarks(cx, cy, angle_deg, zoom=1.0):
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return FACE * zoom @ rot.T + [cx, cy]


def blobs(h, w, points, sigma):
    """(3, h, w) black image with a white Gaussian blob at each continuous point."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    img = np.zeros((h, w))
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return torch.from_numpy(np.clip(img, 0, 1)).float().expand(3, h, w).clone()


def centroid(img2d, x, y, r):
    """Intensity centroid (continuous coordinates) of the window of radius r about (x, y)."""
    x0, y0 = int(round(x - r)), int(round(y - r))
    win = img2d[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1].astype(np.float64)
    yy, xx = np.mgrid[0:win.shape[0], 0:win.shape[1]] + 0.5
    return np.array([(win * xx).sum() / win.sum() + x0, (win * yy).sum() / win.sum() + y0])


@pytest.mark.parametrize("frame", [FFHQ, CELEBA])
@pytest.mark.parametrize("angle", [0.0, 23.0])
def test_align_warp_paste_round_trips_landmarks(frame, angle):
    lm = landmarks(47.3, 41.8, angle, zoom=1.4)
    photo = blobs(96, 96, lm + 0.5, sigma=1.6)  # landmarks are pixel indices: centres at +0.5
    a = align(lm, frame)
    size = 96
    face = warp_face(photo, a, size)
    want = a.to_frame(lm + 0.5) * size
    got = np.stack([centroid(face[0].numpy(), x, y, 7) for x, y in want])
    assert np.abs(got - want).max() < 0.5 * size / a.side  # 0.5 photo pixels, in aligned pixels
    # The eyes are level and where the frame puts them.
    if frame == FFHQ:
        eyes = (got[0] + got[1]) / 2 / size
        assert abs(got[0, 1] - got[1, 1]) < 0.5 and abs(eyes[0] - 0.5) < 0.02
    # Paste the aligned image back into a 2x black canvas: the blobs return to the landmarks.
    up = 2
    canvas = np.zeros((96 * up, 96 * up, 3), np.uint8)
    assert paste(canvas, face, a, up) is not None
    back = np.stack([centroid(canvas[..., 0], x, y, 6) for x, y in (lm + 0.5) * up])
    assert np.abs(back / up - (lm + 0.5)).max() < 0.5


def test_pasted_face_lands_where_its_box_was():
    # A synthetic photo with three known faces: each pasted white square covers its own face only.
    rgb = np.full((120, 200, 3), 40, np.uint8)
    faces = [landmarks(40, 50, 0), landmarks(110, 60, -15, 1.2), landmarks(165, 40, 30, 0.8)]
    up = 3
    canvas = upscale_photo(rgb, up)
    for lm in faces:
        a = align(lm, FFHQ)
        box = paste(canvas, torch.ones(3, 32, 32), a, up)
        # the frame's centre (between eyes and mouth) lands on the face's landmark centroid
        centre = a.to_photo(np.array([[0.5, 0.5]]))[0]
        assert np.linalg.norm(centre - (lm.mean(0) + 0.5)) < 0.6 * a.side / 2
        assert box[0] <= (lm[:, 0].min() + 0.5) * up <= (lm[:, 0].max() + 0.5) * up <= box[2]
    for lm in faces:  # every landmark sits in a fully replaced (white) region
        for x, y in (lm + 0.5) * up:
            assert canvas[int(y), int(x)].min() == 255
    assert (canvas == 40).any()  # and the background between faces is untouched


def test_mask_leaves_background_bit_identical():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)
    canvas = upscale_photo(rgb, 2)
    before = canvas.copy()
    lm = landmarks(45, 35, 12)
    a = align(lm, CELEBA)
    paste(canvas, torch.rand(3, 64, 64), a, 2)
    ys, xs = np.mgrid[0:canvas.shape[0], 0:canvas.shape[1]]
    q = a.to_frame(np.stack([(xs + 0.5) / 2, (ys + 0.5) / 2], -1).reshape(-1, 2)).reshape(*xs.shape, 2)
    w = mask(torch.from_numpy(q)).numpy()
    outside = w == 0
    assert outside.sum() > 0.5 * outside.size
    assert np.array_equal(canvas[outside], before[outside])  # bit-identical where the mask is 0
    assert (canvas[w > 0.99] != before[w > 0.99]).any()
    # the mask ramps: no jump at its edge (feathered), and it is 1 in the middle
    assert mask(torch.tensor([[0.5, 0.5]])).item() == 1.0
    ramp = mask(torch.stack([torch.linspace(0, 0.5, 200), torch.full((200,), 0.5)], -1))
    assert ramp.diff().max() < 0.05


def test_alignment_inverse_and_side():
    lm = landmarks(30, 30, 40, 2.0)
    a = align(lm, FFHQ)
    q = np.array([[0.1, 0.2], [0.9, 0.5]])
    assert np.allclose(a.to_frame(a.to_photo(q)), q)
    # FFHQ: the square's side is 4x the eye distance for a face like this one
    assert a.side == pytest.approx(4 * 12 * 2.0, rel=0.05)
    assert isinstance(a, Alignment)


@pytest.mark.parametrize("side,res,want", [(20, 64, 16), (14, 64, 8), (40, 64, 32), (100, 64, 32),
                                           (30, 1024, 32), (17.5, 1024, 16), (1.5, 64, 2), (3, 1024, 2), (0.4, 8, None)])
def test_lr_size_never_enlarges_by_more_than_ten_percent(side, res, want):
    d = lr_size(side, res)
    assert d == want
    if d is not None and d > 1.1 * side:
        assert d / side <= res / d  # only the smallest size may enlarge, and less than the factor removed
