"""The Python entry point: load the weights once, then restore many faces or photos.

    from rlse_fast import Restorer
    r = Restorer()                     # the weights `rlse-fast sr` would use; loaded once
    big = r.face(small_face)           # an aligned face crop (PIL or uint8 array) -> the same type
    out = r.photo(photo, upscale=2)    # every face of a whole photo, pasted back

Images go in and come back as the caller's type: a PIL Image gives a PIL Image; a numpy uint8 array
(H, W, 3) RGB or (H, W) grey gives a numpy uint8 array of the same layout (grey in, grey out).
Bad input raises `rlse_fast.errors.UserError` with the command line's one-line message.
"""
from __future__ import annotations

import warnings

import numpy as np


class Restorer:
    """A loaded setup (weights, Gaussian fit, engine) for `face` and `photo`.

    weights: a path or a name (ffhq, ffhq512, ffhq256, celeba64); None: ffhq when it is downloaded,
    else the bundled celeba64 prior (64 px faces), as `rlse-fast sr`.
    mode: "rlse" or "pulse"; steps, seed: as the command's --steps and --seed.
    device: "cpu", "cuda" or None (a GPU when there is one). threads: CPU threads for PyTorch.
    batch: faces of a photo optimised together. quiet: no notice on stderr.
    options: further `config.RLSEConfig` fields (w_pixel, w_geocross, keep, pixel_floor, ...).
    """

    def __init__(self, weights: str | None = None, *, device: str | None = None, mode: str = "rlse",
                 steps: int = 100, seed: int = 0, batch: int = 8, threads: int | None = None,
                 quiet: bool = False, **options):
        from .openmp import prefer_passive_wait

        prefer_passive_wait()  # as the command does, when torch is not loaded yet
        import torch

        from . import weights as weights_mod
        from .config import RLSEConfig
        from .errors import UserError
        from .session import Session

        if mode not in ("rlse", "pulse"):
            raise UserError(f"mode must be 'rlse' or 'pulse', got {mode!r}")
        for name, value, low in (("steps", steps, 1), ("batch", batch, 1), ("seed", seed, 0), ("threads", threads, 1)):
            if value is not None and value < low:
                raise UserError(f"{name} must be >= {low}, got {value}")
        if threads:
            torch.set_num_threads(threads)
        self.seed, self.batch = seed, batch
        self.last_summary: str | None = None
        self.session = Session.load(weights, RLSEConfig.from_mode(mode, steps=steps, **options),
                                    device=device or "auto", quiet=quiet)
        weights_mod.tell_default(weights, quiet)

    @property
    def resolution(self) -> int:
        """The side of the faces the generator makes (64 for celeba64, 1024 for ffhq)."""
        return self.session.resolution

    def face(self, image, scale: int | None = None, size: int | None = None):
        """An aligned, square face crop of resolution / 2**k px (k >= 1: 32, 16, 8 ... px for celeba64)
        -> the super-resolved face, `resolution` px (or `size` px, resized with Lanczos)."""
        import torch
        from PIL import Image

        from .errors import UserError
        from .faces.align import valid_sizes
        from .faces.chroma import match_input

        rgb, back = _as_rgb(image)
        h, w = rgb.shape[:2]
        res = self.resolution
        sizes = valid_sizes(res)
        if h != w:
            raise UserError(f"the face must be square (aligned and cropped), got {w}x{h}; "
                            "for a face inside a larger picture use Restorer.photo")
        if h not in sizes or (scale is not None and h * scale != res):
            want = f"{res // scale} px for scale {scale}" if scale else ", ".join(map(str, sizes)) + " px"
            raise UserError(f"a {h} px face cannot be upscaled to the weights' {res} px; give {want}")
        if size is not None and size < 1:
            raise UserError(f"size must be >= 1, got {size}")
        lr = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1) / 255
        out = self.session.run(lr[None], [self.seed]).images[0].detach().float().cpu()
        out, _ = match_input(out, lr)  # grey in, grey out, as `sr`
        im = Image.fromarray((out.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy())
        if size is not None and size != im.width:
            im = im.resize((size, size), Image.LANCZOS)
        return back(np.array(im))

    def photo(self, image, upscale: int | None = None, min_face: float = 12.0, max_faces: int | None = None,
              min_score: float = 0.8, restore: str = "auto", strength: float | None = None,
              back_project: int = 10):
        """A whole photo -> the photo `upscale` times larger (None: 2-4 from the faces' sizes, as the
        command), every face of `min_face` px or wider found and, where `restore` says so, super-resolved
        and pasted back. restore, strength, back_project: as the command's --restore (auto: only where the
        face cannot come out worse; all; none), --strength (None: the weights' default) and --back-project
        (steps; 0: the generator's face as it is). A photo without such a
        face comes back only resampled, with a warning; `last_summary` says what was decided per face."""
        from .faces.pipeline import check_options, identity_check, restore_photo

        check_options(min_face, min_score, max_faces, upscale, restore, strength, cli=False, back_project=back_project)
        rgb, back = _as_rgb(image)
        _, identity = identity_check(self.session.gan.sha256, restore, back_project)
        result = restore_photo(rgb, self.session, min_face=min_face, max_faces=max_faces, upscale=upscale,
                               seed=self.seed, batch=self.batch, min_score=min_score, restore=restore,
                               strength=strength, identity=identity, back_project=back_project)
        self.last_summary = result.summary() if result.faces else "no face found"
        if not result.faces:
            warnings.warn(f"no face of {min_face:g} px or wider was found; the photo is only resampled", stacklevel=2)
        return back(result.image)


def _as_rgb(image):
    """(uint8 (H, W, 3) RGB array, a function that turns an RGB uint8 result back into the caller's type)."""
    from PIL import Image

    from .errors import UserError

    if isinstance(image, Image.Image):
        grey = image.mode in ("L", "LA", "1")
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        rgb = np.asarray(image.convert("RGB"))
        return rgb, (lambda out: Image.fromarray(out).convert("L")) if grey else Image.fromarray
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise UserError(f"an image array must be uint8 (0-255), got {image.dtype}; "
                            "for floats in [0, 1] pass (a * 255).round().astype(np.uint8)")
        if image.ndim == 2:
            return np.repeat(image[..., None], 3, axis=2), lambda out: np.array(Image.fromarray(out).convert("L"))
        if image.ndim == 3 and image.shape[2] == 3:
            return image, np.asarray
        raise UserError(f"an image array must be (H, W, 3) RGB or (H, W) grey, got shape {image.shape}")
    raise UserError(f"expected a PIL Image or a numpy uint8 array, got {type(image).__name__}")
