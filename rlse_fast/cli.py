"""The `rlse-fast` command: one entry point, one subcommand per module in rlse_fast/commands."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import RunFailure, UserError
from .memory import keep_freed_memory
from .openmp import prefer_passive_wait

prefer_passive_wait()  # before any subcommand's module imports torch (libgomp reads it when loaded)

# Each name is a module rlse_fast/commands/<name>.py with `register(subparsers)`; the
# parser it adds sets `func` (called with the parsed args, returns an exit code or None).
COMMANDS = ("sr", "photo", "photo_eval", "info", "convert", "fetch_assets", "train_prior", "eval", "kernels")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlse-fast",
        description="Super-resolve low-resolution faces by exploring a StyleGAN2's latent space (RLSE).",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"rlse-fast {__version__}",
                        help="print rlse-fast's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"rlse_fast.commands.{name}").register(sub)
    parser.commands = sub.choices  # name -> the command's parser
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the command's own usage, not the top-level one, says what it takes
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    keep_freed_memory()  # CPU runs: no page-faulting of every large temporary (see memory.py)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe (`| head`) shows here, where it is handled
    except BrokenPipeError:
        # The reader went away: nothing more to say, and no traceback from the exit's flush.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is no file (captured): nothing to flush at exit
            pass
        return 141
    except (UserError, RunFailure) as exc:
        if args.debug:  # the traceback too, and the same exit code
            import traceback

            traceback.print_exc()
        print(f"rlse-fast {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # a command that stopped cleanly says what it saved
        print(f"rlse-fast {args.command}: interrupted" + (f": {exc}" if str(exc) else ""), file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    finally:
        from .launch import end

        end()  # leave the torchrun job's process group, if the command joined one
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
