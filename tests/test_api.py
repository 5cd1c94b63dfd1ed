"""`rlse_fast.Restorer`: the commands' results from Python, PIL or arrays in and the same type out."""
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import cli, home, make_faces, weights  # noqa: F401 (fixtures)
from rlse_fast import Restorer
from rlse_fast.errors import UserError
from rlse_fast.imageio import save_image

try:
    from rlse_fast import assets
except ImportError:  # the layout before rlse_fast/assets.py
    from rlse_fast.metrics import assets

PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos" / "tiny_3faces_128.png"
OPTS = {"steps": 2, "gaussian_samples": 4096}
CLI_OPTS = ["--steps", "2", "--gaussian-samples", "4096", "--quiet"]


@pytest.fixture(scope="module")
def restorer(tmp_path_factory):
    """A Restorer of the tiny GAN, in a cache folder of its own that sees the real assets (MTCNN)."""
    from cli_helpers import make_weights

    root = tmp_path_factory.mktemp("api")
    (root / "home").mkdir()
    (root / "home" / "assets").symlink_to(assets.assets_dir(), target_is_directory=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("RLSE_FAST_HOME", str(root / "home"))
    try:
        yield Restorer(str(make_weights(root)), seed=3, **OPTS)
    finally:
        mp.undo()


def test_face_gives_what_sr_writes(restorer, tmp_path, capsys, weights, home):  # noqa: F811
    save_image(make_faces(1, 4)[0], tmp_path / "face.png")
    code, _, err = cli(capsys, "sr", tmp_path / "face.png", tmp_path / "sr.png", "--weights", weights, "--seed", "3",
                       *CLI_OPTS)
    assert code == 0, err
    lr = Image.open(tmp_path / "face.png")
    out = restorer.face(lr)
    assert isinstance(out, Image.Image) and out.size == (32, 32) and out.mode == "RGB"
    assert np.array_equal(np.asarray(out), np.asarray(Image.open(tmp_path / "sr.png")))
    arr = restorer.face(np.asarray(lr))
    assert isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and np.array_equal(arr, np.asarray(out))
    assert restorer.face(lr, size=48).size == (48, 48) and restorer.face(lr, scale=4).size == (32, 32)


def test_grey_in_grey_out(restorer):
    grey = (make_faces(1, 4)[0].mean(0).numpy() * 255).round().astype(np.uint8)
    out = restorer.face(grey)
    rgb = restorer.face(np.repeat(grey[..., None], 3, axis=2))
    assert out.shape == (32, 32) and np.array_equal(out, np.asarray(Image.fromarray(rgb).convert("L")))
    assert restorer.face(Image.fromarray(grey)).mode == "L"


@pytest.mark.parametrize("bad, words", [
    (np.zeros((8, 10, 3), np.uint8), "must be square"),
    (np.zeros((10, 10, 3), np.uint8), "give 16, 8, 4, 2 px"),
    (np.zeros((8, 8, 3), np.float32), "must be uint8"),
    (np.zeros((8, 8, 4), np.uint8), "(H, W, 3) RGB or (H, W) grey"),
    ("face.png", "a PIL Image or a numpy uint8 array"),
])
def test_bad_faces_are_one_line_user_errors(restorer, bad, words):
    with pytest.raises(UserError, match=None) as exc:
        restorer.face(bad)
    assert words in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(UserError, match="scale 2"):
        restorer.face(np.zeros((8, 8, 3), np.uint8), scale=2)


def test_bad_settings_are_refused_before_loading():
    for kwargs, words in (({"mode": "esrgan"}, "mode"), ({"steps": 0}, "steps"), ({"threads": 0}, "threads")):
        with pytest.raises(UserError, match=words):
            Restorer("no-such-weights.safetensors", **kwargs)


def test_photo_gives_what_the_photo_command_writes(restorer, tmp_path, capsys, weights):  # noqa: F811

    if not (PHOTO.is_file() and assets.available("mtcnn/onet.pt")):
        pytest.skip("needs ../shared/data/photos and the MTCNN weights (rlse-fast fetch-assets)")
    code, _, err = cli(capsys, "photo", PHOTO, tmp_path / "out.png", "--weights", weights, "--seed", "3",
                       "--upscale", "2", *CLI_OPTS)
    assert code == 0, err
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"))
    out = restorer.photo(rgb, upscale=2)
    assert out.shape == (256, 256, 3) and np.array_equal(out, np.asarray(Image.open(tmp_path / "out.png")))
    same = restorer.photo(Image.fromarray(rgb), upscale=1)  # the photo's own size: no room for detail
    assert isinstance(same, Image.Image) and same.size == (128, 128) and np.array_equal(np.asarray(same), rgb)
    assert restorer.last_summary == "0 faces restored, 3 kept: --upscale 1 leaves no room for detail " \
                                    "(back-projected, the face is the photo's)"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        blank = restorer.photo(np.full((64, 64, 3), 128, np.uint8))  # default upscale: 2 without faces
    assert blank.shape == (128, 128, 3) and any("no face" in str(w.message) for w in seen)
