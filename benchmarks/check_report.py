"""Open an eval report in headless Chromium, screenshot it, and check that every <img> loaded.

    python benchmarks/check_report.py docs/eval/celeba128_test/report.html [--screenshot PNG]

How: a copy of the page goes to a temporary folder with a <base href> pointing back at the report's
folder (so its relative image links resolve exactly as in the original) and a small script that, on
the window's load event, lists every <img> with naturalWidth == 0 into a marker element; Chromium's
--dump-dom prints the DOM with that marker. A second Chromium run takes the screenshot of the
original page. Exit 0 when every image loaded, 1 when one did not (each listed), 2 for bad usage
(no such report, no Chromium: `apt-get install chromium`).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MARKER = "RLSE_REPORT_CHECK"
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                .map(function (i) { return i.getAttribute('src'); });
  var pre = document.createElement('pre');
  pre.id = 'rlse-report-check';
  pre.textContent = '%s ' + JSON.stringify({total: imgs.length, bad: bad});
  document.body.appendChild(pre);
});
</script>""" % MARKER

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--allow-file-access-from-files"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


def chromium(browser: str, args: list[str], profile: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=timeout)


def probe_page(report: Path, tmp: Path) -> Path:
    """A copy of the report that resolves links against the report's folder and reports its images."""
    page = report.read_text(encoding="utf-8")
    base = f'<base href="{report.parent.resolve().as_uri()}/">'
    page = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + base, page, count=1, flags=re.I) if re.search(
        r"<head[^>]*>", page, flags=re.I) else base + page
    page = re.sub(r"</body>", lambda m: PROBE + m.group(0), page, count=1, flags=re.I) if re.search(
        r"</body>", page, flags=re.I) else page + PROBE
    out = tmp / "probe.html"
    out.write_text(page, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="report.html written by `rlse-fast eval`")
    ap.add_argument("--screenshot", type=Path, default=None,
                    help="where to write the screenshot (default: /tmp/<report folder>-report.png)")
    ap.add_argument("--window", default="1280,2200", help="window size for the screenshot, W,H")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds per Chromium run")
    args = ap.parse_args(argv)

    if not args.report.is_file():
        print(f"check_report: {args.report} does not exist; pass the report.html of an eval run", file=sys.stderr)
        return 2
    browser = find_chromium()
    if browser is None:
        print("check_report: no Chromium found; install it (apt-get install chromium)", file=sys.stderr)
        return 2
    shot = args.screenshot or Path(tempfile.gettempdir()) / f"{args.report.parent.name}-report.png"

    with tempfile.TemporaryDirectory(prefix="rlse-report-check-") as tmp:
        tmp = Path(tmp)
        probe = probe_page(args.report, tmp)
        try:
            res = chromium(browser, ["--virtual-time-budget=15000", "--dump-dom", probe.as_uri()], tmp / "profile1",
                           args.timeout)
        except subprocess.TimeoutExpired:
            print(f"check_report: Chromium did not finish within {args.timeout:.0f} s", file=sys.stderr)
            return 1
        m = re.search(MARKER + r" (\{.*?\})</pre>", res.stdout)
        if not m:
            tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"check_report: the page did not report its images (Chromium exit {res.returncode}: {tail})",
                  file=sys.stderr)
            return 1
        result = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        try:
            chromium(browser, [f"--window-size={args.window}", f"--screenshot={shot.resolve()}",
                               args.report.resolve().as_uri()], tmp / "profile2", args.timeout)
        except subprocess.TimeoutExpired:
            pass
    shot_note = f"screenshot {shot}" if shot.is_file() else "no screenshot written"
    if result["bad"]:
        print(f"check_report: {len(result['bad'])} of {result['total']} images did not load: "
              + ", ".join(result["bad"]) + f"; {shot_note}", file=sys.stderr)
        return 1
    if result["total"] == 0:
        print(f"check_report: the page has no images; {shot_note}", file=sys.stderr)
        return 1
    print(f"check_report: all {result['total']} images loaded; {shot_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
