"""`smelt shards build|verify`: tokenize a corpus into uint32 shards, and check them."""

from __future__ import annotations

import argparse

from smelt.cli.options import add_runner_arguments
from smelt.training.shard_writer import DEFAULT_SHARD_TOKENS


def register(subparsers: argparse._SubParsersAction) -> None:
    shards = subparsers.add_parser("shards", help="build or verify token shards")
    commands = shards.add_subparsers(dest="shards_command", required=True, metavar="COMMAND")
    build = commands.add_parser("build", help="tokenize a corpus into train/val shards")
    build.add_argument("--corpus", required=True, metavar="URI")
    build.add_argument(
        "--tokenizer", required=True, metavar="URI", help="tokenizer directory or tokenizer.json"
    )
    build.add_argument("--output", required=True, metavar="URI")
    build.add_argument("--val-fraction", type=float, default=0.01)
    build.add_argument(
        "--shard-tokens",
        type=int,
        default=DEFAULT_SHARD_TOKENS,
        help="most tokens per shard (documents are never split)",
    )
    add_runner_arguments(build)
    build.set_defaults(handler=run_build)
    verify = commands.add_parser("verify", help="check every shard against the manifest")
    verify.add_argument("uri", metavar="URI")
    verify.set_defaults(handler=run_verify)


def run_build(args: argparse.Namespace) -> int:
    from smelt.flows.shards_build import shards_build
    from smelt.training.shard_writer import plan_build

    # inputs checked here first, so that a user error is one line, not a failed flow run
    plan_build(args.corpus, args.tokenizer, args.output, args.val_fraction, args.shard_tokens)
    summary = shards_build(
        corpus=args.corpus,
        tokenizer=args.tokenizer,
        output=args.output,
        val_fraction=args.val_fraction,
        shard_tokens=args.shard_tokens,
        runner=args.runner,
        workers=args.workers,
        dask_address=args.dask_address,
    )
    print(
        f"shards: {summary['shards']} -> {summary['output']} ({summary['train_tokens']:,} train"
        f" + {summary['val_tokens']:,} val tokens, {summary['docs']:,} documents, "
        f"{summary['empty_docs_skipped']:,} empty skipped)"
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from smelt.training.shard_verify import verify_shards

    print(verify_shards(args.uri).summary())
    return 0
