"""The training curves of a prior run: losses, R1, augmentation strength p and the overfitting
heuristic r_t against kimg, from its log.jsonl (one line per minute and per checkpoint).

    python benchmarks/plot_prior_curves.py runs/prior-gpu/run/log.jsonl docs/prior_curves.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("log", type=Path)
    p.add_argument("out", type=Path)
    args = p.parse_args()
    try:
        rows = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        print(f"plot_prior_curves: cannot read {args.log} ({exc})", file=sys.stderr)
        return 2
    rows = [r for r in rows if r.get("loss_G") is not None]
    if not rows:
        print(f"plot_prior_curves: {args.log} holds no training step", file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kimg = [r["kimg"] for r in rows]
    fig, (ax_loss, ax_aug) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, label in (("loss_G", "G loss"), ("loss_D", "D loss"), ("r1", "R1 penalty")):
        ax_loss.plot(kimg, [r.get(key) for r in rows], label=label, lw=1)
    ax_loss.set_xlabel("kimg")
    ax_loss.legend()
    ax_aug.plot(kimg, [r.get("p") for r in rows], label="augmentation p", lw=1)
    ax_aug.plot(kimg, [r.get("r_t") for r in rows], label="r_t = E[sign D(real)]", lw=1)
    ax_aug.set_xlabel("kimg")
    ax_aug.set_ylim(-1.05, 1.05)
    ax_aug.legend()
    fig.suptitle(f"{args.log}: {kimg[-1]:.0f} kimg, {rows[-1].get('hours', 0):.2f} h ({rows[-1].get('device', '?')})")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
