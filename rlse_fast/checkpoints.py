"""Load and save GAN checkpoints: NVIDIA StyleGAN2-ADA/StyleGAN3 pickles, rosinality `.pt`, our safetensors.

`load_gan(path)` infers the format and the architecture from the file and returns a `GAN` with
`.generator` and `.discriminator` (None when the file has none). Official pickles embed Python
source that a normal unpickling executes; `_SafeUnpickler` never runs it: it allow-lists only
what tensors and plain containers need and refuses any other global with a one-line error.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .errors import UserError
from .imageio import atomic_write
from .loaders import pulse, tf_pickle
from .loaders.safe_unpickler import PersistentObject, safe_unpickle, short as _short
from .models import registry
from .models.stylegan2 import Discriminator, Generator
from .models.stylegan2.state_dict import infer_discriminator_config, infer_generator_config, rosinality_to_official

FORMAT_NAME = "rlse-fast"
FORMAT_VERSION = "1"


@dataclass
class GAN:
    """A loaded generator/discriminator pair in eval mode, float32, on the CPU."""

    generator: Generator
    discriminator: Discriminator | None
    path: str
    sha256: str
    source_format: str
    """'safetensors', 'nvidia-pickle', 'rosinality', 'tf-pickle' (StyleGAN v1) or 'pulse' (StyleGAN v1)."""
    metadata: dict = field(default_factory=dict)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def build_generator(cfg, sd: dict[str, torch.Tensor]) -> Generator:
    """The generator of `cfg`'s backbone (`models.registry`) with weights `sd`."""
    G = registry.of(cfg)[0].generator(cfg)
    _load_strict(G, sd, "generator")
    return G.eval().requires_grad_(False)


def build_discriminator(cfg, sd: dict[str, torch.Tensor]) -> Discriminator:
    D = registry.of(cfg)[0].discriminator(cfg)
    _load_strict(D, sd, "discriminator")
    return D.eval().requires_grad_(False)


def _load_strict(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    own = module.state_dict()
    # FIR filters are fixed by the architecture; files may omit them.
    sd = {**{k: v for k, v in own.items() if k.endswith("resample_filter")}, **sd}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise UserError(f"{what} weights do not match the inferred architecture (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, v in sd.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise UserError(f"{what} weight {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    module.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()})


# ----------------------------------------------------------------------------- our safetensors format


def save_gan(path, generator: Generator, discriminator: Discriminator | None, dtype=torch.float32,
             extra_metadata: dict | None = None) -> None:
    """Write our format atomically: 'G.<name>' / 'D.<name>' tensors, configs as JSON metadata."""
    tensors = {f"G.{k}": v.detach().to("cpu", dtype).contiguous() for k, v in generator.state_dict().items()}
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "generator": json.dumps(config_as_dict(generator.cfg))}
    if discriminator is not None:
        tensors.update({f"D.{k}": v.detach().to("cpu", dtype).contiguous() for k, v in discriminator.state_dict().items()})
        meta["discriminator"] = json.dumps(config_as_dict(discriminator.cfg))
    meta.update({k: str(v) for k, v in (extra_metadata or {}).items()})
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def config_as_dict(cfg) -> dict:
    """A config as JSON-able dict; StyleGAN v1 ones carry 'architecture': 'stylegan1' (absent: StyleGAN2)."""
    backbone, role = registry.of(cfg)
    return getattr(backbone, f"{role}_dict")(cfg)


def _config_from_json(text: str, role: str):
    """The config (role 'generator_config' or 'discriminator_config') a safetensors file stores."""
    d = json.loads(text)
    arch = d.pop("architecture", "stylegan2")
    backbone = registry.get(arch)
    if backbone is None:
        raise UserError(f"weights of architecture {arch!r} are unsupported ({', '.join(registry.names())}); "
                        "update rlse-fast")
    return getattr(backbone, role)(**d)


def _load_safetensors(path: Path):
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise UserError(f"{path}: not a readable safetensors file ({_short(exc)}); re-download or re-convert it") from None
    if "generator" not in meta:
        raise UserError(f"{path}: safetensors file without rlse-fast metadata; convert it with `rlse-fast convert`")
    g_sd = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
    d_sd = {k[2:]: v for k, v in tensors.items() if k.startswith("D.")}
    g_cfg = _config_from_json(meta["generator"], "generator_config")
    d_cfg = (_config_from_json(meta["discriminator"], "discriminator_config")
             if "discriminator" in meta else None)
    extra = {k: v for k, v in meta.items() if k not in ("generator", "discriminator")}
    return g_cfg, g_sd, d_cfg, (d_sd if d_cfg else None), extra


# ----------------------------------------------------------------------------- NVIDIA pickles


def _load_nvidia_pickle(path: Path):
    data = safe_unpickle(path)
    if tf_pickle.is_tf_networks(data):  # NVIDIA's TF StyleGAN (v1): (G, D, Gs)
        return tf_pickle.load(data, path)
    if not isinstance(data, dict) or not any(k in data for k in ("G_ema", "G")):
        raise UserError(f"{path}: pickle without 'G_ema' or 'G'; not a StyleGAN2-ADA / StyleGAN3 network pickle")
    g_obj = data.get("G_ema") or data.get("G")
    d_obj = data.get("D")
    if not isinstance(g_obj, PersistentObject):
        raise UserError(f"{path}: 'G_ema' is not a persistent network object")
    g_kwargs = g_obj.init_kwargs()
    synthesis_kwargs = dict(g_kwargs.get("synthesis_kwargs") or {})
    if synthesis_kwargs.get("architecture", "skip") != "skip":
        raise UserError(f"{path}: generator architecture {synthesis_kwargs['architecture']!r} is unsupported (only 'skip', StyleGAN2)")
    g_sd = g_obj.state_dict()
    if any(k.startswith("synthesis.input.") for k in g_sd):
        raise UserError(f"{path}: this is a StyleGAN3 generator; only StyleGAN2 networks are supported")
    if int(g_kwargs.get("c_dim", 0) or 0) != 0:
        raise UserError(f"{path}: conditional generators (c_dim > 0) are unsupported")
    g_cfg = infer_generator_config(g_sd, conv_clamp=synthesis_kwargs.get("conv_clamp"))
    lr_mult = (g_kwargs.get("mapping_kwargs") or {}).get("lr_multiplier")
    if lr_mult is not None:
        g_cfg = replace(g_cfg, mapping_lr_multiplier=float(lr_mult))
    d_cfg = d_sd = None
    if isinstance(d_obj, PersistentObject):
        d_kwargs = d_obj.init_kwargs()
        if d_kwargs.get("architecture", "resnet") != "resnet":
            raise UserError(f"{path}: discriminator architecture {d_kwargs['architecture']!r} is unsupported (only 'resnet')")
        d_sd = d_obj.state_dict()
        epilogue = dict(d_kwargs.get("epilogue_kwargs") or {})
        d_cfg = infer_discriminator_config(d_sd, conv_clamp=d_kwargs.get("conv_clamp"),
                                           mbstd_group_size=epilogue.get("mbstd_group_size", 4))
    return g_cfg, g_sd, d_cfg, d_sd, {}


def _torch_load(path: Path):
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path}: not a loadable torch checkpoint ({_short(exc)}); the file may be truncated or unsafe") from None


def _load_rosinality(path: Path):
    ckpt = _torch_load(path)
    if pulse.is_pulse_synthesis(ckpt):  # PULSE's StyleGAN v1 synthesis.pt (mapping.pt beside it)
        return pulse.load(ckpt, path, _torch_load)
    if pulse.is_pulse_mapping(ckpt):
        raise UserError(f"{path} is PULSE's mapping network alone; pass its synthesis.pt (with mapping.pt beside it)")
    if not isinstance(ckpt, dict) or "g_ema" not in ckpt:
        raise UserError(f"{path}: torch checkpoint without 'g_ema'; expected a rosinality StyleGAN2 checkpoint")
    try:
        g_sd, d_sd = rosinality_to_official(ckpt["g_ema"], ckpt.get("d"), ckpt.get("latent_avg"))
    except KeyError as exc:
        raise UserError(f"{path}: rosinality checkpoint lacks {exc}; unsupported or damaged file") from None
    g_cfg = infer_generator_config(g_sd)
    d_cfg = infer_discriminator_config(d_sd) if d_sd is not None else None
    extra = {} if "latent_avg" in ckpt else {"w_avg": "absent in file (zeros); truncation unavailable"}
    return g_cfg, g_sd, d_cfg, d_sd, extra


# ----------------------------------------------------------------------------- entry points


WEIGHTS_FORMATS = ("an official StyleGAN2-ADA / StyleGAN3-repo .pkl, a rosinality .pt, an rlse-fast .safetensors, "
                   "NVIDIA's StyleGAN (v1) TF .pkl, or PULSE's synthesis.pt (mapping.pt beside it)")
"""Every format `load_gan` reads, for messages (the README's list)."""


def detect_format(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) < 8:
        raise UserError(f"{path}: file is empty or truncated ({len(head)} bytes)")
    n = int.from_bytes(head[:8], "little")
    if 2 <= n < 100_000_000 and head[8:9] == b"{":
        return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "rosinality"
    if head[0] == 0x80:
        return "nvidia-pickle"
    raise UserError(f"{path}: unknown weights format; expected {WEIGHTS_FORMATS}")


_LOADERS = {"safetensors": _load_safetensors, "nvidia-pickle": _load_nvidia_pickle, "rosinality": _load_rosinality}


def load_gan(path: str | os.PathLike, with_discriminator: bool = True) -> GAN:
    """Load a GAN checkpoint of any supported format; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    fmt = detect_format(path)
    g_cfg, g_sd, d_cfg, d_sd, extra = _LOADERS[fmt](path)
    G = build_generator(g_cfg, g_sd)
    D = build_discriminator(d_cfg, d_sd) if (with_discriminator and d_cfg is not None) else None
    fmt = extra.pop("source_format", fmt)
    return GAN(generator=G, discriminator=D, path=str(path), sha256=sha256_file(path), source_format=fmt, metadata=extra)


def convert(src: str | os.PathLike, dst: str | os.PathLike, dtype=torch.float32) -> GAN:
    """Convert any supported checkpoint to our safetensors format."""
    gan = load_gan(src)
    save_gan(dst, gan.generator, gan.discriminator, dtype=dtype,
             extra_metadata={"converted_from": Path(src).name, "source_sha256": gan.sha256,
                             "source_format": gan.source_format})
    return gan
