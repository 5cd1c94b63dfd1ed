"""Every style affine of StyleGAN2 config-f (1024 px: 26 affines, S = 9088 style rows, w_dim 512,
18 W+ rows) with per-face weights, forward and backward, three ways, on the CPU:

    python benchmarks/bench_style_affines.py [--faces 1 4] [--rounds 7] [--json benchmarks/results/cpu-style-affines-<date>.json]

- 'layers': each layer's own affine (`FullyConnectedLayer` with per-face weights: einsum, bias add,
  ToRGB's gain), what the fast loop runs without `packed_styles`;
- 'bmm-gather': `models.style_affines.PackedAffines.styles`: one bmm of the (B, S, 512) weight
  against all 18 W+ rows, the bias, one gather, one addcmul;
- 'rows-first': the W+ row of every style row gathered first ((B, S, 512), a copy of ws per row),
  multiplied by the weight and summed over w_dim, the bias, the same gain and offset.
Each: median ms of a forward and a backward (gradients of the weights, biases and ws) over interleaved
rounds, one thread, and its aten ops (the op census' dispatch mode, views and allocations aside).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from count_iteration_ops import OpCensus

from rlse_fast.models.style_affines import PackedAffines
from rlse_fast.models.stylegan2 import Generator, GeneratorConfig


def affine_params(synthesis, faces: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Per-face copies of the style affines' weights and biases only (B, ...), each face a little apart."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for a in synthesis.style_affines():
        for p in ("weight", "bias"):
            t = synthesis.get_parameter(f"{a.affine}.{p}").detach()
            t = t.unsqueeze(0) + 0.05 * torch.randn(faces, *t.shape, generator=gen)
            out[f"{a.affine}.{p}"] = t.requires_grad_(True)
    return out


def layers(synthesis, params, ws):
    """Each layer's own affine, as SynthesisLayer / ToRGBLayer.forward run it."""
    out = {}
    for a in synthesis.style_affines():
        layer = synthesis.get_submodule(a.key.rsplit(".", 1)[0])
        s = layer.affine(ws[:, a.w_index], weight=params[a.affine + ".weight"], bias=params[a.affine + ".bias"])
        out[a.key] = s * a.gain if a.gain != 1 else s
    return out


class RowsFirst:
    """The W+ row of each style row gathered first, then a multiply and a sum over w_dim."""

    def __init__(self, packed: PackedAffines, synthesis):
        rows = [a.w_index for a in synthesis.style_affines() for _ in range(a.width)]
        self.packed, self.rows = packed, torch.tensor(rows)
        self.gain = torch.cat([torch.full((a.width,), a.gain) for a in synthesis.style_affines()])
        self.offset = torch.cat([torch.full((a.width,), a.offset) for a in synthesis.style_affines()])
        self.widths = [a.width for a in synthesis.style_affines()]
        self.keys = [a.key for a in synthesis.style_affines()]

    def __call__(self, ws):
        p = self.packed
        x = (ws * p.weight_gain).index_select(1, self.rows)  # (B, S, w_dim)
        y = torch.addcmul(self.offset, (p.weight * x).sum(-1) + p.bias, self.gain)
        return dict(zip(self.keys, y.split(self.widths, 1)))


def run_once(fn, ws, leaves) -> None:
    ws = ws.detach().requires_grad_(True)
    out = fn(ws)
    torch.autograd.grad(torch.cat([s.reshape(-1) for s in out.values()]).sum(), leaves + [ws])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    synthesis = Generator(GeneratorConfig()).synthesis  # config-f, 1024 px
    results = {"command": "python benchmarks/bench_style_affines.py " + " ".join(argv or sys.argv[1:]),
               "torch": torch.__version__, "threads": 1, "cases": {}}
    for faces in args.faces:
        params = affine_params(synthesis, faces)
        packed = PackedAffines(synthesis, params)
        ws = torch.randn(faces, synthesis.num_ws, 512, generator=torch.Generator().manual_seed(1))
        impls = {"layers": (lambda w, params=params: layers(synthesis, params, w), list(params.values())),
                 "bmm-gather": (packed.styles, [packed.weight, packed.bias]),
                 "rows-first": (RowsFirst(packed, synthesis), [packed.weight, packed.bias])}
        ops = {}
        for name, (fn, leaves) in impls.items():
            census = OpCensus()
            with census.phases(), census:
                run_once(fn, ws, leaves)
            ops[name] = census.summary()["kernels"]
        times = {name: [] for name in impls}
        for r in range(args.rounds + 1):  # the first round warms up
            for name, (fn, leaves) in impls.items():
                t = time.perf_counter()
                run_once(fn, ws, leaves)
                if r:
                    times[name].append(1e3 * (time.perf_counter() - t))
        med = {name: statistics.median(v) for name, v in times.items()}
        case = {"ms": med, "all_ms": times, "ops": ops,
                "speedup_vs_layers": {name: med["layers"] / m for name, m in med.items()}}
        results["cases"][f"faces {faces}"] = case
        print(f"{faces} face(s), S = {packed.weight.shape[1]}: " + ", ".join(
            f"{name} {med[name]:.2f} ms ({ops[name]} ops, {med['layers'] / med[name]:.2f}x)" for name in impls),
            flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
