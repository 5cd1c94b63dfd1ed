"""upfirdn2d: upsample (zero insertion), pad/crop, FIR filter, downsample (decimation).

Semantics of the official StyleGAN2-ADA op. `_upfirdn2d_ref` is the definition of correctness.
Helpers `setup_filter`, `upsample2d`, `downsample2d`, `filter2d` compute the paddings StyleGAN2 uses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

from . import dispatch


def _parse_scaling(s):
    if isinstance(s, int):
        s = [s, s]
    sx, sy = s
    if sx < 1 or sy < 1:
        raise ValueError(f"up/down factors must be >= 1, got {s}")
    return int(sx), int(sy)


def _parse_padding(p):
    if isinstance(p, int):
        p = [p, p]
    if len(p) == 2:
        px, py = p
        p = [px, px, py, py]
    px0, px1, py0, py1 = p
    return int(px0), int(px1), int(py0), int(py1)


def filter_size(f):
    """(width, height) of a 1-D (separable) or 2-D filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
    return int(f.shape[-1]), int(f.shape[0])


def setup_filter(f, normalize=True, flip_filter=False, gain=1, separable=False):
    """Turn taps like [1, 3, 3, 1] into a filter tensor: 2-D (outer product) unless `separable`."""
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    return f * (gain ** (f.ndim / 2))


def _upfirdn2d_ref(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Plain-PyTorch reference. x: (N, C, H, W); f: 1-D (separable) or 2-D filter, or None."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if x.ndim != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    batch, channels, in_h, in_w = x.shape
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)

    # Zero insertion.
    x = x.reshape(batch, channels, in_h, 1, in_w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(batch, channels, in_h * upy, in_w * upx)
    # Pad, then crop for negative paddings.
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    # FIR filter (true convolution unless flip_filter: conv2d correlates, so flip to convolve).
    f = f * (gain ** (f.ndim / 2))
    f = f.to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([channels, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=channels)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=channels)
        x = F.conv2d(x, f.unsqueeze(3), groups=channels)
    # Decimation.
    return x[:, :, ::downy, ::downx]


# filter tensor -> (its version counter when checked, its 1-D factor or None)
_FACTORS = WeakIdKeyDictionary()


def separable_form(f):
    """The 1-D factor g of a square 2-D filter that is exactly outer(g, g), else f itself.

    StyleGAN2's filters are such outer products ([1, 3, 3, 1] with itself) but are kept 2-D, as in
    the official models and their files. The native kernels run a 1-D filter as two 1-D passes,
    4 + 4 taps instead of 16 per output: 1.3-1.4x faster on an H100 at the models' 256-512 px
    shapes (benchmarks/results/NVIDIA-H100-80GB-HBM3-2026-11-28-bench_ops_gpu.json, 'sep' against
    '2d'). The rule is the C++ kernel's own (csrc/cpu/upfirdn2d.cpp, symmetric_rank1, which reads
    a CPU filter itself): g from the largest diagonal tap's column, and every product g_i g_j
    equal to the 2-D tap, so only the order of the additions changes. A CUDA filter is read once
    per tensor (cached until it changes in place); while a CUDA graph is being captured an
    unchecked filter stays 2-D, as reading it would synchronise.
    """
    if f is None or f.ndim != 2 or f.shape[0] != f.shape[1] or f.requires_grad:
        return f
    hit = _FACTORS.get(f)
    if hit is not None and hit[0] == f._version:
        return f if hit[1] is None else hit[1]
    if f.is_cuda and torch.cuda.is_current_stream_capturing():
        return f
    fh = f.detach().cpu()
    c = int(fh.diagonal().argmax())
    g = None
    if fh[c, c] > 0:
        gh = fh[:, c] / fh[c, c].sqrt()
        if torch.equal(torch.outer(gh, gh), fh):
            g = gh.to(f.device)
    _FACTORS[f] = (f._version, g)
    return f if g is None else g


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Pad, upsample, filter and downsample a batch of 2-D images.

    x: (N, C, H, W); f: filter (1-D separable or 2-D) or None; up/down: int or [x, y];
    padding: int, [x, y] or [x0, x1, y0, y1] (negative crops). Output is
    ((H * up_y + py0 + py1 - fh) // down_y + 1) high, likewise wide.
    """
    if impl == "auto" and f is not None and f.requires_grad and torch.is_grad_enabled():
        impl = "ref"  # the native kernels do not differentiate w.r.t. the filter
    fn = dispatch.pick("upfirdn2d", impl, x)
    if fn is None:
        return _upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain)
    if x.is_cuda:  # the C++ kernel finds a CPU filter's factor itself
        f = separable_form(f)
    return fn(x, f, up, down, padding, flip_filter, gain)


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Filter with `f`, keeping the size (with padding=0)."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Upsample by `up` with the FIR filter `f` (gain up**2 keeps the mean)."""
    upx, upy = _parse_scaling(up)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Low-pass with `f`, then keep every `down`-th pixel."""
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
