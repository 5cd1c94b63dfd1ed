"""Face-detection recall by face size on ../shared/data/photos (CPU).

    python benchmarks/bench_face_recall.py [--dlib] [--out benchmarks/results/cpu-face-recall-2026-12-03.json]

For the three photos with ground truth (gt_boxes.json): each GT face counts as found when a detection
overlaps it at IoU >= 0.5 (greedy, best score first, one detection per face); recall is given per GT
width bin (<16, 16-32, 32-64, >64 px) and detections that overlap no GT face are false positives. For
the other photos: how many faces were found, by detected width, against the counts in the photos'
README. Detectors: MTCNN (min face 12 px) with the cascade's own thresholds and with the score
floor `rlse-fast photo` keeps by default (--min-score), and with --dlib dlib's HOG
detector (`dlib-bin`; image upsampled 1x and 2x, as dlib's own examples do for small faces).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
from rlse_fast.faces.detect import MIN_SCORE  # noqa: E402

BINS = ((0, 16, "<16"), (16, 32, "16-32"), (32, 64, "32-64"), (64, 1e9, ">64"))


def iou(a, b) -> float:
    """Boxes (x1, y1, x2, y2)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def bin_of(width: float) -> str:
    return next(name for lo, hi, name in BINS if lo <= width < hi)


def score_against_gt(dets, scores, gt_xywh, invalid):
    gt = [(x, y, x + w, y + h) for x, y, w, h in gt_xywh]
    found = [False] * len(gt)
    fp = 0
    for k in np.argsort(-np.asarray(scores)) if len(scores) else []:
        best, j = max(((iou(dets[k], g), j) for j, g in enumerate(gt) if not found[j]), default=(0.0, -1))
        if best >= 0.5:
            found[j] = True
        elif not any(iou(dets[k], g) >= 0.5 for g in gt):
            fp += 1
    per_bin = {name: [0, 0] for _, _, name in BINS}
    for j, (x, y, w, h) in enumerate(gt_xywh):
        if invalid[j]:
            continue
        per_bin[bin_of(w)][1] += 1
        per_bin[bin_of(w)][0] += int(found[j])
    return per_bin, fp


def detectors(use_dlib: bool):
    from rlse_fast.faces.mtcnn import MTCNN

    mtcnn = MTCNN.from_cache(min_face=12)
    out = {"mtcnn": lambda rgb: mtcnn.detect(rgb)[:2]}  # the cascade's own thresholds (last stage 0.7)
    if use_dlib:
        import dlib

        hog = dlib.get_frontal_face_detector()
        for up in (1, 2):
            def run(rgb, up=up):
                rects, scores, _ = hog.run(np.ascontiguousarray(rgb), up, 0.0)
                return np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects]).reshape(-1, 4), np.array(scores)
            out[f"dlib-hog-up{up}"] = run
    return out


def _row(name, path, rgb, boxes, scores, sec, gt_all) -> dict:
    widths = [float(b[2] - b[0]) for b in boxes]
    row = {"found": len(boxes), "seconds": round(sec, 2), "size": list(rgb.shape[1::-1]),
           "found_by_width": {n: sum(bin_of(w) == n for w in widths) for _, _, n in BINS}}
    if path.name in gt_all:
        g = gt_all[path.name]
        invalid = g.get("invalid") or [0] * len(g["boxes_xywh"])
        per_bin, fp = score_against_gt(boxes, scores, g["boxes_xywh"], invalid)
        row.update({"recall_by_width": per_bin, "false_positives": fp,
                    "recall": [sum(v[0] for v in per_bin.values()), sum(v[1] for v in per_bin.values())]})
    print(f"{name:16s} {path.name:24s} found {len(boxes):3d} in {sec:5.1f} s"
          + (f"  recall {row['recall'][0]}/{row['recall'][1]} {row['recall_by_width']} FP {row['false_positives']}"
             if "recall" in row else f"  by width {row['found_by_width']}"), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dlib", action="store_true", help="also measure dlib's HOG detector (needs dlib-bin)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if not PHOTOS.is_dir():
        sys.exit(f"{PHOTOS} is absent")
    import torch

    from rlse_fast.faces.photo_io import read_photo

    torch.set_num_threads(2)
    gt_all = json.loads((PHOTOS / "gt_boxes.json").read_text())
    photos = sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    results = {}
    for det_name, det in detectors(args.dlib).items():
        for path in photos:
            rgb = read_photo(path)
            t = time.perf_counter()
            boxes, scores = det(rgb)
            sec = time.perf_counter() - t
            runs = [(det_name, boxes, np.asarray(scores))]
            if det_name == "mtcnn":  # and as `rlse-fast photo` keeps them (--min-score default)
                keep = np.asarray(scores) >= MIN_SCORE
                runs.append((f"mtcnn-score{MIN_SCORE:g}", boxes[keep], np.asarray(scores)[keep]))
            for name, b, sc in runs:
                row = _row(name, path, rgb, b, sc, sec, gt_all)
                results.setdefault(name, {})[path.name] = row


    if args.out:
        Path(args.out).write_text(json.dumps({"device": "cpu (2 cores, shared)", "torch": torch.__version__,
                                              "iou": 0.5, "results": results}, indent=1))


if __name__ == "__main__":
    main()
