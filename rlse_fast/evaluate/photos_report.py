"""summary.md, summary.json and report.html of the photo protocol (`photos.py`) from metrics.csv.

Every comparison is paired: method - lanczos on the same faces (`stats.paired_ci`), overall and per
face-size bucket. The goal lines say whether the default pipeline meets the protocol's bar: LPIPS
better than Lanczos on average, identity distance not worse, and no bucket worse beyond its interval
on LPIPS or identity.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

from PIL import Image, ImageDraw

from ..imageio import atomic_write, save_json
from .report import _md_rows_to_html  # the eval report's Markdown-table renderer
from .stats import Interval, mean_ci, paired_ci

BUCKETS = ((0, 16, "<16"), (16, 24, "16-24"), (24, 32, "24-32"), (32, 48, "32-48"), (48, math.inf, "48+"))
"""Face-size buckets by detector box width in the DOWNSCALED photo (the pipeline's input), px."""

METRICS = (("psnr_y", "PSNR-Y (dB)", 2, True), ("ssim_y", "SSIM-Y", 4, True), ("lpips", "LPIPS", 4, False),
           ("identity", "identity dist.", 3, False))
GOAL = ("lpips", "identity")
"""The metrics the goal is judged on (PSNR and SSIM are reported; sharp faces always lose some)."""


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _face_rows(rows, scale, method, bucket=None):
    return [r for r in rows if int(r["scale"]) == scale and r["method"] == method and r["face"] != "all"
            and (bucket is None or r["bucket"] == bucket)]


def _by_key(rows, col) -> dict:
    return {(r["photo"], r["face"]): v for r in rows if not math.isnan(v := _num(r.get(col)))}


def methods(rows) -> list[str]:
    present = list(dict.fromkeys(r["method"] for r in rows))
    return ["lanczos"] + sorted(m for m in present if m != "lanczos")


def buckets(rows, scale) -> list[str]:

    have = {r["bucket"] for r in rows if int(r["scale"]) == scale and r["face"] != "all"}
    return [name for *_, name in BUCKETS if name in have]


def diff(rows, scale, method, col, bucket=None) -> Interval:
    return paired_ci(_by_key(_face_rows(rows, scale, method, bucket), col),
                     _by_key(_face_rows(rows, scale, "lanczos", bucket), col))


def worse(iv: Interval, higher: bool) -> bool:
    """Worse than Lanczos beyond the interval."""
    return iv.excludes_zero() and (iv.mean < 0) == higher


def aggregate(info: dict, rows: list[dict]) -> dict:
    """The numbers summary.json holds (and the tables show)."""
    out = {"scales": {}, "info": info}
    for s in sorted({int(r["scale"]) for r in rows}):
        lz = _face_rows(rows, s, "lanczos")
        entry = {"faces": len(lz), "photos": sorted({r["photo"] for r in lz}), "methods": {}}
        for m in methods(rows):
            fr = _face_rows(rows, s, m)
            whole = [r for r in rows if int(r["scale"]) == s and r["method"] == m and r["face"] == "all"]
            me = {"mean": {c: _iv(mean_ci(_num(r.get(c)) for r in fr)) for c, *_ in METRICS},
                  "whole_photo": {c: _iv(mean_ci(_num(r.get(c)) for r in whole)) for c, *_ in METRICS[:3]},
                  "restored": sum(r.get("restored") == "1" for r in fr)}
            if m != "lanczos":
                me["diff"] = {c: _iv(diff(rows, s, m, c)) for c, *_ in METRICS}
                me["buckets"] = {b: {"faces": len(_face_rows(rows, s, m, b)),
                                     "restored": sum(r.get("restored") == "1" for r in _face_rows(rows, s, m, b)),
                                     **{c: _iv(diff(rows, s, m, c, b)) for c, *_ in METRICS}}
                                 for b in buckets(rows, s)}
                me["reasons"] = _reasons(fr)
                me["goal"] = goal(rows, s, m)
            entry["methods"][m] = me
        entry["median_face"] = median_face(rows, s)
        out["scales"][str(s)] = entry
    return out


def _iv(iv: Interval) -> dict:
    return {"mean": None if math.isnan(iv.mean) else round(iv.mean, 6),
            "half": None if math.isnan(iv.half) else round(iv.half, 6), "n": iv.n}


def _reasons(face_rows) -> dict:
    out: dict[str, int] = {}
    for r in face_rows:
        why = (r.get("reason") or "").split(" (")[0]
        out[why] = out.get(why, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def goal(rows, scale, method) -> dict:
    """The protocol's bar for `method` against Lanczos at `scale`."""
    lp, idn = diff(rows, scale, method, "lpips"), diff(rows, scale, method, "identity")
    bad = [f"{b} ({label})" for b in buckets(rows, scale) for c, label, _, higher in METRICS
           if c in GOAL and worse(diff(rows, scale, method, c, b), higher)]
    return {"lpips_better_on_average": bool(lp.mean < 0), "identity_not_worse": not worse(idn, False),
            "buckets_worse": bad, "met": bool(lp.mean < 0) and not worse(idn, False) and not bad}


def median_face(rows, scale, method="photo") -> dict | None:
    """The restored face whose LPIPS gain over Lanczos is the median of the restored faces' (lower
    median): the figure's face, neither the best nor the worst."""
    lz = _by_key(_face_rows(rows, scale, "lanczos"), "lpips")
    fr = _face_rows(rows, scale, method)
    restored = [r for r in fr if r.get("restored") == "1"]
    cand = sorted((v - lz[k], k) for k, v in _by_key(restored or fr, "lpips").items() if k in lz)
    if not cand:
        return None
    d, (photo, face) = cand[(len(cand) - 1) // 2]
    return {"photo": photo, "face": int(face), "lpips_diff": round(d, 4), "of": len(cand),
            "among": "restored faces" if restored else "all faces (none restored)"}


def crop_path(out: Path, scale: int, photo: str, face: int, method: str) -> Path:
    """A face's crop for `method`; a method's crop equal to Lanczos's is stored once, as Lanczos's."""
    folder = out / "images" / f"x{scale}" / Path(photo).stem
    path = folder / f"{face:03d}_{method}.png"
    return path if path.is_file() or method == "original" else folder / f"{face:03d}_lanczos.png"


def median_figure(out: Path, scale: int, mf: dict, methods=("photo",), side: int = 160):
    """original | lanczos | each of `methods`: crops of the median face side by side, each `side` px
    (nearest neighbour, so pixels stay visible), with labels; None when the crops are absent."""
    names = ("original", "lanczos", *methods)
    paths = [crop_path(out, scale, mf["photo"], mf["face"], m) for m in names]
    if not all(p.is_file() for p in paths):
        return None
    fig = Image.new("RGB", (len(names) * (side + 4) - 4, side + 16), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    for i, (p, m) in enumerate(zip(paths, names)):
        fig.paste(Image.open(p).convert("RGB").resize((side, side), Image.NEAREST), (i * (side + 4), 16))
        label = {"original": f"original (x{scale} truth)", "photo": "photo (default)",
                 "photo-all": "photo --restore all", "photo-all-p0": "--back-project 0",
                 "lanczos-p": "lanczos, projected"}.get(m, m)
        draw.text((i * (side + 4) + 2, 2), label, fill=(0, 0, 0))
    return fig


# ----------------------------------------------------------------------------- Markdown / HTML


def _fmt(d: dict, digits: int) -> str:
    return Interval(d["mean"] if d["mean"] is not None else math.nan,
                    d["half"] if d["half"] is not None else math.nan, d["n"]).fmt(digits)


def summary_markdown(agg: dict) -> str:
    info = agg["info"]
    lines = ["# Photo protocol: the photo pipeline against Lanczos, scored against the original photos", "",
             f"Command: `{info.get('command', '')}`", "",
             "Paired differences are method − lanczos on the same faces, mean ± 95% t-interval; LPIPS and "
             "identity: lower is better; PSNR-Y and SSIM-Y: higher is better. Buckets: face width in the "
             "downscaled photo (the pipeline's input).", ""]
    for s, e in agg["scales"].items():
        lines += [f"## x{s}: {e['faces']} faces in {len(e['photos'])} photos ({', '.join(e['photos'])})", "",
                  "| method | " + " | ".join(label for _, label, *_ in METRICS) + " | whole photo PSNR-Y | whole LPIPS | restored |",
                  "|---|" + "---:|" * (len(METRICS) + 3)]
        for m, me in e["methods"].items():
            lines.append(f"| {m} | " + " | ".join(_fmt(me["mean"][c], d) for c, _, d, _ in METRICS)
                         + f" | {_fmt(me['whole_photo']['psnr_y'], 2)} | {_fmt(me['whole_photo']['lpips'], 4)}"
                         + f" | {me['restored']} |")
        for m, me in e["methods"].items():
            if m == "lanczos":
                continue
            g = me["goal"]
            lines += ["", f"### {m} − lanczos at x{s}", "",
                      "| bucket | faces | restored | " + " | ".join(f"Δ {label}" for _, label, *_ in METRICS) + " |",
                      "|---|---:|---:|" + "---:|" * len(METRICS),
                      "| all | " + f"{e['faces']} | {me['restored']} | "
                      + " | ".join(_fmt(me["diff"][c], d) for c, _, d, _ in METRICS) + " |"]
            for b, bd in me["buckets"].items():
                lines.append(f"| {b} px | {bd['faces']} | {bd['restored']} | "
                             + " | ".join(_fmt(bd[c], d) for c, _, d, _ in METRICS) + " |")
            lines += ["", "Decisions: " + "; ".join(f"{n} {why}" for why, n in me["reasons"].items()), "",
                      f"Goal: LPIPS better on average: {'yes' if g['lpips_better_on_average'] else 'NO'}; identity "
                      f"not worse: {'yes' if g['identity_not_worse'] else 'NO'}; buckets worse beyond their "
                      f"interval: {', '.join(g['buckets_worse']) or 'none'} -> {'MET' if g['met'] else 'NOT MET'}."]
        mf = e.get("median_face")
        if mf:
            lines += ["", f"Median face of the default pipeline (Δ LPIPS, among {mf['among']}): {mf['photo']} "
                          f"face {mf['face']} (Δ LPIPS {mf['lpips_diff']:+.4f}, of {mf['of']}); median_x{s}.png."]
        lines.append("")
    return "\n".join(lines)


def report_html(agg: dict, out: Path) -> str:
    parts = []
    for s, e in agg["scales"].items():
        mf = e.get("median_face")
        if mf:
            paths = {m: crop_path(out, int(s), mf["photo"], mf["face"], m) for m in ("original", "lanczos", "photo")}
            imgs = "".join(f"<figure><img src='{p.relative_to(out).as_posix()}' width=160>"
                           f"<figcaption>{m}</figcaption></figure>" for m, p in paths.items() if p.is_file())
            parts.append(f"<h3>x{s}: the median face ({html.escape(mf['photo'])} face {mf['face']})</h3>{imgs}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>photo protocol</title><style>"
            "body{font-family:sans-serif;margin:16px} table{border-collapse:collapse} td,th{border:1px solid #ccc;"
            "padding:2px 6px} img{image-rendering:pixelated} figure{display:inline-block;margin:4px}</style></head><body>"
            + _markdown_html(summary_markdown(agg), _md_rows_to_html) + "".join(parts) + "</body></html>")


def _markdown_html(md: str, table) -> str:
    """summary.md's few features: '#' headings, tables (rendered by `table`), paragraphs."""
    out, block = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            out.append(table(block))
            block = []
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    return "\n".join(out)


def write_all(out: Path, info: dict, rows: list[dict]) -> dict:
    agg = aggregate(info, rows)
    save_json(agg, out / "summary.json")
    text = summary_markdown(agg)
    atomic_write(out / "summary.md", lambda tmp: Path(tmp).write_text(text))
    for s, e in agg["scales"].items():
        if e.get("median_face") and (fig := median_figure(out, int(s), e["median_face"])) is not None:
            atomic_write(out / f"median_x{s}.png", lambda tmp, fig=fig: fig.save(tmp, format="PNG"))
    page = report_html(agg, out)
    atomic_write(out / "report.html", lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return agg
