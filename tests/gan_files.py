"""Make GAN checkpoint files in every supported format, for tests.

The NVIDIA pickle is built from facts about the official format (class paths under
`training.networks`, `torch_utils.persistence._reconstruct_persistent_obj` with its metadata
dict, `dnnlib.util.EasyDict` init kwargs, tensors pickled by torch's own reducers), never by
running NVIDIA's code.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch

from rlse_fast.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"

TINY_G = GeneratorConfig(z_dim=64, w_dim=64, img_resolution=32, mapping_layers=2, channel_base=1024, channel_max=64)
TINY_D = DiscriminatorConfig(img_resolution=32, channel_base=1024, channel_max=64)


def tiny_gan(seed: int = 0, g_cfg: GeneratorConfig = TINY_G, d_cfg: DiscriminatorConfig = TINY_D):
    """A random generator/discriminator pair with non-trivial biases and noise strengths."""
    torch.manual_seed(seed)
    G, D = Generator(g_cfg).eval(), Discriminator(d_cfg).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, t in list(G.named_parameters()) + list(D.named_parameters()):
            if name.endswith(("bias", "noise_strength")):
                t.add_(0.1 * torch.randn(t.shape, generator=gen))
    return G.requires_grad_(False), D.requires_grad_(False)


# ----------------------------------------------------------------------------- NVIDIA pickles


class _EasyDict(dict):
    pass


class _Persistent:
    """Pickles as the official persistence wrapper does: (_reconstruct_persistent_obj, (meta,))."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


def _reconstruct_persistent_obj(meta):  # pragma: no cover - only its name is pickled
    raise AssertionError("never called")


@contextlib.contextmanager
def _official_names():
    """Make pickle record our stand-ins under the official module paths."""
    fakes = {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": types.ModuleType("torch_utils.persistence"),
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": types.ModuleType("dnnlib.util"),
    }
    fakes["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    fakes["dnnlib.util"].EasyDict = _EasyDict
    saved = {
        (_reconstruct_persistent_obj, "__module__"): _reconstruct_persistent_obj.__module__,
        (_EasyDict, "__module__"): _EasyDict.__module__,
        (_EasyDict, "__qualname__"): _EasyDict.__qualname__,
    }
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _EasyDict.__module__ = "dnnlib.util"
    _EasyDict.__qualname__ = "EasyDict"
    old = {k: sys.modules.get(k) for k in fakes}
    sys.modules.update(fakes)
    try:
        yield
    finally:
        for (obj, attr), value in saved.items():
            setattr(obj, attr, value)
        for k, v in old.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _persistent(module: torch.nn.Module, init_kwargs: dict | None = None) -> _Persistent:
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(module._parameters),
        "_buffers": collections.OrderedDict(module._buffers),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": collections.OrderedDict(),
        "_forward_hooks": collections.OrderedDict(),
        "_forward_pre_hooks": collections.OrderedDict(),
        "_state_dict_hooks": collections.OrderedDict(),
        "_load_state_dict_pre_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict((k, _persistent(m)) for k, m in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": _EasyDict(init_kwargs or {}),
        "act_gain": np.float64(np.sqrt(2)),  # official layers keep numpy scalars
    }
    meta = dict(type="class", version=6, module_src="# training/networks.py source would be here\n",
                class_name=f"training.networks.{type(module).__name__}", state=state)
    return _Persistent(meta)


def write_nvidia_pickle(path, G: Generator, D: Discriminator | None) -> Path:
    g_kwargs = dict(z_dim=G.cfg.z_dim, c_dim=0, w_dim=G.cfg.w_dim, img_resolution=G.cfg.img_resolution,
                    img_channels=3, mapping_kwargs=_EasyDict(num_layers=G.cfg.mapping_layers),
                    synthesis_kwargs=_EasyDict(channel_base=G.cfg.channel_base, channel_max=G.cfg.channel_max,
                                               num_fp16_res=0, conv_clamp=None))
    data = {"G": _persistent(G, g_kwargs), "G_ema": _persistent(G, g_kwargs), "augment_pipe": None,
            "training_set_kwargs": _EasyDict(path="ffhq.zip", resolution=G.cfg.img_resolution)}
    if D is not None:
        d_kwargs = dict(c_dim=0, img_resolution=D.cfg.img_resolution, img_channels=3, architecture="resnet",
                        channel_base=D.cfg.channel_base, channel_max=D.cfg.channel_max, num_fp16_res=0,
                        conv_clamp=None, block_kwargs={}, mapping_kwargs={},
                        epilogue_kwargs=_EasyDict(mbstd_group_size=D.cfg.mbstd_group_size))
        data["D"] = _persistent(D, d_kwargs)
    with _official_names():
        blob = pickle.dumps(data, protocol=3)
    Path(path).write_bytes(blob)
    return Path(path)


class _RunsCode:
    """Unpickling this runs Python code (as a hostile pickle would): it creates `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def write_hostile_pickle(path, marker, G: Generator) -> Path:
    """An official-looking pickle whose G_ema state hides a call to builtins.exec."""
    p = _persistent(G, {})
    p.meta["state"]["payload"] = _RunsCode(marker)
    with _official_names():
        blob = pickle.dumps({"G_ema": p}, protocol=3)
    Path(path).write_bytes(blob)
    return Path(path)


# ----------------------------------------------------------------------------- rosinality


def rosinality_state_dicts():
    """g_ema, d and latent_avg state dicts from the shared rosinality reference file."""
    from safetensors.torch import load_file

    r = load_file(str(REFERENCE / "sg2_rosinality_r32.safetensors"))
    g = {k[len("g_ema."):]: v for k, v in r.items() if k.startswith("g_ema.")}
    d = {k[len("d."):]: v for k, v in r.items() if k.startswith("d.")}
    return g, d, r["latent_avg"], r


def write_rosinality_pt(path, g, d, latent_avg, with_args=True) -> Path:
    ckpt = {"g_ema": g, "latent_avg": latent_avg}
    if d is not None:
        ckpt["d"] = d
    if with_args:  # rosinality's train.py stores its argparse namespace
        ckpt["args"] = argparse.Namespace(size=32, channel_multiplier=1, lr=0.002)
    torch.save(ckpt, str(path))
    return Path(path)


def write_pulse_files(gan, folder: Path, with_mapping=True):
    """PULSE's synthesis.pt / mapping.pt layout (stylegan.py's G_synthesis / G_mapping names)."""
    sd = {k: v.clone() for k, v in gan.generator.state_dict().items()}
    syn, mapping = {}, {}
    n = gan.generator.num_ws
    for i in range(gan.generator.cfg.mapping_layers):
        mapping[f"dense{i}.weight"] = sd[f"mapping.fc{i}.weight"]
        mapping[f"dense{i}.bias"] = sd[f"mapping.fc{i}.bias"]
    syn["blocks.4x4.const"] = sd["synthesis.const"][None]
    for i in range(n):
        s = 2 ** (i // 2 + 2)
        b = f"blocks.{s}x{s}"
        epi = f"{b}.epi{i % 2 + 1}"
        conv = "conv" if s == 4 else ("conv0_up" if i % 2 == 0 else "conv1")
        if i == 0:
            syn[f"{b}.bias"] = sd["synthesis.layer0.bias"]
        else:
            syn[f"{b}.{conv}.weight"] = sd[f"synthesis.layer{i}.weight"]
            syn[f"{b}.{conv}.bias"] = sd[f"synthesis.layer{i}.bias"]
            if conv == "conv0_up":
                syn[f"{b}.conv0_up.intermediate.kernel"] = torch.tensor([[1., 2, 1], [2, 4, 2], [1, 2, 1]])[None, None] / 16
        syn[f"{epi}.noise.weight"] = sd[f"synthesis.layer{i}.noise_strength"]
        syn[f"{epi}.style_mod.lin.weight"] = sd[f"synthesis.layer{i}.style.weight"]
        syn[f"{epi}.style_mod.lin.bias"] = sd[f"synthesis.layer{i}.style.bias"]
    syn["torgb.weight"] = sd["synthesis.torgb.weight"]
    syn["torgb.bias"] = sd["synthesis.torgb.bias"]
    torch.save(syn, folder / "synthesis.pt")
    if with_mapping:
        torch.save(mapping, folder / "mapping.pt")
    return folder / "synthesis.pt"
