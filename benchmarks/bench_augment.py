"""Which augmentation helps the prior on a small data set? Train none / diffaug / ada from the same
seed on the same few hundred faces for the same number of images, then measure overfitting and a
sample-quality proxy. One command (about 35 minutes on two loaded CPU threads):

    python benchmarks/bench_augment.py --json benchmarks/results/cpu-augment-2026-12-07.json

Data: the first `--train` faces of ../shared/data/celeba_train (sorted names, symlinked into a
work folder) are the training set; the next `--heldout` faces are held out.

Per mode, from the run's checkpoint (G_ema, D) at the end:
- r_t: the ADA overfitting heuristic E[sign(D(augmented real))] over the last minibatches
  (log.jsonl), and D's logits on the training faces and on the held-out faces, both un-augmented:
  `logit_gap` = mean D(train) - mean D(held-out) (large: D has memorised the training faces),
  `sign_gap` = E[sign D(train)] - E[sign D(held-out)].
- KID-AlexNet: the kernel inception distance's estimator (unbiased MMD^2 with the cubic polynomial
  kernel, averaged over subsets) on the globally average-pooled activations of the five layers of
  the LPIPS AlexNet trunk (1152 features; the images bilinearly resized to 128 px), between
  `--samples` G_ema samples and the held-out faces. NOT Inception KID: the numbers compare runs of
  this benchmark with each other and nothing else.

Runs go one per process, one thread each, at most `--jobs` at once. `--eval-only` re-measures the
run folders of an earlier call. On a lent GPU, with the packed data set that travels:

    python benchmarks/bench_augment.py --data runs/prior-gpu/data/celeba_train-64.faces --device cuda \
        --jobs 1 --batch 32 --kimg 100 --max-minutes 2 --ada-kimg 100 --threads 16 --work /tmp/ba \
        --json $OUT/gpu-augment.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rlse_fast.checkpoints import load_gan  # noqa: E402
from rlse_fast.weights import resolve  # noqa: E402
from rlse_fast.train.data import list_images, load_faces, to_float  # noqa: E402
from rlse_fast.train.pack import PACK_SUFFIX, subset_pack  # noqa: E402


def make_subsets(source: Path, work: Path, n_train: int, n_heldout: int) -> tuple[Path, Path]:
    if source.suffix == PACK_SUFFIX:  # a packed data set (a device machine has no image folder)
        work.mkdir(parents=True, exist_ok=True)
        train, heldout = work / f"train{n_train}{PACK_SUFFIX}", work / f"heldout{n_heldout}{PACK_SUFFIX}"
        subset_pack(source, 0, n_train, train)
        subset_pack(source, n_train, n_heldout, heldout)
        return train, heldout
    files = list_images(source)
    if len(files) < n_train + n_heldout:
        raise SystemExit(f"bench_augment: {source} has {len(files)} images, fewer than --train + --heldout")
    out = []
    for name, chunk in (("train", files[:n_train]), ("heldout", files[n_train:n_train + n_heldout])):
        folder = work / f"{name}{len(chunk)}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in chunk:
            link = folder / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
        out.append(folder)
    return out[0], out[1]


def train_all(modes, train_dir: Path, work: Path, args) -> dict:
    """Start every mode's run (at most args.jobs at once); wall seconds per mode."""
    pending = list(modes)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    start_kimg = 0.0
    if args.init_from:  # the image count continues from the prior's: --kimg more on top of it
        prior = load_gan(resolve(args.init_from, quiet=True), with_discriminator=False)
        start_kimg = float(prior.metadata.get("kimg", 0))
    seconds = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    while pending or running:
        while pending and len(running) < args.jobs:
            mode = pending.pop(0)
            cmd = [sys.executable, "-m", "rlse_fast", "train-prior", str(train_dir), str(work / mode),
                   "--augment", mode, "--ada-kimg", str(args.ada_kimg), "--kimg", str(args.kimg + start_kimg),
                   "--minutes", str(args.max_minutes), "--seed", str(args.seed), "--threads", "1",
                   "--device", args.device, "--batch", str(args.batch),
                   "--sample-minutes", "60", "--export-minutes", "600", "--quiet"]
            if args.init_from:
                cmd += ["--init-from", args.init_from]
            if args.ema_kimg is not None:
                cmd += ["--ema-kimg", str(args.ema_kimg)]
            print(" ".join(cmd), flush=True)
            running[mode] = (subprocess.Popen(cmd, env=env), time.monotonic())
        time.sleep(2)
        for mode, (proc, t0) in list(running.items()):
            if proc.poll() is not None:
                if proc.returncode != 0:
                    raise SystemExit(f"bench_augment: the {mode} run failed (exit {proc.returncode})")
                seconds[mode] = time.monotonic() - t0
                del running[mode]
                print(f"{mode}: done in {seconds[mode]:.0f} s", flush=True)
    return seconds


@torch.no_grad()
def logits(D, faces: torch.Tensor, batch: int = 100) -> torch.Tensor:
    return torch.cat([D(to_float(faces[i:i + batch])).flatten() for i in range(0, len(faces), batch)])


@torch.no_grad()
def alexnet_features(images: torch.Tensor, trunk, batch: int = 100) -> torch.Tensor:
    """images (N, 3, R, R) in [-1, 1] -> (N, 1152) pooled LPIPS-AlexNet activations."""
    from rlse_fast.metrics.lpips import SCALE, SHIFT

    shift, scale = torch.tensor(SHIFT).view(1, 3, 1, 1), torch.tensor(SCALE).view(1, 3, 1, 1)
    out = []
    for i in range(0, len(images), batch):
        x = F.interpolate(images[i:i + batch].float(), size=128, mode="bilinear", align_corners=False)
        taps = trunk((x - shift) / scale)
        out.append(torch.cat([t.mean(dim=[2, 3]) for t in taps], dim=1))
    return torch.cat(out).double()


def kid(a: torch.Tensor, b: torch.Tensor, subsets: int = 20, size: int = 250, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 over random subsets -> (mean, std over subsets)."""
    g = torch.Generator().manual_seed(seed)
    d = a.shape[1]
    size = min(size, len(a), len(b))
    vals = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=g)[:size]]
        y = b[torch.randperm(len(b), generator=g)[:size]]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        n = size
        mmd = ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
               - 2 * kxy.mean())
        vals.append(float(mmd))
    t = torch.tensor(vals)
    return float(t.mean()), float(t.std())


def evaluate(mode: str, prior: Path, log: Path | None, train_faces, heldout_faces, trunk, heldout_feats,
             n_samples: int) -> dict:
    gan = load_gan(prior)
    G, D = gan.generator.float(), gan.discriminator.float()
    lt, lh = logits(D, train_faces), logits(D, heldout_faces)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(n_samples, G.z_dim, generator=g)
    with torch.no_grad():
        samples = torch.cat([G(zc, noise_mode="const") for zc in z.split(100)])
    k_mean, k_std = kid(alexnet_features(samples, trunk), heldout_feats)
    row = {"mode": mode, "kimg": float(gan.metadata.get("kimg", "nan"))}
    if log is not None:
        last = [json.loads(line) for line in log.read_text().splitlines()][-1]
        row.update({k: last.get(k) for k in ("kimg", "hours", "p", "r_t", "loss_G", "loss_D")})
    return {**row, "logit_train": float(lt.mean()), "logit_heldout": float(lh.mean()),
            "logit_gap": float(lt.mean() - lh.mean()),
            "sign_gap": float(lt.sign().mean() - lh.sign().mean()),
            "kid_alexnet_x1000": k_mean * 1000, "kid_alexnet_std_x1000": k_std * 1000}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "celeba_train"),
                   help="folder of faces, or a packed .faces file (runs/prior-gpu/data/... on a device machine)")
    p.add_argument("--work", default="/tmp/bench_augment", help="run folders and subset links go here")
    p.add_argument("--train", type=int, default=500, help="training faces")
    p.add_argument("--heldout", type=int, default=1000, help="held-out faces (KID reference, logit gap)")
    p.add_argument("--modes", default="none,diffaug,ada")
    p.add_argument("--kimg", type=float, default=4.0, help="images per run, thousands (the same for every mode)")
    p.add_argument("--max-minutes", type=float, default=25.0, help="a run stops here even if short of --kimg")
    p.add_argument("--ada-kimg", type=float, default=5.0,
                   help="ADA speed: the paper's 500 cannot move p within a CPU-sized run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init-from", default=None,
                   help="start every run from this prior (e.g. celeba64: fine-tuning on a small set, where D "
                        "overfits within a CPU-sized run)")
    p.add_argument("--ema-kimg", type=float, default=None,
                   help="G EMA half-life (train-prior's default 10 would hide a short fine-tune in the EMA)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (1 on a GPU)")
    p.add_argument("--device", default="cpu", help="of the training runs (the measurements run on the CPU)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the measurements")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--eval-only", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    modes = args.modes.split(",")
    work = Path(args.work)
    train_dir, heldout_dir = make_subsets(Path(args.data), work, args.train, args.heldout)
    seconds = {} if args.eval_only else train_all(modes, train_dir, work, args)

    from rlse_fast.metrics.lpips import LPIPS

    trunk = LPIPS.from_checkpoint().trunk
    train_faces = load_faces(train_dir, 64, progress=False)
    heldout_faces = load_faces(heldout_dir, 64, progress=False)
    heldout_feats = alexnet_features(to_float(heldout_faces), trunk)
    train_feats = alexnet_features(to_float(train_faces), trunk)
    floor = kid(train_feats, heldout_feats)
    rows = []
    if args.init_from:  # where every run started
        rows.append(evaluate("start", resolve(args.init_from, quiet=True), None, train_faces, heldout_faces, trunk,
                             heldout_feats, args.samples))
    for mode in modes:
        row = evaluate(mode, work / mode / "prior-64.safetensors", work / mode / "log.jsonl", train_faces,
                       heldout_faces, trunk, heldout_feats, args.samples)
        row["wall_seconds"] = round(seconds[mode], 1) if mode in seconds else None
        rows.append(row)
    for row in rows:
        print(json.dumps(row), flush=True)
    result = {
        "command": "python " + " ".join([str(Path(sys.argv[0]).relative_to(ROOT)) if Path(sys.argv[0]).is_absolute()
                                         else sys.argv[0]] + sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"), "machine": "2 shared CPU cores (loaded by other helpers), 1 thread per run",
        "settings": {k: getattr(args, k) for k in ("train", "heldout", "kimg", "max_minutes", "ada_kimg", "seed",
                                                   "samples", "device", "batch", "init_from", "ema_kimg")},
        "kid_note": "KID estimator on pooled LPIPS-AlexNet features at 128 px, x1000; not Inception KID",
        "kid_floor_train_vs_heldout_x1000": floor[0] * 1000, "rows": rows,
    }
    print(f"{'mode':8} {'kimg':>6} {'p':>6} {'r_t':>6} {'logit gap':>9} {'sign gap':>8} {'KID-Alex x1e3':>14}")
    for r in rows:
        p_txt = f"{r['p']:.3f}" if r.get("p") is not None else "-"
        rt = f"{r['r_t']:.2f}" if r.get("r_t") is not None else "-"
        print(f"{r['mode']:8} {r['kimg']:6.2f} {p_txt:>6} {rt:>6} {r['logit_gap']:9.3f} {r['sign_gap']:8.3f} "
              f"{r['kid_alexnet_x1000']:8.2f} ± {r['kid_alexnet_std_x1000']:.2f}")
    print(f"KID floor (training faces vs held-out faces): {floor[0] * 1000:.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
