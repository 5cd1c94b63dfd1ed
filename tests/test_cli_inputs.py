"""`rlse-fast sr` as a new user meets it: every image mode read with its real range or refused,
images too large refused from their header, options and the output location checked before any
work, write failures and diverging runs as one line, plus the smaller CLI promises (help, names)."""
import importlib.util
import json
import re
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import pytest
import torch

from cli_helpers import FAST, cli, home, make_faces, make_weights, one_line_error, tree, weights  # noqa: F401
from rlse_fast.imageio import MAX_PIXELS, load_image, save_image


@pytest.fixture(autouse=True)
def _home(home):
    return home


# ----------------------------------------------------------------------------- image modes

def _gray(h=8, w=8):
    return np.linspace(0, 1, h * w, dtype=np.float64).reshape(h, w)


def _save_mode(path, mode):
    """Write an image of Pillow mode `mode`; return the (H, W, 3) float RGB it stands for."""
    from PIL import Image

    g = _gray()
    if mode == "I;16":
        a = np.round(g * 65535).astype(np.uint16)
        Image.fromarray(a).save(path)  # a 16-bit grayscale PNG
        return np.repeat(a[..., None] / 65535, 3, 2)
    if mode == "I":
        a = np.round(g * 65535).astype(np.int32)
        Image.fromarray(a, mode="I").save(path)
        return np.repeat(a[..., None] / 65535, 3, 2)
    if mode == "F":
        Image.fromarray(g.astype(np.float32), mode="F").save(path)
        return np.repeat(g.astype(np.float32)[..., None], 3, 2)
    if mode in ("LA", "RGBA"):
        v, alpha = np.round(g * 255).astype(np.uint8), np.round(g[::-1] * 255).astype(np.uint8)
        chans = [v, alpha] if mode == "LA" else [v, v[::-1], v.T, alpha]
        Image.fromarray(np.stack(chans, 2), mode=mode).save(path)
        rgb = np.repeat(v[..., None], 3, 2) if mode == "LA" else np.stack([v, v[::-1], v.T], 2)
        a = alpha[..., None] / 255.0
        return (rgb / 255.0) * a + (1 - a)  # on white
    if mode == "P":
        idx = (np.arange(64).reshape(8, 8) % 4).astype(np.uint8)
        im = Image.fromarray(idx, mode="P")
        im.putpalette([10, 20, 30, 200, 0, 0, 0, 200, 0, 0, 0, 200] + [0] * 756)
        im.save(path, transparency=0)
        pal = np.array([[255, 255, 255], [200, 0, 0], [0, 200, 0], [0, 0, 200]]) / 255  # index 0 transparent: white
        return pal[idx]
    if mode == "CMYK":
        k = np.round(g * 255).astype(np.uint8)
        z = np.zeros_like(k)
        Image.fromarray(np.stack([z, z, z, k], 2), mode="CMYK").save(path)
        return np.repeat((255 - k)[..., None] / 255, 3, 2)
    raise AssertionError(mode)


@pytest.mark.parametrize("mode,suffix", [("I;16", ".png"), ("I", ".tif"), ("F", ".tif"), ("LA", ".png"),
                                         ("RGBA", ".png"), ("P", ".png"), ("CMYK", ".tif")])
def test_every_mode_read_with_its_range(tmp_path, mode, suffix):
    path = tmp_path / f"x{suffix}"
    want = _save_mode(path, mode)
    from PIL import Image

    assert Image.open(path).mode == mode
    got = load_image(path).permute(1, 2, 0).numpy()
    assert np.abs(got - want).max() <= 1.01 / 255, mode


@pytest.mark.parametrize("mode,values,why", [("F", [-0.5, 2.0], "[0, 1]"), ("I", [0, 70000], "0..65535")])
def test_out_of_range_modes_refused(tmp_path, mode, values, why):
    from PIL import Image

    path = tmp_path / "x.tif"
    dtype = np.float32 if mode == "F" else np.int32
    Image.fromarray(np.array([values * 2] * 4, dtype=dtype), mode=mode).save(path)
    from rlse_fast.errors import UserError

    with pytest.raises(UserError, match=re.escape(why)):
        load_image(path)


def test_exif_orientation_honoured(tmp_path):
    from PIL import Image

    a = (np.arange(8 * 4 * 3).reshape(4, 8, 3) * 2).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    Image.fromarray(a).save(tmp_path / "r.png", exif=exif)
    got = (load_image(tmp_path / "r.png").permute(1, 2, 0).numpy() * 255).round()
    assert np.array_equal(got, np.rot90(a, k=-1))


def test_cli_reads_16_bit_gray_with_its_range(tmp_path, weights, capsys):
    # The reported bug: a 16-bit PNG read as all white. The same face as 16-bit gray and as 8-bit RGB
    # must start from the same pixel loss (the first iterate depends on the seed only).
    from PIL import Image

    gray = make_faces(1)[0].mean(0).numpy()
    Image.fromarray(np.round(gray * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    save_image(torch.from_numpy(gray).expand(3, -1, -1), tmp_path / "g8.png")
    losses = []
    for name in ("g16", "g8"):
        code, out, err = cli(capsys, "sr", tmp_path / f"{name}.png", tmp_path / "out" / f"{name}.png",
                             "--weights", weights, *FAST)
        assert code == 0, err
        pixel = json.loads((tmp_path / "out" / f"{name}.json").read_text())["losses"][0]["pixel"]
        losses.append(pixel)
    assert losses[0] == pytest.approx(losses[1], rel=0.02)


# ----------------------------------------------------------------------------- too large, from the header

def _png_header(w, h):
    """A PNG file with only its header: opening it works, decoding it would fail."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side,message", [(12000, f"more than {MAX_PIXELS:,} pixels"), (20000, "more than"),
                                          (100, "larger than the 16 px")])
def test_large_image_refused_before_decoding(tmp_path, weights, capsys, side, message):
    src = tmp_path / "big.png"
    src.write_bytes(_png_header(side, side))
    out = tmp_path / "o" / "big.png"
    code, _, err = cli(capsys, "sr", src, out, "--weights", weights, *FAST)
    line = one_line_error(code, err)
    assert message in line and "Warning" not in err
    assert tree(tmp_path / "o") == []


# ----------------------------------------------------------------------------- options and OUT, up front

@pytest.mark.parametrize("option", [["--size", "0"], ["--size", "-3"], ["--size", "100000"], ["--steps", "0"],
                                    ["--batch", "0"], ["--gaussian-samples", "1"], ["--seed", "-1"],
                                    ["--scale", "1"], ["--scale", "3"], ["--w-pixel", "nan"],
                                    ["--w-semantic", "inf"], ["--w-geocross", "-1"]])
def test_bad_option_refused_up_front(tmp_path, capsys, option):
    # The weights do not exist: the option must be refused before they are even looked for.
    code, _, err = cli(capsys, "sr", tmp_path / "none.png", tmp_path / "o.png", "--weights", tmp_path / "no.pt", *option)
    line = one_line_error(code, err)
    assert option[0] in line
    assert tree(tmp_path) == []


def test_impl_that_cannot_run_refused_before_work(tmp_path, weights, home, capsys, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    save_image(make_faces(1)[0], tmp_path / "a.png")
    for impl in ("cuda", "triton"):
        code, _, err = cli(capsys, "sr", tmp_path / "a.png", tmp_path / "o.png", "--weights", weights, "--impl", impl, *FAST)
        assert f"--impl {impl}" in one_line_error(code, err)
    assert not (home / "gaussian_fit").exists() and not (tmp_path / "o.png").exists()


def test_output_under_a_file_refused_before_work(tmp_path, weights, home, capsys):
    save_image(make_faces(1)[0], tmp_path / "a.png")
    (tmp_path / "file").write_text("x")
    code, _, err = cli(capsys, "sr", tmp_path / "a.png", tmp_path / "file" / "o.png", "--weights", weights, *FAST)
    assert "is a file" in one_line_error(code, err)
    assert not (home / "gaussian_fit").exists()  # refused before the Gaussian fit


def test_unwritable_location_refused_before_work(tmp_path, weights, home, capsys):
    try:
        fd, name = tempfile.mkstemp(dir="/sys")
    except OSError:
        pass
    else:
        import os

        os.close(fd)
        os.unlink(name)
        pytest.skip("/sys is writable here")
    save_image(make_faces(1)[0], tmp_path / "a.png")
    code, _, err = cli(capsys, "sr", tmp_path / "a.png", "/sys/rlse-fast-test.png", "--weights", weights, *FAST)
    assert "cannot write to /sys" in one_line_error(code, err)
    assert not (home / "gaussian_fit").exists()


def test_write_failure_at_the_end_is_one_line(tmp_path, weights, capsys, monkeypatch):
    from PIL import Image

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    save_image(make_faces(1)[0], tmp_path / "a.png")
    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "o"
    code, _, err = cli(capsys, "sr", tmp_path / "a.png", out / "a.png", "--weights", weights, *FAST)
    assert "No space left on device" in one_line_error(code, err)
    assert tree(out) == []


def test_diverging_run_refused_and_nothing_written(tmp_path, capsys):
    nan_weights = make_weights(tmp_path, nan=True)
    save_image(make_faces(1)[0], tmp_path / "a.png")
    code, _, err = cli(capsys, "sr", tmp_path / "a.png", tmp_path / "o" / "a.png", "--weights", nan_weights, *FAST)
    assert "not finite" in one_line_error(code, err, exit_code=1)
    assert tree(tmp_path / "o") == []


def test_size_hint_lists_every_input_size(tmp_path, weights, capsys):
    save_image(torch.rand(3, 12, 12), tmp_path / "a.png")
    code, _, err = cli(capsys, "sr", tmp_path / "a.png", tmp_path / "o.png", "--weights", weights, *FAST)
    assert "resize it to 16, 8, 4 or 2 px" in one_line_error(code, err)  # x16 at most at 32 px
    code, _, err = cli(capsys, "sr", tmp_path / "a.png", tmp_path / "o.png", "--weights", weights, "--scale", "2", *FAST)
    line = one_line_error(code, err)
    assert "give an input of 16 px" in line and "?" not in line


# ----------------------------------------------------------------------------- smaller promises

def test_quiet_keeps_the_result_line(tmp_path, weights, capsys):
    save_image(make_faces(1)[0], tmp_path / "a.png")
    code, out, err = cli(capsys, "sr", tmp_path / "a.png", tmp_path / "o.png", "--weights", weights, *FAST)
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'o.png'} (4x, rlse") and err == ""


def test_help_prints_each_default_once(capsys):
    with pytest.raises(SystemExit):
        cli(capsys, "sr", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "(default: 100) (default" not in text
    assert text.count("(default:") >= 5 and "(default: 100)" in text


def test_names_work_in_load_gan_and_info(capsys):
    import rlse_fast
    from rlse_fast.weights import bundled_path

    if not bundled_path("celeba64").is_file():
        pytest.skip("the bundled prior is absent from this checkout")
    assert rlse_fast.load_gan("celeba64").generator.img_resolution == 64
    code, out, _ = cli(capsys, "info", "celeba64", "--json")
    assert code == 0 and json.loads(out)["resolution"] == 64


def test_kernels_says_triton_needs_a_gpu(capsys, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    code, out, _ = cli(capsys, "kernels")
    row = next(line for line in out.splitlines() if line.startswith("triton:"))
    state = row.split(None, 1)[1]
    if importlib.util.find_spec("triton") is not None:  # installed: it says where it runs
        assert code == 0 and state.startswith("installed; runs on a GPU only")
    else:  # absent: it says why, never 'available'
        assert code == 0 and state and not state.startswith("available")


def test_closed_stdout_no_traceback(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "rlse_fast", "kernels"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader goes away before the first line (`rlse-fast kernels | head -0`)
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and "Traceback" not in err and "Exception ignored" not in err


def test_result_images_are_the_unclamped_best_iterate(weights):
    # docs/usage.md and Result's docstring: images are (G's output + 1) / 2 at the best step, not clamped.
    from rlse_fast.checkpoints import load_gan
    from rlse_fast.config import RLSEConfig
    from rlse_fast.engine.eager import prepare_fit, super_resolve

    gan = load_gan(weights)
    cfg = RLSEConfig(steps=3, gaussian_samples=4096)
    seen = {}
    result = super_resolve(gan.generator, gan.discriminator, make_faces(2), cfg, prepare_fit(gan, cfg),
                           on_step=lambda step, img, losses: seen.__setitem__(step, img.clone()))
    for i, step in enumerate(result.best_step):
        assert torch.equal(result.images[i], seen[step][i])
    assert result.images.min() < 0 or result.images.max() > 1  # this random generator overshoots


def test_readme_install_and_inputs(capsys):
    # The install line takes PyTorch's CPU wheel on any machine, says what a GPU user runs instead,
    # and keeps two commands; the README's Inputs, docs/usage.md's Inputs and `sr --help` say how faces
    # must be framed, and the docs page how every mode and size is read.
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = re.search(r"## Install and run.*?```bash\n(.*?)```(.*?)\n## ", readme, re.S)
    lines = block.group(1).strip().splitlines()
    assert len(lines) == 2 and "--index-url https://download.pytorch.org/whl/cpu" in lines[0]
    assert "With an NVIDIA GPU" in block.group(2) and lines[1].endswith("out/face.png")
    inputs = " ".join(readme.split("### Inputs", 1)[1].split("\n## ", 1)[0].split())
    for words in ("CelebA framing", "FFHQ framing", "EXIF", "docs/usage.md#inputs"):
        assert words in inputs, words
    detail = (root / "docs" / "usage.md").read_text().split("### Inputs", 1)[1].split("###", 1)[0]
    for words in ("CelebA framing", "FFHQ framing", "I;16", "composited on white", "EXIF", "header"):
        assert words in detail, words
    with pytest.raises(SystemExit):
        cli(capsys, "sr", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "CelebA framing" in text and "FFHQ framing" in text
