"""`photo` never makes a face worse: the per-face decisions (sizes, consistency, identity), the
strength knob's endpoints, and grey in / grey out, on synthetic faces of known size made from a real
face, with stand-in super-resolvers (no GAN)."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlse_fast import assets

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MTCNN = pytest.mark.skipif(not all(assets.available(f"mtcnn/{n}.pt") for n in ("pnet", "rnet", "onet")),
                           reason="MTCNN weights absent: run `rlse-fast fetch-assets`")


@dataclass
class _Out:
    images: torch.Tensor
    best_loss: torch.Tensor
    seconds: float


class Session:
    """Stands in for `session.Session` (64 px, CelebA frame): 'upsample' returns the input enlarged
    bicubically (consistent with it, the same person), 'flat' a magenta square (consistent with nothing),
    'brighter' the enlarged input a little brighter (between the measured bar and CONSISTENT_DB)."""

    resolution = 64
    spec = "celeba64"

    def __init__(self, kind="upsample"):
        self.kind, self.calls = kind, []
        self.gan = type("Gan", (), {"metadata": {}, "path": "celeba64.safetensors", "source_format": "safetensors"})()

    def run(self, lr, seeds):
        self.calls.append(tuple(lr.shape))
        if self.kind == "flat":
            img = torch.zeros(len(seeds), 3, 64, 64)
            img[:, 0] = img[:, 2] = 1.0
        elif self.kind == "brighter":  # 0.05 brighter: about 27 dB PSNR-Y against its input
            img = (F.interpolate(lr, size=(64, 64), mode="bicubic", align_corners=False) + 0.05).clamp(0, 1)
        else:
            img = F.interpolate(lr, size=(64, 64), mode="bicubic", align_corners=False).clamp(0, 1)
        return _Out(img, torch.zeros(len(seeds)), 0.1)


def real_face() -> np.ndarray:
    path = DATA / "ffhq_aligned_real" / "0143.png"
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/data provides it)")
    from rlse_fast.faces.photo_io import read_photo

    return read_photo(path)


def two_faces(big: int = 180, small: int = 28) -> np.ndarray:
    """A 420x260 colour photo (a smooth colour gradient) with one real FFHQ-aligned face scaled to
    `big` px and the same face at `small` px."""
    from PIL import Image

    face = Image.fromarray(real_face())
    yy, xx = np.mgrid[0:260, 0:420]
    canvas = Image.fromarray(np.stack([60 + xx * 0.4, 200 - yy * 0.5, 90 + (xx + yy) * 0.2], -1).astype(np.uint8))
    canvas.paste(face.resize((big, big), Image.LANCZOS), (20, 40))
    canvas.paste(face.resize((small, small), Image.LANCZOS), (300, 110))
    return np.asarray(canvas).copy()


# ----------------------------------------------------------------------------- the size rules


def test_plan_by_size():
    from rlse_fast.faces.decide import plan

    # a face whose output square exceeds the generator's 64 px is kept, whatever the input
    assert plan(40, 2, 64).input_size is None and plan(40, 2, 64).reason == "kept: larger than the generator's 64 px"
    # a face larger than every input size is kept rather than shrunk
    assert plan(40, 1, 64).reason == "kept: larger than the generator's 32 px input"
    # never shrunk: 20 px goes to the 32 px input (enlarged), 30 px too, 14 px to 16 (within 10%)
    assert [plan(s, 2, 64).input_size for s in (20, 30, 14)] == [32, 32, 16]
    assert plan(14, 4, 64).reason == "restored" and plan(34, 1.8, 64).input_size == 32
    # forced either way
    assert plan(40, 2, 64, "all").input_size == 32 and plan(10, 2, 64, "none").input_size is None


def test_check_consistency_and_identity():
    from rlse_fast.faces.decide import CONSISTENT_DB, check

    torch.manual_seed(0)
    lr = F.avg_pool2d(torch.rand(1, 3, 64, 64), 4)[0]  # smooth enough for bicubic to undo
    sr = F.interpolate(lr[None], size=(64, 64), mode="bicubic", align_corners=False)[0].clamp(0, 1)
    ok, reason, db, dist = check(sr, lr)
    assert ok and reason == "restored" and db > CONSISTENT_DB and dist is None

    class Identity:  # a stand-in whose distance is fixed
        def __init__(self, d):
            self.d = d

        def distance(self, a, b, box=None):
            assert a.shape == b.shape == (64, 64, 3)
            return self.d

    assert check(sr, lr, Identity(0.3))[:2] == (True, "restored")
    ok, reason, _, dist = check(sr, lr, Identity(0.9))
    assert not ok and reason.startswith("kept: another person") and dist == 0.9
    ok, reason, db, _ = check(torch.ones_like(sr) * torch.tensor([1.0, 0, 1])[:, None, None], lr)
    assert not ok and reason.startswith("kept: the fit failed") and db < CONSISTENT_DB
    # the bar is a parameter (measured weights take their own): just below and just above a fit's dB
    brighter = (sr + 0.05).clamp(0, 1)
    db = check(brighter, lr)[2]
    assert 20 < db < CONSISTENT_DB
    assert check(brighter, lr, consistent=db - 0.1)[:2] == (True, "restored")
    ok, reason, _, _ = check(brighter, lr, consistent=db + 0.1)
    assert not ok and reason == f"kept: the fit failed ({db:.1f} dB < {db + 0.1:g} dB against its input)"


@MTCNN
def test_synthetic_faces_large_kept_small_restored():
    from rlse_fast.faces.paste import upscale_photo
    from rlse_fast.faces.pipeline import restore_photo

    rgb = two_faces()
    session = Session()
    out = restore_photo(rgb, session, upscale=2)
    assert len(out.faces) == 2
    big, small = sorted(out.faces, key=lambda f: -f.face.width)
    assert big.alignment.side * 2 > 64 and not big.restored and big.sr is None  # never fitted
    assert big.reason == "kept: larger than the generator's 64 px"
    assert small.alignment.side * 2 <= 64 * 1.1 and small.restored and small.reason == "restored"
    assert small.lr_size == 32 >= small.alignment.side / 1.1  # not shrunk
    assert session.calls == [(1, 3, 32, 32)]
    assert out.summary() == "1 face restored, 1 kept: larger than the generator's 64 px"
    # the kept face is the resized original, bit for bit; the restored one changed
    bg = upscale_photo(rgb, 2)
    x0, y0, x1, y1 = (int(v * 2) for v in big.face.box)
    assert np.array_equal(out.image[y0:y1, x0:x1], bg[y0:y1, x0:x1])
    assert small.pasted_box is not None and small.consistency_db > 30
    # forced: both restored; none: the Lanczos photo
    assert all(f.restored for f in restore_photo(rgb, Session(), upscale=2, restore="all").faces)
    assert np.array_equal(restore_photo(rgb, Session(), upscale=2, restore="none").image, bg)


@MTCNN
def test_measured_weights_restore_only_where_the_protocol_found_a_win():
    from rlse_fast.faces.decide import Measured, PROTOCOL, default_strength, plan
    from rlse_fast.faces.pipeline import restore_photo

    bundled = next(sha for (sha, projected), m in PROTOCOL.items() if not projected and m.wins == ())
    assert default_strength(bundled, False) == 0.25 and default_strength(bundled) == 1.0
    assert default_strength("0" * 64) == default_strength(None) == 1.0
    lose, win, win_larger = Measured((), 0.25), Measured((32,), 1.0), Measured((32,), 1.0, larger=True)
    assert plan(20, 2, 64, measured=lose).reason == "kept: these weights lose to Lanczos at 32 px on the photo protocol"
    assert plan(20, 2, 64, measured=win).input_size == 32 and plan(20, 2, 64, "all", measured=lose).input_size == 32
    # a face whose output square (30 x 3 = 90 px) passes the generator's 64: kept unless measured winning there
    assert plan(30, 3, 64, measured=win).reason == "kept: larger than the generator's 64 px"
    assert plan(30, 3, 64, measured=win_larger).input_size == 32
    assert plan(40, 2, 64, measured=win_larger).input_size is None  # never shrunk, measured or not
    # at --upscale 1 a back-projected face is the photo's own pixels again: no fit
    assert plan(20, 1, 64).input_size == 32 and plan(20, 1, 64, back_projected=True).input_size is None
    assert plan(20, 1, 64, "all", back_projected=True).input_size == 32  # forced
    rgb = two_faces()
    session = Session()
    session.gan.sha256 = bundled
    out = restore_photo(rgb, session, upscale=2, back_project=0)  # pasted as made: the measured loss
    assert session.calls == [] and not any(f.restored for f in out.faces)
    assert "1 kept: these weights lose to Lanczos at 32 px on the photo protocol" in out.summary()
    assert out.strength == 0.25
    out = restore_photo(rgb, session, upscale=2)  # back-projected (the default): the measured win
    assert [f.restored for f in out.faces] == [False, True] and out.strength == 1.0
    assert out.faces[0].reason == "kept: larger than the generator's 32 px input"


@MTCNN
def test_measured_weights_take_their_own_consistency_bar():
    """A fit between the measured bar (the bundled prior back-projected: 25 dB) and CONSISTENT_DB is
    restored with those weights and kept with weights the protocol has not measured or pasted as made."""
    from rlse_fast.faces.decide import CONSISTENT_DB, PROTOCOL
    from rlse_fast.faces.pipeline import restore_photo

    (bundled, m), = [(sha, m) for (sha, projected), m in PROTOCOL.items() if projected]
    assert m.consistent_db < CONSISTENT_DB
    rgb = two_faces()
    session = Session("brighter")
    out = restore_photo(rgb, session, upscale=2)  # not measured: CONSISTENT_DB
    small = out.faces[1]
    assert not small.restored and small.reason.startswith("kept: the fit failed")
    assert m.consistent_db < small.consistency_db < CONSISTENT_DB
    session.gan.sha256 = bundled
    out = restore_photo(rgb, session, upscale=2)
    assert out.faces[1].restored and out.faces[1].reason == "restored"


@MTCNN
def test_failed_fit_is_kept():
    from rlse_fast.faces.paste import upscale_photo
    from rlse_fast.faces.pipeline import restore_photo

    rgb = two_faces()
    out = restore_photo(rgb, Session("flat"), upscale=2)
    assert [f.restored for f in out.faces] == [False, False]
    assert "1 kept: the fit failed" in out.summary() and np.array_equal(out.image, upscale_photo(rgb, 2))


@MTCNN
def test_strength_endpoints():
    from rlse_fast.faces.paste import upscale_photo
    from rlse_fast.faces.pipeline import composite, fit_faces

    rgb = two_faces()
    faces, u, _, _ = fit_faces(rgb, Session("flat"), upscale=2, restore="all")
    bg = upscale_photo(rgb, u)
    x, y = ((faces[-1].face.landmarks.mean(0) + 0.5) * u).astype(int)
    for steps in (0, 10):  # as the generator made it, and back-projected onto the photo (the default)
        assert np.array_equal(composite(rgb, faces, u, 0.0, back_project=steps), bg)  # the resized original, bit for bit
        full, half = composite(rgb, faces, u, 1.0, back_project=steps), composite(rgb, faces, u, 0.5, back_project=steps)
        if steps == 0:
            assert full[y, x].tolist() == [255, 0, 255]  # the result itself inside the mask
        else:  # the magenta face, projected, no longer contradicts the photo it came from
            assert np.abs(full[y, x].astype(float) - bg[y, x]).max() < 40
        expect = (bg[y, x].astype(float) + full[y, x]) / 2
        assert np.abs(half[y, x] - expect).max() <= 1


# ----------------------------------------------------------------------------- grey in, grey out


def test_tint_spread_separates_grey_sepia_colour():
    from rlse_fast.faces.chroma import MONOCHROME_MAX, tint_spread

    face = real_face()
    grey = np.repeat(face.mean(-1, keepdims=True).astype(np.uint8), 3, -1)
    sepia = np.clip(grey * np.array([1.07, 0.74, 0.43]) + np.array([10, 5, 0]), 0, 255).astype(np.uint8)
    assert tint_spread(grey) < 1e-9 and tint_spread(sepia) < 1 < MONOCHROME_MAX < tint_spread(face)


@MTCNN
@pytest.mark.parametrize("tone", ["grey", "sepia"])
def test_monochrome_photo_gives_monochrome_faces(tone):
    from rlse_fast.faces.chroma import MONOCHROME_MAX, tint_spread
    from rlse_fast.faces.pipeline import restore_photo

    rgb = two_faces().astype(np.float64).mean(-1, keepdims=True)
    rgb = np.repeat(rgb, 3, -1) if tone == "grey" else rgb * np.array([1.07, 0.74, 0.43]) + np.array([10, 5, 0])
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    out = restore_photo(rgb, Session("flat"), upscale=2, restore="all")  # magenta faces, pasted
    assert out.monochrome and all(f.pasted_box for f in out.faces)
    if tone == "grey":
        assert (out.image.max(-1) == out.image.min(-1)).all()
    else:
        assert tint_spread(out.image) <= MONOCHROME_MAX
        x, y = ((out.faces[-1].face.landmarks.mean(0) + 0.5) * 2).astype(int)
        r, g, b = out.image[y, x].astype(int)
        assert r >= g >= b  # sepia, not magenta


def test_sr_grey_input_gives_grey_output_colour_left_alone():
    from rlse_fast.faces.chroma import match_input

    torch.manual_seed(1)
    magenta = torch.zeros(3, 64, 64)
    magenta[0] = magenta[2] = 0.8
    grey = torch.rand(1, 16, 16).repeat(3, 1, 1)
    out, mono = match_input(magenta, grey)
    assert mono and ((out * 255).round()[0] == (out * 255).round()[1]).all() and ((out * 255).round()[1] == (out * 255).round()[2]).all()
    colour = torch.rand(3, 16, 16)
    out, mono = match_input(magenta, colour)
    assert not mono and torch.equal(out, magenta)


def test_sr_cli_grey_input_gives_grey_output(tmp_path, monkeypatch):
    from gan_files import tiny_gan

    from rlse_fast.checkpoints import save_gan
    from rlse_fast.cli import main
    from rlse_fast.imageio import load_image, save_image

    monkeypatch.setenv("RLSE_FAST_HOME", str(tmp_path / "home"))
    G, D = tiny_gan(seed=2)
    save_gan(tmp_path / "tiny.safetensors", G, D)
    torch.manual_seed(3)
    save_image(torch.rand(1, 8, 8).repeat(3, 1, 1), tmp_path / "grey.png")
    args = ["--weights", str(tmp_path / "tiny.safetensors"), "--steps", "3", "--gaussian-samples", "2048", "--quiet"]
    assert main(["sr", str(tmp_path / "grey.png"), str(tmp_path / "out.png"), *args]) == 0
    out = (load_image(tmp_path / "out.png") * 255).round()
    assert out.shape == (3, 32, 32) and torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    import json

    assert json.loads((tmp_path / "out.json").read_text())["monochrome"] is True
