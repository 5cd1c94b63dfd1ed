"""Reading whole photos: EXIF rotation, modes, 16-bit, corrupt files and decompression bombs."""
import io

import numpy as np
import pytest
from PIL import Image

from rlse_fast.errors import UserError
from rlse_fast.faces.photo_io import read_photo


def test_exif_rotation_is_honoured(tmp_path):
    # Stored 40 wide x 20 high with Orientation=6 (rotate 90 CW to display): shows 20 wide x 40 high.
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :10] = (255, 0, 0)  # red on the stored left: on top after the rotation
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "r.jpg", exif=exif, quality=98)
    rgb = read_photo(tmp_path / "r.jpg")
    assert rgb.shape == (40, 20, 3)
    assert rgb[:8, :, 0].mean() > 200 and rgb[-8:, :, 0].mean() < 60


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1"])
def test_modes_become_rgb8(tmp_path, mode):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, 12:] = 200
    im = Image.fromarray(rgb).convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    im.save(path)
    out = read_photo(path)
    assert out.shape == (16, 24, 3) and out.dtype == np.uint8
    assert out[:, :10].mean() < 40 and out[:, 14:].mean() > 150


def test_16bit_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16).repeat(4, 0)
    Image.fromarray(a).save(tmp_path / "g16.png")
    out = read_photo(tmp_path / "g16.png")
    assert out.shape == (4, 4, 3)
    assert list(out[0, :, 0]) == [0, 4, 128, 255]


def test_corrupt_and_missing_are_one_line_user_errors(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:200])
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    for name in ("cut.jpg", "junk.png", "absent.png"):
        with pytest.raises(UserError) as exc:
            read_photo(tmp_path / name)
        assert "\n" not in str(exc.value) and name in str(exc.value)


def test_huge_photo_refused_before_decoding(tmp_path):
    # 9000 x 9000 = 81 MP of one grey: a few hundred KB on disk, 243 MB decoded.
    Image.new("L", (9000, 9000), 128).save(tmp_path / "bomb.png", optimize=False)
    assert (tmp_path / "bomb.png").stat().st_size < 5_000_000
    with pytest.raises(UserError, match="MP"):
        read_photo(tmp_path / "bomb.png")
    Image.new("L", (300, 200)).save(tmp_path / "small.png")
    with pytest.raises(UserError, match="limit"):
        read_photo(tmp_path / "small.png", max_pixels=50_000)
