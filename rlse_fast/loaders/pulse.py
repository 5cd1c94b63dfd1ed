"""PULSE's StyleGAN (v1) weights: `synthesis.pt` (+ `mapping.pt` beside it), generator only.

PULSE (adamian98/pulse, `stylegan.py`, a port of lernapparat's) saves the state dicts of its
`G_synthesis` and `G_mapping` modules. Names there: 'blocks.4x4.const', 'blocks.4x4.bias',
'blocks.4x4.epi{1,2}.noise.weight', 'blocks.4x4.epi{1,2}.style_mod.lin.{weight,bias}',
'blocks.4x4.conv.{weight,bias}', 'blocks.RxR.conv0_up.{weight,bias}' (its blur kernel is the fixed
'conv0_up.intermediate.kernel'), 'blocks.RxR.conv1.*', 'torgb.*'; the mapping's 'dense{i}.*'.
Weights are the raw TF values (scaled at run time), already (out, in[, k, k]). The files hold no
noise maps and no W average: ours are zeros (the engine passes its own noise maps).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import UserError
from ..models.stylegan1.state_dict import infer_generator_config


def is_pulse_synthesis(sd) -> bool:
    return isinstance(sd, dict) and "blocks.4x4.const" in sd


def is_pulse_mapping(sd) -> bool:
    return isinstance(sd, dict) and "dense0.weight" in sd and not any(k.startswith("blocks.") for k in sd)


def generator_state(synthesis: dict, mapping: dict) -> dict[str, torch.Tensor]:
    """PULSE's two state dicts -> our StyleGAN v1 generator names."""
    sd = {}
    fcs = sorted(int(m.group(1)) for k in mapping if (m := re.fullmatch(r"dense(\d+)\.weight", k)))
    for i in fcs:
        sd[f"mapping.fc{i}.weight"] = mapping[f"dense{i}.weight"]
        sd[f"mapping.fc{i}.bias"] = mapping[f"dense{i}.bias"]
    sd["mapping.w_avg"] = torch.zeros(mapping[f"dense{fcs[-1]}.bias"].shape[0])
    sizes = sorted(int(m.group(1)) for k in synthesis if (m := re.fullmatch(r"blocks\.(\d+)x\1\.epi1\.noise\.weight", k)))
    sd["synthesis.const"] = synthesis["blocks.4x4.const"][0]
    layer = 0
    for s in sizes:
        b = f"blocks.{s}x{s}"
        convs = [None, "conv"] if s == 4 else ["conv0_up", "conv1"]
        for conv, epi in zip(convs, ("epi1", "epi2")):
            q = f"synthesis.layer{layer}"
            if conv is None:
                sd[f"{q}.bias"] = synthesis[f"{b}.bias"]  # the const's bias
            else:
                sd[f"{q}.weight"] = synthesis[f"{b}.{conv}.weight"]
                sd[f"{q}.bias"] = synthesis[f"{b}.{conv}.bias"]
            sd[f"{q}.noise_strength"] = synthesis[f"{b}.{epi}.noise.weight"]
            sd[f"{q}.style.weight"] = synthesis[f"{b}.{epi}.style_mod.lin.weight"]
            sd[f"{q}.style.bias"] = synthesis[f"{b}.{epi}.style_mod.lin.bias"]
            sd[f"{q}.noise_const"] = torch.zeros(s, s)
            layer += 1
    sd["synthesis.torgb.weight"] = synthesis["torgb.weight"]
    sd["synthesis.torgb.bias"] = synthesis["torgb.bias"]
    return sd


def load(synthesis: dict, path: Path, read) -> tuple:
    """(g_cfg, g_sd, None, None, extra) for PULSE's synthesis.pt at `path`; its mapping.pt is read
    from the same folder with `read(path)` (the caller's safe torch.load)."""
    mapping_path = path.with_name("mapping.pt")
    if not mapping_path.is_file():
        raise UserError(f"{path} is PULSE's synthesis network; put PULSE's mapping.pt beside it ({mapping_path}): "
                        "the Gaussian fit of W needs the mapping network")
    mapping = read(mapping_path)
    if not is_pulse_mapping(mapping):
        raise UserError(f"{mapping_path}: not PULSE's mapping network (expected keys dense0.weight ...)")
    try:
        g_sd = generator_state(synthesis, mapping)
    except KeyError as exc:
        raise UserError(f"{path}: PULSE checkpoint lacks {exc}; unsupported or damaged file") from None
    extra = {"w_avg": "absent in PULSE's files (zeros); truncation unavailable",
             "noise": "absent in PULSE's files (zeros for noise_mode 'const')",
             "mapping_file": mapping_path.name, "source_format": "pulse"}
    return infer_generator_config(g_sd), g_sd, None, None, extra
