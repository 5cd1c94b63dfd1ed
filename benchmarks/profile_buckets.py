"""One profiled iteration's kernels bucketed by family and by phase (forward / backward / optimiser).

`phase_marks()` wraps `torch.autograd.grad` (the one backward call of `FastLoop._iteration_body`)
while the profiled iteration runs: the device is synchronised and a zero-length `rlse.mark.*` range
recorded before and after it, so every kernel that starts before the first mark is the forward's,
between the marks the backward's, after them the optimiser's (Adam, the best-image bookkeeping).
`table(prof)` then sums each family's device time per phase. Without CUDA the CPU ops' self times stand
in for the kernels (a dry run of the same code).
"""
from __future__ import annotations

import contextlib
import re

import torch

# (family, pattern on the lower-cased kernel or op name); the first match wins.
FAMILIES = [
    ("transpose", r"nchwtonhwc|nhwctonchw|transpose|permute"),
    ("adain", r"adain"),
    ("fir", r"upfirdn"),
    ("bias_act", r"bias_act"),
    ("modulate", r"modulate"),
    ("downsample_loss", r"downsample"),
    ("adam", r"adam"),
    # cuDNN's convolutions (implicit GEMM: fprop / dgrad / wgrad); cuBLAS's GEMMs are also sm90_xmma_*
    ("conv", r"conv|cudnn|implicit_gemm|implicit_precomp|wgrad|dgrad|fprop|precomputed_convolve|winograd|nhwckrsc"),
    ("gemm", r"gemm|cutlass|nvjet|matmul|addmm|\bmm\b|_mm_|dot_kernel"),
    ("reduce", r"reduce|sum_|norm|mean|\bsum\b"),
    ("copy/fill", r"copy|memcpy|memset|fill|cat|index|clone|contiguous|empty|alloc"),
    ("elementwise", r"elementwise|vectorized|unrolled|pointwise|mul|add|where|lerp|div|sqrt"),
    ("autograd", r"autograd|backward"),
]
PHASES = ("forward", "backward", "optimiser")
MARKS = ("rlse.mark.backward_start", "rlse.mark.backward_end")


def family(name: str) -> str:
    low = name.lower()
    for fam, pattern in FAMILIES:
        if re.search(pattern, low):
            return fam
    return "other"


@contextlib.contextmanager
def phase_marks():
    """Inside: torch.autograd.grad synchronises and leaves a mark before and after itself."""
    orig = torch.autograd.grad

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def grad(*args, **kwargs):
        sync()
        with torch.profiler.record_function(MARKS[0]):
            pass
        out = orig(*args, **kwargs)
        sync()
        with torch.profiler.record_function(MARKS[1]):
            pass
        return out

    torch.autograd.grad = grad
    try:
        yield
    finally:
        torch.autograd.grad = orig


def _kernels(events, cuda: bool):
    """(name, start_us, duration_us) of the device kernels (CUDA), or of the CPU ops with their self
    time (which partitions the CPU time)."""
    out = []
    for e in events:
        if e.name in MARKS or e.name.startswith("ProfilerStep"):
            continue
        if cuda:
            if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA and not e.name.startswith("Memcpy DtoH"):
                out.append((e.name, e.time_range.start, e.time_range.end - e.time_range.start))
        elif e.device_type == torch.autograd.DeviceType.CPU and e.self_cpu_time_total > 0:
            out.append((e.name, e.time_range.start, e.self_cpu_time_total))
    return out


def buckets(prof, cuda: bool) -> dict:
    """{'phases': {phase: {family: [us, count]}}, 'kernels': n, 'total_us': sum, 'marks': bool}."""
    events = prof.events()
    marks = sorted(e.time_range.start for e in events if e.name in MARKS)
    found = len(marks) == 2
    if not found:
        marks = [float("inf"), float("inf")]
    phases: dict[str, dict[str, list[float]]] = {p: {} for p in PHASES}
    total, n = 0.0, 0
    for name, start, dur in _kernels(events, cuda):
        phase = PHASES[0] if start < marks[0] else PHASES[1] if start < marks[1] else PHASES[2]
        cell = phases[phase].setdefault(family(name), [0.0, 0])
        cell[0] += dur
        cell[1] += 1
        total += dur
        n += 1
    return {"phases": phases, "kernels": n, "total_us": total, "marks": found}


def table(b: dict, what: str) -> str:
    """The buckets as a text table: a row per family, a column pair (ms, share) per phase."""
    fams = sorted({f for p in b["phases"].values() for f in p},
                  key=lambda f: -sum(p.get(f, [0, 0])[0] for p in b["phases"].values()))
    total = b["total_us"] or 1.0
    head = f"{what} by family and phase ({b['kernels']} {'kernels' if what.startswith('kernel') else 'ops'}, " \
           f"{b['total_us'] / 1e3:.2f} ms{'' if b['marks'] else '; phases not marked: all counted as forward'})"
    lines = [head, f"{'family':<16}" + "".join(f"{p + ' ms':>14}{'n':>6}" for p in PHASES) + f"{'total ms':>11}{'share':>8}"]
    for f in fams:
        cells = [b["phases"][p].get(f, [0.0, 0]) for p in PHASES]
        us = sum(c[0] for c in cells)
        lines.append(f"{f:<16}" + "".join(f"{c[0] / 1e3:>14.3f}{c[1]:>6d}" for c in cells)
                     + f"{us / 1e3:>11.3f}{100 * us / total:>7.1f}%")
    sums = [sum(c[0] for c in b["phases"][p].values()) for p in PHASES]
    lines.append(f"{'all':<16}" + "".join(f"{s / 1e3:>14.3f}{sum(c[1] for c in b['phases'][p].values()):>6d}"
                                          for s, p in zip(sums, PHASES)) + f"{total / 1e3:>11.3f}{100.0:>7.1f}%")
    return "\n".join(lines)
