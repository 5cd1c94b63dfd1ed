"""`rlse-fast info WEIGHTS`: architecture, resolution, parameter counts and sha256 of a checkpoint."""
from __future__ import annotations

import json

from ..models import registry


def register(sub) -> None:
    p = sub.add_parser("info", help="describe a weights file (any supported format)",
                       description="Print the architecture, resolution, parameter counts and sha256 of a GAN checkpoint.")
    p.add_argument("weights", help="an official StyleGAN2-ADA .pkl or StyleGAN (v1) TF .pkl, a rosinality .pt, PULSE's "
                                   "synthesis.pt (mapping.pt beside it) or an rlse-fast .safetensors, or a name "
                                   "--weights takes (ffhq, ffhq512, ffhq256, celeba64)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def describe(gan) -> dict:
    from ..checkpoints import config_as_dict as config_dict

    G, D = gan.generator, gan.discriminator
    out = {
        "file": gan.path,
        "format": gan.source_format,
        "architecture": registry.of(G)[0].name,
        "sha256": gan.sha256,
        "resolution": G.cfg.img_resolution,
        "generator": {
            **config_dict(G.cfg),
            "num_ws": G.cfg.num_ws,
            "parameters": sum(p.numel() for p in G.parameters()),
            "mapping_parameters": sum(p.numel() for p in G.mapping.parameters()),
            "synthesis_parameters": sum(p.numel() for p in G.synthesis.parameters()),
        },
        "discriminator": None,
    }
    if D is not None:
        out["discriminator"] = {**config_dict(D.cfg), "parameters": sum(p.numel() for p in D.parameters())}
    return out


def run(args) -> int:
    from ..checkpoints import load_gan
    from ..weights import resolve

    info = describe(load_gan(resolve(args.weights)))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    g, d = info["generator"], info["discriminator"]
    print(f"file:          {info['file']}")
    print(f"format:        {info['format']}")
    print(f"sha256:        {info['sha256']}")
    print(f"resolution:    {info['resolution']}x{info['resolution']}")
    v1 = info["architecture"] == "stylegan1"
    arch = "StyleGAN (v1), AdaIN" if v1 else "StyleGAN2 'skip'"
    print(f"generator:     {arch}, z_dim {g['z_dim']}, w_dim {g['w_dim']}, {g['mapping_layers']} mapping layers, "
          f"{g['num_ws']} ws, channels base {g['channel_base']} max {g['channel_max']}")
    print(f"  parameters:  {g['parameters']:,} (mapping {g['mapping_parameters']:,}, synthesis {g['synthesis_parameters']:,})")
    if d is None:
        print("discriminator: none in this file (the rlse mode needs one; pulse mode works)")
    else:
        darch = "StyleGAN (v1) progressive, fromRGB at every resolution" if v1 else "StyleGAN2 'resnet'"
        print(f"discriminator: {darch}, channels base {d['channel_base']} max {d['channel_max']}, "
              f"mbstd group {d['mbstd_group_size']}")
        print(f"  parameters:  {d['parameters']:,}")
    return 0
