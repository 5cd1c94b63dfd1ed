"""NVIDIA's official StyleGAN (v1) TF pickles, read without TensorFlow and without running them.

A file such as `karras2019stylegan-ffhq-1024x1024.pkl` is a tuple (G, D, Gs) of
`dnnlib.tflib.network.Network` objects; each state holds its variables as (TF name, numpy array)
and a `build_module_src` that TensorFlow's unpickling would exec. `safe_unpickler` turns the
networks into inert `TFNetwork` records, and this module renames the variables: conv weights HWIO
-> OIHW, dense and StyleMod weights (in, out) -> (out, in). Gs (the moving average used for
sampling) is the generator; D is the discriminator.
"""
from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import torch

from ..errors import UserError
from ..models.stylegan1.state_dict import infer_discriminator_config, infer_generator_config
from .safe_unpickler import TFNetwork


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32, copy=True))


def _conv(a) -> torch.Tensor:
    return _t(a).permute(3, 2, 0, 1).contiguous()


def _dense(a) -> torch.Tensor:
    return _t(a).t().contiguous()


def generator_state(v: dict) -> dict[str, torch.Tensor]:
    """Gs variables ('mapping/Dense0/weight', 'synthesis/4x4/Const/const', ..., 'dlatent_avg') -> our names."""
    sd = {}
    fcs = sorted(int(m.group(1)) for k in v if (m := re.fullmatch(r"mapping/Dense(\d+)/weight", k)))
    for i in fcs:
        sd[f"mapping.fc{i}.weight"] = _dense(v[f"mapping/Dense{i}/weight"])
        sd[f"mapping.fc{i}.bias"] = _t(v[f"mapping/Dense{i}/bias"])
    w_dim = sd[f"mapping.fc{fcs[-1]}.bias"].shape[0]
    sd["mapping.w_avg"] = _t(v["dlatent_avg"]) if "dlatent_avg" in v else torch.zeros(w_dim)
    res_log2 = max(int(m.group(1)) for k in v if (m := re.fullmatch(r"synthesis/ToRGB_lod(\d+)/weight", k))) + 2
    sd["synthesis.const"] = _t(v["synthesis/4x4/Const/const"])[0]
    layer = 0
    for r in range(2, res_log2 + 1):
        s = 2**r
        names = ["4x4/Const", "4x4/Conv"] if r == 2 else [f"{s}x{s}/Conv0_up", f"{s}x{s}/Conv1"]
        for name in names:
            p, q = f"synthesis/{name}", f"synthesis.layer{layer}"
            if name != "4x4/Const":
                sd[f"{q}.weight"] = _conv(v[f"{p}/weight"])
            sd[f"{q}.bias"] = _t(v[f"{p}/bias"])
            sd[f"{q}.noise_strength"] = _t(v[f"{p}/Noise/weight"])
            sd[f"{q}.style.weight"] = _dense(v[f"{p}/StyleMod/weight"])
            sd[f"{q}.style.bias"] = _t(v[f"{p}/StyleMod/bias"])
            sd[f"{q}.noise_const"] = _t(v[f"synthesis/noise{layer}"]).reshape(s, s)
            layer += 1
    sd["synthesis.torgb.weight"] = _conv(v["synthesis/ToRGB_lod0/weight"])
    sd["synthesis.torgb.bias"] = _t(v["synthesis/ToRGB_lod0/bias"])
    return sd


def discriminator_state(v: dict) -> dict[str, torch.Tensor]:
    """D variables ('FromRGB_lod0/weight', '128x128/Conv0/weight', '4x4/Dense1/bias', ...) -> our names."""
    lods = sorted(int(m.group(1)) for k in v if (m := re.fullmatch(r"FromRGB_lod(\d+)/weight", k)))
    top = 2 ** (len(lods) + 1)
    sd = {}
    for lod in lods:
        r = top >> lod
        sd[f"fromrgb{r}.weight"] = _conv(v[f"FromRGB_lod{lod}/weight"])
        sd[f"fromrgb{r}.bias"] = _t(v[f"FromRGB_lod{lod}/bias"])
    for r in (2**i for i in range(int(math.log2(top)), 2, -1)):
        for ours, theirs in (("conv0", "Conv0"), ("conv1", "Conv1_down")):
            sd[f"b{r}.{ours}.weight"] = _conv(v[f"{r}x{r}/{theirs}/weight"])
            sd[f"b{r}.{ours}.bias"] = _t(v[f"{r}x{r}/{theirs}/bias"])
    sd["b4.conv.weight"] = _conv(v["4x4/Conv/weight"])
    sd["b4.conv.bias"] = _t(v["4x4/Conv/bias"])
    sd["b4.fc.weight"] = _dense(v["4x4/Dense0/weight"])
    sd["b4.fc.bias"] = _t(v["4x4/Dense0/bias"])
    sd["b4.out.weight"] = _dense(v["4x4/Dense1/weight"])
    sd["b4.out.bias"] = _t(v["4x4/Dense1/bias"])
    return sd


def is_tf_networks(data) -> bool:
    return isinstance(data, tuple) and len(data) > 0 and all(isinstance(n, TFNetwork) for n in data)


def load(data, path) -> tuple:
    """(g_cfg, g_sd, d_cfg, d_sd, extra) from the unpickled (G, D, Gs) tuple."""
    if len(data) != 3:
        raise UserError(f"{path}: a TF network pickle with {len(data)} networks; expected (G, D, Gs)")
    _, d_net, gs_net = data
    g_kwargs = gs_net.state.get("static_kwargs") or {}
    if gs_net.state.get("build_func_name") not in (None, "G_style"):
        raise UserError(f"{path}: TF generator {gs_net.state.get('build_func_name')!r} is unsupported (only StyleGAN's G_style)")
    if int(g_kwargs.get("label_size", 0) or 0):
        raise UserError(f"{path}: conditional generators are unsupported")
    try:
        g_sd = generator_state(gs_net.variables())
        d_sd = discriminator_state(d_net.variables())
    except (KeyError, ValueError) as exc:
        raise UserError(f"{path}: TF StyleGAN pickle lacks variable {exc}; unsupported or damaged file") from None
    fused = 128 if g_kwargs.get("fused_scale", "auto") == "auto" else (4 if g_kwargs["fused_scale"] else 1 << 30)
    g_cfg = infer_generator_config(g_sd, fused_min_resolution=fused)
    lrmul = g_kwargs.get("mapping_lrmul")
    if lrmul is not None:
        g_cfg = replace(g_cfg, mapping_lr_multiplier=float(lrmul))
    d_kwargs = d_net.state.get("static_kwargs") or {}
    d_fused = 128 if d_kwargs.get("fused_scale", "auto") == "auto" else (4 if d_kwargs["fused_scale"] else 1 << 30)
    d_cfg = infer_discriminator_config(d_sd, mbstd_group_size=int(d_kwargs.get("mbstd_group_size", 4)),
                                       fused_min_resolution=d_fused)
    return g_cfg, g_sd, d_cfg, d_sd, {"source_format": "tf-pickle"}
