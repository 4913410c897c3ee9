"""`smelt push`: upload what only the local copy of an s3:// run holds.

Training waits a bounded time for its uploads (`--upload-timeout`); when S3 stays away longer,
the newest checkpoints exist only in the run's local copy. This uploads them (each verified,
its marker last) and the run files. Running the same `smelt train` command again does it too.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    push = subparsers.add_parser(
        "push", help="upload a run's local-only checkpoints and run files to S3"
    )
    push.add_argument(
        "--output", required=True, metavar="URI", help="the s3:// run (its --output) (required)"
    )
    push.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the run's local copy, as given to `smelt train` (default: $SMELT_CACHE_DIR or "
        "~/.cache/smelt, then runs/<hash of --output>)",
    )
    push.set_defaults(handler=run_push)


def run_push(args: argparse.Namespace) -> int:
    from smelt.storage import is_s3
    from smelt.training.manager import CheckpointManager

    if not is_s3(args.output):
        print(f"{args.output} is local: nothing to push")
        return 0
    manager = CheckpointManager(args.output, cache_dir=args.cache_dir)
    steps = manager.push()
    names = ", ".join(f"step {s}" for s in steps) or "no checkpoint was missing"
    print(f"pushed {manager.local.root} to {manager.output}: {names}; run files updated")
    return 0
