"""`smelt shards build|verify`: tokenize a corpus into uint32 shards, and check them."""

from __future__ import annotations

import argparse

from smelt.cli.options import add_runner_arguments
from smelt.prep.defaults import DEFAULT_SHARD_TOKENS, DEFAULT_VAL_FRACTION


def register(subparsers: argparse._SubParsersAction) -> None:
    shards = subparsers.add_parser("shards", help="build or verify token shards")
    commands = shards.add_subparsers(dest="shards_command", required=True, metavar="COMMAND")
    build = commands.add_parser(
        "build",
        help="tokenize a corpus into train/val shards",
        description="Tokenize a finished corpus into uint32 train/val shards and their "
        "manifest. A rerun resumes an interrupted build, and keeps a finished one built from "
        "the same corpus, tokenizer and settings.",
    )
    build.add_argument(
        "--corpus", required=True, metavar="URI", help="a finished `smelt corpus build` output"
    )
    build.add_argument(
        "--tokenizer", required=True, metavar="URI", help="tokenizer directory or tokenizer.json"
    )
    build.add_argument(
        "--output", required=True, metavar="URI", help="directory (or s3:// prefix) of the shards"
    )
    build.add_argument(
        "--val-fraction",
        type=float,
        default=DEFAULT_VAL_FRACTION,
        metavar="F",
        help="share of documents held out for the val split, chosen by a hash of their id "
        "(default: %(default)s)",
    )
    build.add_argument(
        "--shard-tokens",
        type=int,
        default=DEFAULT_SHARD_TOKENS,
        metavar="N",
        help="most tokens per shard; documents are never split (default: %(default)s)",
    )
    add_runner_arguments(build)
    build.add_argument(
        "--force",
        action="store_true",
        help="build again from scratch even when OUTPUT holds shards current for these inputs "
        "and settings (default: keep them; resume an interrupted build)",
    )
    build.set_defaults(handler=run_build)
    verify = commands.add_parser(
        "verify",
        help="check every shard against the manifest",
        description="Read every shard and check its size, SHA-256, token ids and index against "
        "the manifest; exit 0 only when all match.",
    )
    verify.add_argument("uri", metavar="URI", help="shard set root (or its manifest.json)")
    verify.set_defaults(handler=run_verify)


def run_build(args: argparse.Namespace) -> int:
    from smelt.cli import api, stopping
    from smelt.parallel import check_workers
    from smelt.prep.shards import check_replaceable, is_current, plan_build

    # inputs checked here first, so that a user error is one line, not a failed flow run
    check_workers(args.workers)
    plan = plan_build(
        args.corpus, args.tokenizer, args.output, args.val_fraction, args.shard_tokens
    )
    if args.force or not is_current(plan.output_uri, plan.fingerprint):
        check_replaceable(plan, args.force)
    api.prepare()
    stopping.report_progress(lambda: build_progress(plan.output_uri, len(plan.partitions)))
    from smelt.flows.shards_build import shards_build

    api.ready()
    summary = shards_build(
        corpus=args.corpus,
        tokenizer=args.tokenizer,
        output=args.output,
        val_fraction=args.val_fraction,
        shard_tokens=args.shard_tokens,
        runner=args.runner,
        workers=args.workers,
        dask_address=args.dask_address,
        force=args.force,
    )
    state = "up to date, " if summary["skipped"] else ""
    print(
        f"shards: {state}{summary['shards']} -> {summary['output']} "
        f"({summary['train_tokens']:,} train + {summary['val_tokens']:,} val tokens, "
        f"{summary['docs']:,} documents, {summary['empty_docs_skipped']:,} empty skipped)"
    )
    return 0


def build_progress(output_uri: str, partitions: int) -> str:
    """What a stopped build keeps: its tokenized partitions and packed shards (markers)."""
    from smelt.prep.layout import ShardsLayout
    from smelt.storage import exists, list_files

    layout = ShardsLayout.at(output_uri)
    if exists(layout.manifest):
        return f"the shard set {layout.root} was finished"

    def done(directory: str) -> int:
        return len(list_files(directory, suffixes=[layout.MARKER])) if exists(directory) else 0

    parts, shards = done(layout.parts_dir), done(layout.shard_markers_dir)
    return f"{parts} of {partitions} partitions tokenized, {shards} shards packed in {layout.root}"


def run_verify(args: argparse.Namespace) -> int:
    from smelt.prep.shard_check import verify_shards

    print(verify_shards(args.uri).summary())
    return 0
