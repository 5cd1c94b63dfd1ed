"""Every style affine of a synthesis network with per-face weights, as one product.

Each synthesis layer turns its W+ row into styles with its own dense layer ("affine"); with per-face
fine-tuning every face has its own (out, w_dim) weight per layer, so an iteration runs one small
batched product, a bias add and a gain per layer (26 layers at 1024 px), and einsum's backward hands
each weight's gradient back transposed (a copy per layer before the fused Adam). `PackedAffines`
holds all those weights in one (B, S, w_dim) leaf and the biases in one (B, S) leaf (S: every
layer's style width added up; each layer's weight and bias are views into them) and computes every
layer's styles at once:

    Y      = bmm(weight, (ws * weight_gain)^T)         (B, S, num_ws): each row against every W+ row
    Y      = Y + bias                                  (the bias of row s added to its num_ws products)
    styles = Y[b, s, w_index(s)] * gain(s) + offset(s) (one gather, one addcmul)

The gather writes the styles layer by layer ([layer][face][channel]), so each layer's (B, C) styles
are a contiguous view (the modulation kernels take them without a copy), and the weight's gradient
is bmm(dY, ws): (B, S, w_dim), the leaf's own layout. Against the product with only the row each
style needs, the num_ws-wide one does num_ws times the multiply-adds of a matrix-vector product whose
cost is reading the weight (memory-bound at any width this small); gathering the W+ rows first
instead (a (B, S, w_dim) copy of ws, a multiply and a sum) writes and reads that copy again in both
directions (`benchmarks/bench_style_affines.py`, docs/op-census.md).

The sums run in another order than the layers' einsum: equal to float rounding, not bit for bit.
A network offers its layout as `synthesis.style_affines()` (a list of `StyleAffine`), and its
layers take a precomputed `params[key]` instead of running their affine.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StyleAffine:
    """Rows [start, stop) of the dense layer `affine` (parameters '<affine>.weight' (out, w_dim) and
    '<affine>.bias' (out,)) applied to W+ row `w_index`, then (+ bias) * gain + offset: the (B,
    stop - start) values a layer reads as params[key] in place of its own affine's."""

    key: str
    affine: str
    w_index: int
    start: int
    stop: int
    weight_gain: float
    """The equalised-lr gain on the weight (the same for every affine of a network)."""
    gain: float = 1.0
    offset: float = 0.0

    @property
    def width(self) -> int:
        return self.stop - self.start


class PackedAffines:
    """The per-face style affines of a synthesis network for B faces: `weight` (B, S, w_dim) and
    `bias` (B, S), two leaves requiring grad, made from the per-face copies `params` (B-stacked
    synthesis parameters, as `engine.state.per_face_params` makes them); `views()` gives each
    affine's weight and bias as views into them, `styles(ws)` every layer's styles.

    ValueError if the network lists no style affines, or lists them so that an affine's rows are
    not one run (its views would not be views) or with unequal weight gains."""

    def __init__(self, synthesis, params: dict[str, torch.Tensor]):
        listing = getattr(synthesis, "style_affines", None)
        if listing is None:
            raise ValueError(f"{type(synthesis).__name__} lists no style affines (style_affines()); "
                             "run it without packed styles")
        self.affines = affines = list(listing())
        if len({a.weight_gain for a in affines}) != 1:
            raise ValueError("the style affines' weight gains differ; they must be one to fold into ws")
        self.weight_gain = affines[0].weight_gain
        self.num_ws = synthesis.num_ws
        self.runs: dict[str, tuple[int, int]] = {}  # affine -> its rows [first, stop) in S
        rows = 0
        for a in affines:
            first, stop = self.runs.get(a.affine, (rows, rows))
            if stop != rows or a.start != stop - first:
                raise ValueError(f"{a.key}: the rows of {a.affine} must follow each other in order")
            self.runs[a.affine] = (first, rows + a.width)
            rows += a.width
        for name, (first, stop) in self.runs.items():
            if params[name + ".weight"].shape[1] != stop - first:
                raise ValueError(f"{name}: {stop - first} of its {params[name + '.weight'].shape[1]} rows listed")
        with torch.no_grad():
            self.weight = torch.cat([params[a.affine + ".weight"][:, a.start:a.stop] for a in affines], 1)
            self.bias = torch.cat([params[a.affine + ".bias"][:, a.start:a.stop] for a in affines], 1)
        self.weight.requires_grad_(True)
        self.bias.requires_grad_(True)
        self._constants()

    def _constants(self) -> None:
        """The gather's flat indices into Y (B, S, num_ws) and the per-value gain and offset, all in
        the styles' [affine][face][row] order; made once (a CUDA graph replays on them)."""
        batch, size = self.bias.shape
        device = self.bias.device
        index, gain, offset = [], [], []
        row = 0
        faces = torch.arange(batch, device=device).unsqueeze(1) * (size * self.num_ws)
        for a in self.affines:
            rows = torch.arange(row, row + a.width, device=device) * self.num_ws + a.w_index
            index.append((faces + rows).reshape(-1))
            gain.append(torch.full((batch * a.width,), a.gain, device=device))
            offset.append(torch.full((batch * a.width,), a.offset, device=device))
            row += a.width
        self.index = torch.cat(index)
        self.gain = torch.cat(gain)
        self.offset = torch.cat(offset)
        self.sizes = [batch * a.width for a in self.affines]

    def views(self) -> dict[str, torch.Tensor]:
        """Each affine's per-face '<affine>.weight' (B, out, w_dim) and '<affine>.bias' (B, out), as
        views into the two leaves (the names and shapes of the per-face copies)."""
        out = {}
        for name, (first, stop) in self.runs.items():
            out[name + ".weight"] = self.weight[:, first:stop]
            out[name + ".bias"] = self.bias[:, first:stop]
        return out

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """ws (B, num_ws, w_dim) -> {key: (B, width) contiguous} for every `StyleAffine`. Under
        autocast the product runs in its dtype and the bias, gain and offset in fp32, as the
        layers' own affines do."""
        y = torch.bmm(self.weight, (ws * self.weight_gain).transpose(1, 2))
        y = y + self.bias.unsqueeze(2)
        flat = torch.addcmul(self.offset, y.reshape(-1).index_select(0, self.index), self.gain)
        batch = ws.shape[0]
        return {a.key: part.view(batch, a.width) for a, part in zip(self.affines, flat.split(self.sizes))}


__all__ = ["PackedAffines", "StyleAffine"]
