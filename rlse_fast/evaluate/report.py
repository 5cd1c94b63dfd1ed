"""summary.md, report.html and its charts from metrics.csv and run.json.

The report is static: HTML with relative links to the PNGs beside it (sample faces under images/,
charts under charts/), so the folder can be committed or copied as it is. Charts need matplotlib
(`pip install 'rlse-fast[eval]'`), imported only here; without it the report says so and has no charts.
"""
from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

from ..engine.objective import TERMS
from ..imageio import atomic_write
from .methods import COLUMNS, METHODS
from .stats import Interval, mean_ci, paired_ci

# (column, label, digits, higher is better)
GT_METRICS = (("psnr_y", "PSNR-Y (dB)", 2, True), ("ssim_y", "SSIM-Y", 4, True), ("lpips", "LPIPS", 4, False),
              ("identity", "identity dist.", 3, False),
              ("psnr_rgb", "PSNR-RGB (dB)", 2, True), ("ssim_rgb", "SSIM-RGB", 4, True))
NIQE_METRICS = (("niqe", "NIQE", 3, False),)
EXTRA = (("lr_psnr_y", "LR PSNR-Y (dB)", 2, True), ("seconds", "s / face", 2, False))
# The paper's columns, charted and compared.
MAIN = ("psnr_y", "ssim_y", "lpips", "identity")


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _metrics(info: dict):
    if info.get("mode") != "hr":
        return NIQE_METRICS
    # identity only where the run scored it (dlib installed; runs before the column had no key)
    return tuple(m for m in GT_METRICS if m[0] != "identity" or info.get("identity"))


def _main_metrics(info: dict):
    """The metrics the summaries and the paired comparisons show: the MAIN ones, or NIQE alone."""
    return [m for m in _metrics(info) if m[0] in MAIN or info["mode"] == "lr"]


COMPARISONS = (("rlse", "rlse-nosem", "Does L_s help?"), ("rlse", "rlse-noft", "Does fine-tuning help?"),
               ("rlse", "pulse", "RLSE vs PULSE"))
"""Paired differences reported when both methods ran: (a, b, heading) for a − b."""


def _methods(info: dict, rows: list[dict]) -> list[str]:
    present = {r["method"] for r in rows}
    return [m for m in METHODS if m in present]


def _scales(rows: list[dict]) -> list[int]:
    return sorted({int(r["scale"]) for r in rows})


def _values(rows, scale, method, col) -> dict[str, float]:
    out = {}
    for r in rows:
        if int(r["scale"]) == scale and r["method"] == method and not math.isnan(v := _num(r.get(col))):
            out[r["image"]] = v
    return out


def aggregate(info: dict, rows: list[dict]) -> dict:
    """{scale: {method: {column: Interval}}} over every metric column and the extras."""
    cols = [c for c, *_ in _metrics(info) + EXTRA]
    return {s: {m: {c: mean_ci(_values(rows, s, m, c).values()) for c in cols} for m in _methods(info, rows)}
            for s in _scales(rows)}


def compare(rows, scale, a: str, b: str, metrics) -> list[tuple[str, Interval, str]]:
    """[(label, interval of a - b, verdict)] on the faces both methods have."""
    out = []
    for col, label, digits, higher in metrics:
        d = paired_ci(_values(rows, scale, a, col), _values(rows, scale, b, col))
        if d.n < 2 or math.isnan(d.half):
            verdict = "too few faces to tell"
        elif not d.excludes_zero():
            verdict = "no significant difference"
        else:
            verdict = f"{a} better" if (d.mean > 0) == higher else f"{a} worse"
        out.append((label, d, verdict))
    return out


# ----------------------------------------------------------------------------- Markdown


def _md_table(info, rows, agg, scale) -> list[str]:
    metrics = _metrics(info) + EXTRA
    lines = ["| method | " + " | ".join(label for _, label, *_ in metrics) + " | faces |",
             "|---|" + "---:|" * (len(metrics) + 1)]
    for m, cols in agg[scale].items():
        n = max(iv.n for iv in cols.values())
        lines.append(f"| {m} | " + " | ".join(cols[c].fmt(d) for c, _, d, _ in metrics) + f" | {n} |")
    return lines


def _lr_size(info, scale) -> int:
    return info["hr_size"] // scale


def header_lines(info: dict) -> list[str]:
    w = info.get("weights") or {}
    lines = [f"- data: `{info['data']}` ({info['mode'].upper()} mode), {info['hr_size']} px faces",
             f"- command: `{info.get('command') or '(library call)'}`"]
    if w:
        lines.append(f"- weights: `{Path(w['path']).name}` (sha256 {w['sha256'][:12]}, {w['format']}"
                     + (f", {w['kimg']} kimg" if w.get("kimg") else "") + f", {w['resolution']} px)")
    batch = int(info.get("batch", 1))
    together = "one face at a time" if batch == 1 else f"{batch} faces per batch (each as if alone)"
    lines += [f"- GAN methods: {info['steps']} steps per face, seed {info['seed']} for every face, {together}; "
              f"{info.get('engine', 'eager')} engine, {info.get('precision', 'fp32')}; "
              f"device {info['device']}, {info['threads']} thread(s), kernels impl={info['impl']}",
              f"- {info['frame_warp']}"]
    if info["mode"] == "hr":
        lines.append("- protocol: HR face resized to the HR size (PIL bicubic, antialiased) -> PULSE bicubic "
                     "downscale -> 8-bit LR input; outputs rounded to 8 bits and scored against the HR face "
                     "(PSNR/SSIM on MATLAB Y and on RGB, LPIPS v0.1 AlexNet); 'LR PSNR-Y' scores the output "
                     "downscaled again against the LR input")
    else:
        lines.append(f"- protocol: real faces downscaled (PULSE bicubic) to the LR size, super-resolved; NIQE on the "
                     f"output upscaled (PIL bicubic) to {info['niqe_size']} px, since NIQE needs 96x96 pixels and "
                     f"the outputs have {info['hr_size']}; no ground truth")
    lines.append("- values: mean ± half-width of the 95% Student-t interval over the faces; differences are paired "
                 "(same faces)")
    return lines


def summary_markdown(info: dict, rows: list[dict], notes: str = "") -> str:
    agg = aggregate(info, rows)
    title = Path(info["data"]).name
    out = [f"# rlse-fast eval: {title}", ""] + header_lines(info) + [""]
    if notes:
        out += [notes.strip(), ""]
    for s in agg:
        out += [f"## {s}x ({_lr_size(info, s)} px -> {info['hr_size']} px)", ""] + _md_table(info, rows, agg, s) + [""]
        methods = list(agg[s])
        main = _main_metrics(info)
        for a, b, why in COMPARISONS:
            if a in methods and b in methods:
                comp = compare(rows, s, a, b, main)
                out += [f"### {why} ({a} − {b}, paired, {comp[0][1].n} faces)", "",
                        "| metric | difference | verdict |", "|---|---:|---|"]
                out += [f"| {label} | {d.fmt(dig + 2)} | {verdict} |"
                        for (label, d, verdict), (_, _, dig, _) in zip(comp, main)]
                out += [""]
        out += loss_terms_table(info, rows, s)
    return "\n".join(out) + "\n"


LOSS_TERMS = tuple((f"loss_{name}", weight, symbol) for name, weight, symbol in TERMS)
"""(metrics.csv column, RLSEConfig weight field, symbol) of each loss term of the engine's objective."""


def loss_terms_table(info: dict, rows: list[dict], scale: int) -> list[str]:
    """Mean weighted loss terms of the kept iterate per GAN method, and each one's share of the total."""
    lines = []
    configs = info.get("configs", {})
    for m in [m for m in _methods(info, rows) if m in configs]:
        cfg, terms = configs[m], []
        for col, weight, name in LOSS_TERMS:
            vals = _values(rows, scale, m, col)
            if not vals:
                break
            terms.append((name, cfg[weight], sum(vals.values()) / len(vals)))
        else:
            total = sum(w * v for _, w, v in terms)
            if not lines:
                lines = ["### Objective at the kept iterate (mean weighted terms, share of the total)", "",
                         "| method | " + " | ".join(f"w·{n}" for n, _, _ in terms) + " |",
                         "|---|" + "---:|" * len(terms)]
            lines.append(f"| {m} | " + " | ".join(
                f"{w}×{v:.4g} = {w * v:.4g} ({100 * w * v / total:.2g}%)" if total else f"{w}×{v:.4g}"
                for _, w, v in terms) + " |")
    return lines + [""] if lines else []


# ----------------------------------------------------------------------------- charts


def write_charts(info: dict, rows: list[dict], out: Path) -> dict[int, str]:
    """One PNG per scale with a bar chart per main metric (+ time); {scale: relative path}."""
    try:
        import matplotlib
    except ImportError:
        return {}
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = aggregate(info, rows)
    metrics = _main_metrics(info) + [EXTRA[1]]
    paths = {}
    for s, per_method in agg.items():
        methods = list(per_method)
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 2.9), dpi=80)
        for ax, (col, label, _, higher) in zip(axes if len(metrics) > 1 else [axes], metrics):
            means = [per_method[m][col].mean for m in methods]
            errs = [0 if math.isnan(h := per_method[m][col].half) else h for m in methods]
            colors = ["#9aa5b1" if m in ("bicubic", "bilinear") else "#3b7dd8" for m in methods]
            ax.bar(range(len(methods)), [0 if math.isnan(v) else v for v in means], yerr=errs, capsize=3, color=colors)
            ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
            ax.set_title(label + (" ↑" if higher else " ↓"), fontsize=9)
            ax.tick_params(axis="y", labelsize=8)
            finite = [v for v in means if not math.isnan(v)]
            if col.startswith("psnr") and finite:
                lo = min(v - e for v, e in zip(means, errs) if not math.isnan(v))
                ax.set_ylim(max(0, lo - 2), max(v + e for v, e in zip(means, errs) if not math.isnan(v)) + 1)
        fig.suptitle(f"{s}x: mean and 95% interval over faces", fontsize=9)
        fig.tight_layout()
        rel = f"charts/x{s}.png"
        atomic_write(out / rel, lambda tmp: fig.savefig(tmp, format="png"))
        plt.close(fig)
        paths[s] = rel
    return paths


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px}
th{background:#f0f2f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid td{text-align:center;font-size:11px;padding:2px}.grid img{width:96px;height:96px;image-rendering:pixelated;display:block}
pre{background:#f6f8fa;padding:.6em;font-size:12px;overflow-x:auto}details{margin:.5em 0}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _html_summary_table(info, agg, s) -> str:
    metrics = _metrics(info) + EXTRA
    head = "<tr><th>method</th>" + "".join(f"<th>{_e(label)}</th>" for _, label, *_ in metrics) + "<th>faces</th></tr>"
    body = ""
    for m, cols in agg[s].items():
        n = max(iv.n for iv in cols.values())
        body += f"<tr><td>{_e(m)}</td>" + "".join(f'<td class="num">{_e(cols[c].fmt(d))}</td>' for c, _, d, _ in metrics)
        body += f'<td class="num">{n}</td></tr>'
    return f"<table>{head}{body}</table>"


def _html_grid(info, rows, out: Path, s: int) -> str:
    methods = _methods(info, rows)
    base = out / "images" / f"x{s}"
    stems = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    names = {Path(r["image"]).stem: r["image"] for r in rows if int(r["scale"]) == s}
    stems = [st for st in stems if st in names]
    if not stems:
        return "<p>(no sample images saved)</p>"
    cols = ["lr"] + methods + (["hr"] if info["mode"] == "hr" else [])
    labels = {"lr": f"LR ({_lr_size(info, s)} px)", "hr": "HR"}
    psnr = {(r["image"], r["method"]): _num(r.get("psnr_y" if info["mode"] == "hr" else "niqe")) for r in rows
            if int(r["scale"]) == s}
    head = "<tr><th>face</th>" + "".join(f"<th>{_e(labels.get(c, c))}</th>" for c in cols) + "</tr>"
    body = ""
    for st in stems:
        body += f"<tr><td>{_e(names[st])}</td>"
        for c in cols:
            rel = f"images/x{s}/{st}/{c}.png"
            if (out / rel).is_file():
                v = psnr.get((names[st], c), math.nan)
                cap = "" if math.isnan(v) else (f"{v:.2f} dB" if info["mode"] == "hr" else f"NIQE {v:.2f}")
                body += f'<td><img src="{_e(rel)}" alt="{_e(st)} {_e(c)}" loading="eager">{_e(cap)}</td>'
            else:
                body += "<td>–</td>"
        body += "</tr>"
    return f'<table class="grid">{head}{body}</table>'


def _html_rows(info, rows, s) -> str:
    cols = [c for c in COLUMNS if c not in ("scale",) and any(r.get(c) not in (None, "") for r in rows)]
    head = "<tr>" + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr>"
    body = ""
    for r in rows:
        if int(r["scale"]) != s:
            continue
        cells = []
        for c in cols:
            v = r.get(c, "")
            f = _num(v)
            cells.append(f'<td class="num">{f:.4g}</td>' if c not in ("image", "method") and not math.isnan(f)
                         else f"<td>{_e(v)}</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table>{head}{body}</table>"


def _md_rows_to_html(lines: list[str]) -> str:
    """A Markdown table (header row, separator, rows) as an HTML table."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines if line.strip()]
    head, body = cells[0], [r for r in cells[2:]]
    return ("<table><tr>" + "".join(f"<th>{_e(c)}</th>" for c in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in body) + "</table>")


def _notes_html(notes: str) -> str:
    """The few Markdown features notes.md uses: '#' headings, paragraphs, **bold**, `code`."""
    parts = []
    for block in re.split(r"\n\s*\n", notes.strip()):
        text = _e(" ".join(line.strip() for line in block.splitlines()))
        text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
        text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
        if m := re.match(r"(#+) (.*)", text):
            parts.append(f"<h{min(len(m.group(1)) + 1, 4)}>{m.group(2)}</h{min(len(m.group(1)) + 1, 4)}>")
        else:
            parts.append(f"<p>{text}</p>")
    return "\n".join(parts)


def report_html(info: dict, rows: list[dict], out: Path, charts: dict[int, str], notes: str = "") -> str:
    agg = aggregate(info, rows)
    title = f"rlse-fast eval: {Path(info['data']).name}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_e(title)}</h1><ul>" + "".join(f"<li>{_e(l[2:].replace('`', ''))}</li>" for l in header_lines(info)) + "</ul>"]
    if notes:
        parts.append(_notes_html(notes))
    for s in agg:
        parts.append(f"<h2>{s}x ({_lr_size(info, s)} px → {info['hr_size']} px)</h2>")
        parts.append(_html_summary_table(info, agg, s))
        for a, b, _ in COMPARISONS:
            if a in agg[s] and b in agg[s]:
                main = _main_metrics(info)
                comp = compare(rows, s, a, b, main)
                parts.append(f"<p><b>{a} − {b}</b> (paired, {comp[0][1].n} faces): "
                             + "; ".join(f"{_e(label)} {_e(d.fmt(dig + 2))} ({_e(v)})"
                                         for (label, d, v), (_, _, dig, _) in zip(comp, main)) + "</p>")
        terms = loss_terms_table(info, rows, s)
        if terms:
            parts.append(f"<h3>{_e(terms[0][4:])}</h3>" + _md_rows_to_html(terms[2:]))
        if s in charts:
            parts.append(f'<img src="{_e(charts[s])}" alt="bar charts {s}x" style="max-width:100%">')
        else:
            parts.append("<p>(charts need matplotlib: <code>pip install 'rlse-fast[eval]'</code>)</p>")
        parts.append(f"<h3>Sample faces ({'Y PSNR' if info['mode'] == 'hr' else 'NIQE'} under each)</h3>")
        parts.append(_html_grid(info, rows, out, s))
        parts.append(f"<details><summary>Per-image scores ({s}x)</summary>{_html_rows(info, rows, s)}</details>")
    parts.append("<h2>Configuration</h2><pre>" + _e(json.dumps(info, indent=1)) + "</pre></body></html>")
    return "\n".join(parts)


def write_all(out: Path, info: dict, rows: list[dict]) -> None:
    notes_path = out / "notes.md"
    notes = notes_path.read_text() if notes_path.is_file() else ""
    charts = write_charts(info, rows, out)
    md = summary_markdown(info, rows, notes)
    page = report_html(info, rows, out, charts, notes)
    atomic_write(out / "summary.md", lambda tmp: Path(tmp).write_text(md))
    atomic_write(out / "report.html", lambda tmp: Path(tmp).write_text(page))
