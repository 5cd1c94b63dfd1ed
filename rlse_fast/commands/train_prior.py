"""`rlse-fast train-prior`: train a small StyleGAN2 face prior (G + D) on a folder of faces."""
from __future__ import annotations

import argparse

from ..errors import UserError
from ..train.data import list_images
from ..train.augment import MODES
from ..train.config import OPS, PRECISIONS, TrainConfig, config_from_kwargs
from ..train.prior import train


def register(subparsers: argparse._SubParsersAction) -> None:
    d = TrainConfig()
    p = subparsers.add_parser(
        "train-prior",
        help="train a small StyleGAN2 face prior (generator + discriminator)",
        description=(
            "Train a StyleGAN2 (generator + discriminator) on a folder of aligned face images, "
            "e.g. ../shared/data/celeba_train. Images are centre-cropped around the face, resized "
            "once and cached (~/.cache/rlse-fast/datasets or $RLSE_FAST_HOME/datasets). OUT is the run "
            "folder: checkpoint.json + shards (resumable, every few minutes), samples/latest.png, log.jsonl and the "
            "exported prior prior-<res>.safetensors (generator EMA + discriminator, float16)."
        ),
        epilog=("example: rlse-fast train-prior ../shared/data/celeba_train /tmp/prior_run --minutes 120 "
                "--export rlse_fast/data/celeba64.safetensors   (continue later with --resume)"),
    )
    p.add_argument("data_dir", metavar="DATA_DIR",
                   help="folder of face images (jpg/png), or a packed .faces file (benchmarks/pack_faces.py)")
    p.add_argument("out", metavar="OUT", help="run folder (created if needed)")
    p.add_argument("--resolution", type=int, default=d.resolution, help=f"image size (default {d.resolution})")
    p.add_argument("--batch", type=int, default=d.batch, help=f"minibatch size, multiple of 4 (default {d.batch})")
    p.add_argument("--kimg", type=float, default=d.kimg,
                   help=f"stop after this many thousand images in total, across resumes (default {d.kimg:g})")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop (checkpoint + export) after this many minutes of this run (default: no limit)")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                   help="continue from OUT's checkpoint, or from CKPT (a run folder or its checkpoint.json); "
                        "with --minutes 0 it only re-exports")
    p.add_argument("--init-from", default=None, metavar="PRIOR",
                   help="start a new run from an exported prior (G_ema + D safetensors), e.g. when the checkpoint "
                        "is lost; fresh optimisers, the architecture is the prior's")
    p.add_argument("--export", default=None, metavar="PATH",
                   help="also write the prior here (e.g. rlse_fast/data/celeba64.safetensors)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--device", default=d.device, help="auto (CUDA if available), cpu, cuda, cuda:N (default auto)")
    p.add_argument("--threads", type=int, default=d.threads,
                   help=f"CPU threads for torch (default {d.threads}, leaving the other cores free)")
    arch = p.add_argument_group("architecture (ignored with --resume: the checkpoint's is used)")
    arch.add_argument("--z-dim", type=int, default=d.z_dim, help=f"size of z and w (default {d.z_dim})")
    arch.add_argument("--mapping-layers", type=int, default=d.mapping_layers, help=f"(default {d.mapping_layers})")
    arch.add_argument("--channel-base", type=int, default=d.channel_base,
                      help=f"channels at resolution r: min(base // r, max) (default {d.channel_base})")
    arch.add_argument("--channel-max", type=int, default=d.channel_max, help=f"(default {d.channel_max})")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr})")
    opt.add_argument("--gamma", type=float, default=None,
                     help="R1 weight (default 0.0002 * resolution^2 / batch, 0.05 at 64 px and batch 16)")
    opt.add_argument("--ema-kimg", type=float, default=d.ema_kimg, help=f"G EMA half-life (default {d.ema_kimg:g})")
    opt.add_argument("--mixing", type=float, default=d.mixing_prob, help="style-mixing probability (default 0)")
    aug = p.add_argument_group("augmentation of every image D sees (small data sets)")
    aug.add_argument("--augment", choices=MODES, default=d.augment,
                     help=f"ada: adaptive 'bgc' (Karras et al. 2020); diffaug: fixed DiffAugment color,translation,"
                          f"cutout; none (default {d.augment})")
    aug.add_argument("--ada-target", type=float, default=d.ada_target,
                     help=f"ADA: target of r_t = E[sign(D(real))] (default {d.ada_target:g})")
    aug.add_argument("--ada-kimg", type=float, default=d.ada_kimg,
                     help=f"ADA: thousands of images for p to go from 0 to 1 (default {d.ada_kimg:g})")
    speed = p.add_argument_group("speed")
    speed.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                       help="bf16 autocast of G's synthesis and D's blocks (mapping, D epilogue, losses, R1 in "
                            "fp32); auto: bf16 on CUDA, fp32 on CPU (default auto)")
    speed.add_argument("--ops", choices=OPS, default=d.ops,
                       help="ops of the G and D passes: auto (native kernels where faster) or ref; R1 always ref")
    speed.add_argument("--channels-last", action="store_true", help="run D in channels-last memory format")
    io = p.add_argument_group("outputs")
    io.add_argument("--checkpoint-minutes", type=float, default=d.checkpoint_minutes,
                    help=f"checkpoint interval (default {d.checkpoint_minutes:g})")
    io.add_argument("--log-minutes", type=float, default=d.log_minutes,
                    help=f"interval of the statistics lines in OUT/log.jsonl (default {d.log_minutes:g})")
    io.add_argument("--export-minutes", type=float, default=d.export_minutes,
                    help=f"export interval (default {d.export_minutes:g})")
    io.add_argument("--sample-minutes", type=float, default=d.sample_minutes,
                    help=f"sample-grid interval (default {d.sample_minutes:g})")
    io.add_argument("--no-cache", action="store_true", help="decode the images again instead of using the cache")
    io.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    list_images(args.data_dir)  # fail fast, before building anything
    if args.minutes is not None and args.minutes < 0:
        raise UserError(f"--minutes must be >= 0, got {args.minutes}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    cfg = config_from_kwargs(
        resolution=args.resolution, batch=args.batch, kimg=args.kimg, minutes=args.minutes, seed=args.seed,
        device=args.device, threads=args.threads, z_dim=args.z_dim, mapping_layers=args.mapping_layers,
        channel_base=args.channel_base, channel_max=args.channel_max, lr=args.lr, r1_gamma=args.gamma,
        ema_kimg=args.ema_kimg, mixing_prob=args.mixing, checkpoint_minutes=args.checkpoint_minutes,
        export_minutes=args.export_minutes, sample_minutes=args.sample_minutes, log_minutes=args.log_minutes,
        augment=args.augment, ada_target=args.ada_target, ada_kimg=args.ada_kimg, precision=args.precision,
        ops=args.ops, channels_last=args.channels_last,
    )
    if args.resume is not None and args.init_from is not None:
        raise UserError("--resume and --init-from exclude each other: resume a run, or start one from a prior")
    log = (lambda msg: None) if args.quiet else print
    train(args.data_dir, args.out, cfg, resume=args.resume, export_to=args.export, progress=not args.quiet,
          use_cache=not args.no_cache, log=log, init_from=args.init_from)
    return 0
