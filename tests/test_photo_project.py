"""Back-projection of pasted faces onto the photo (`faces/project.py`): the output, downscaled again,
gives back the input; windows map the input's pixel grid exactly at any upscale; pixels outside a face's
mask and strength 0 stay bit for bit."""
import inspect

import numpy as np
import pytest
import torch
from PIL import Image

from rlse_fast.faces.project import STEPS, back_project, context_window


def smooth_photo(h=40, w=52, seed=0) -> np.ndarray:
    """A photo-like (H, W, 3) uint8 image: smooth shapes and some texture, no constant areas."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + c) * np.cos(5 * yy - c) for c in range(3)], -1)
    noise = np.asarray(Image.fromarray(rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC))
    return np.clip(128 + 80 * base + 0.3 * (noise - 128.0), 0, 255).astype(np.uint8)


def down(a: np.ndarray, size) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(a[..., c].astype(np.float32), "F").resize(size, Image.BICUBIC))
                     for c in range(3)], -1).astype(np.float64)


def residual(out: np.ndarray, source: np.ndarray) -> float:
    """RMS (8-bit levels) of the output downscaled to the source's grid against the source."""
    return float(np.sqrt(((down(out, source.shape[1::-1]) - source) ** 2).mean()))


@pytest.mark.parametrize("scale", [2, 4, 2.5])
def test_residual_shrinks_every_step_to_under_a_level(scale):
    src = smooth_photo()
    size = (round(src.shape[1] * scale), round(src.shape[0] * scale))
    wrong = np.asarray(Image.fromarray(smooth_photo(seed=5)).resize(size, Image.LANCZOS)).astype(np.float64)
    ones = np.ones(wrong.shape[:2])
    errs = [residual(back_project(wrong, ones, (0, 0), wrong.shape, src, k), src) for k in (0, 1, 3, STEPS)]
    assert errs[0] > 20 and errs[1] < errs[0] / 2 and errs[2] < errs[1] and errs[3] < errs[2]
    assert errs[3] < 1.0, errs


@pytest.mark.parametrize("scale", [2, 3, 2.5])
def test_window_equals_whole_photo(scale):
    # A face's window (with its context) gives inside the face what projecting the whole photo gives.
    src = smooth_photo(60, 64)
    size = (round(src.shape[1] * scale), round(src.shape[0] * scale))
    out = np.asarray(Image.fromarray(smooth_photo(60, 64, seed=3)).resize(size, Image.LANCZOS)).astype(np.float64)
    box = tuple(int(v * scale) for v in (24, 20, 40, 38))  # x0, y0, x1, y1 of the face
    weight = np.zeros(out.shape[:2])
    weight[box[1]:box[3], box[0]:box[2]] = 0.8
    whole = back_project(out, weight, (0, 0), out.shape, src, 5)
    x0, y0, x1, y1 = context_window(box, out.shape, src.shape)
    part = back_project(out[y0:y1, x0:x1], weight[y0:y1, x0:x1], (x0, y0), out.shape, src, 5)
    face = np.s_[box[1] - y0:box[3] - y0, box[0] - x0:box[2] - x0]
    assert np.abs(part[face] - whole[box[1]:box[3], box[0]:box[2]]).max() < 0.05
    assert np.array_equal(part[weight[y0:y1, x0:x1] == 0], out[y0:y1, x0:x1][weight[y0:y1, x0:x1] == 0])
    assert np.abs(whole - out).max() > 5  # it did move the face


def test_paste_projects_inside_the_mask_only_and_strength_zero_is_the_original():
    from rlse_fast.faces.align import align
    from rlse_fast.faces.frames import CELEBA
    from rlse_fast.faces.paste import paste, upscale_photo

    src = smooth_photo(80, 90)
    lm = np.array([[40, 30], [52, 30], [46, 37], [41, 44], [51, 44]], dtype=np.float64)
    a = align(lm, CELEBA)
    magenta = torch.zeros(3, 64, 64)
    magenta[0] = magenta[2] = 1
    bg = upscale_photo(src, 2)
    plain, proj, zero = bg.copy(), bg.copy(), bg.copy()
    box = paste(plain, magenta, a, 2)
    assert paste(proj, magenta, a, 2, source=src, steps=STEPS) == box
    paste(zero, magenta, a, 2, strength=0.0, source=src, steps=STEPS)
    assert np.array_equal(zero, bg)  # strength 0: the resized original, bit for bit
    changed = (proj != bg).any(-1)
    assert changed.any() and not ((plain == bg).all(-1) & changed).any()  # only inside the mask
    x0, y0, x1, y1 = (v // 2 for v in box)  # the face's input pixels: projected, it gives them back
    lr_plain = down(plain, src.shape[1::-1])[y0 + 2:y1 - 2, x0 + 2:x1 - 2]
    lr_proj = down(proj, src.shape[1::-1])[y0 + 2:y1 - 2, x0 + 2:x1 - 2]
    target = src[y0 + 2:y1 - 2, x0 + 2:x1 - 2]
    assert np.abs(lr_plain - target).mean() > 30 and np.abs(lr_proj - target).mean() < 0.25 * np.abs(lr_plain - target).mean()


def test_defaults_agree():
    from rlse_fast.api import Restorer
    from rlse_fast.cli import build_parser
    from rlse_fast.faces.pipeline import composite, restore_photo

    assert inspect.signature(Restorer.photo).parameters["back_project"].default == STEPS
    assert inspect.signature(restore_photo).parameters["back_project"].default == STEPS
    assert inspect.signature(composite).parameters["back_project"].default == STEPS
    args = build_parser().parse_args(["photo", "a.png", "b.png"])
    assert args.back_project == STEPS
