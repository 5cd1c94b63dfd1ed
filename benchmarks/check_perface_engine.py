"""Check that the fast engine follows the same trajectory with the per-face convolution as with the
grouped conv: a tiny StyleGAN2 (32 px, random weights, per-face fine-tuning), a few RLSE steps,
RLSE_PERFACE_CONV unset then =triton, in one process.

    python benchmarks/check_perface_engine.py                         # CPU: kernels interpreted (minutes)
    python benchmarks/check_perface_engine.py --device cuda --precision bf16
    python benchmarks/check_perface_engine.py --fused     # both runs channels-last with the fused tails
                                                          # (FastOptions.fused_fir): the 3x3 layers' epilogue
                                                          # fused into the per-face conv

Prints both runs' losses per step, the mean image difference and how many per-face convs ran;
exits 1 when the trajectories differ beyond rounding (step 0's loss to 1e-4 relative, every later
step's to 5e-3, mean image difference at most 2e-3: tests/fast_runs.py's bounds for runs whose
kernels round differently). Not a timing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--faces", type=int, default=2)
    p.add_argument("--fused", action="store_true", help="FastOptions(channels_last=True, fused_fir=True) in both runs")
    args = p.parse_args(argv)
    if args.device == "cpu":  # the kernels on CPU tensors: the interpreter, set before triton loads
        os.environ.setdefault("TRITON_INTERPRET", "1")
        torch.set_num_threads(1)

    from rlse_fast import gaussian_fit
    from rlse_fast.config import RLSEConfig
    from rlse_fast.downsample import bicubic_downsample_ref
    from rlse_fast.engine.fast import FastLoop
    from rlse_fast.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
    from rlse_fast.ops import triton_perface_conv, triton_perface_conv_act
    from rlse_fast.ops.perface_conv import ENV

    torch.manual_seed(5)
    G = Generator(GeneratorConfig(z_dim=64, w_dim=64, img_resolution=32, mapping_layers=2, channel_base=1024,
                                  channel_max=64)).eval().requires_grad_(False).to(args.device)
    D = Discriminator(DiscriminatorConfig(img_resolution=32, channel_base=1024, channel_max=64)).eval()
    D = D.requires_grad_(False).to(args.device)
    fit = gaussian_fit.compute(G, 8192)
    with torch.no_grad():
        z = torch.randn(args.faces, G.z_dim, generator=torch.Generator().manual_seed(11)).to(args.device)
        lr = bicubic_downsample_ref((G(z, noise_mode="const").clamp(-1, 1) + 1) / 2, 4)
    cfg = RLSEConfig(steps=args.steps)
    seeds = list(range(1, args.faces + 1))

    calls = []

    def counted(cls):
        real = cls.apply
        return lambda *a: calls.append(cls.__name__) or real(*a)

    for cls in (triton_perface_conv._PerFaceConv, triton_perface_conv_act._PerFaceConvAct):
        cls.apply = counted(cls)

    def super_resolve_fast(G, D, lr, cfg, fit, seeds, precision):
        loop = FastLoop(G, D, lr, cfg, fit, seeds=seeds, precision=precision, channels_last=args.fused,
                        fused_fir=args.fused)
        try:
            for _ in range(cfg.steps):
                loop.step()
            return loop.result()
        finally:
            loop.close()

    runs = {}
    for name, value in (("grouped", None), ("perface", "triton")):
        if value is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = value
        t = time.perf_counter()
        runs[name] = super_resolve_fast(G, D, lr, cfg, fit, seeds=seeds, precision=args.precision)
        print(f"{name}: {time.perf_counter() - t:.1f} s, per-face convs {calls.count('_PerFaceConv')}, with the "
              f"fused epilogue {calls.count('_PerFaceConvAct')}", flush=True)
    a, b = runs["grouped"], runs["perface"]
    ok = bool(calls) and (not args.fused or "_PerFaceConvAct" in calls)
    for ha, hb in zip(a.history, b.history):
        rel = 1e-4 if ha["step"] == 0 else 5e-3
        same = all(abs(x - y) <= rel * abs(x) + 1e-6 for x, y in zip(ha["total"], hb["total"]))
        ok &= same
        print(f"step {ha['step']}: grouped {ha['total']} perface {hb['total']}{'' if same else '  DIFFERENT'}")
    diff = (a.images - b.images).abs().mean().item()
    ok &= diff <= 2e-3
    print(f"mean image difference {diff:.2e}; {'same trajectory' if ok else 'TRAJECTORIES DIFFER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
