"""`smelt nightly`: one night of new raw objects -> corpus -> shards (the `nightly-build` flow)."""

from __future__ import annotations

import argparse
from datetime import date

from smelt.cli.options import add_runner_arguments
from smelt.prep.defaults import DEFAULT_SHARD_TOKENS, DEFAULT_VAL_FRACTION


def register(subparsers: argparse._SubParsersAction) -> None:
    nightly = subparsers.add_parser(
        "nightly",
        help="build a night's corpus and shards from new raw objects",
        description="The nightly deployment's flow, run once: the input objects that no "
        "--dedup-against corpus consumed in this version are built into the night's corpus "
        "(deduplicated against those corpora), then tokenized with the main tokenizer into the "
        "night's shards. A night with nothing new writes nothing.",
    )
    nightly.add_argument(
        "--input", action="append", required=True, metavar="URI", help="raw objects (repeatable)"
    )
    nightly.add_argument(
        "--corpus",
        required=True,
        metavar="URI",
        help="the night's corpus; {date} becomes the night",
    )
    nightly.add_argument(
        "--dedup-against",
        action="append",
        default=[],
        metavar="URI",
        help="the main corpus and earlier nights (repeatable; a glob means every finished "
        "corpus it matches)",
    )
    nightly.add_argument(
        "--tokenizer", required=True, metavar="URI", help="the main tokenizer (never retrained)"
    )
    nightly.add_argument(
        "--shards", required=True, metavar="URI", help="the night's shards; {date} as in --corpus"
    )
    nightly.add_argument("--config", metavar="FILE", help="corpus config (TOML or YAML)")
    nightly.add_argument(
        "--night",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="the night to name the outputs after (default: today, UTC)",
    )
    nightly.add_argument(
        "--val-fraction",
        type=float,
        default=DEFAULT_VAL_FRACTION,
        metavar="F",
        help="share of documents held out for val",
    )
    nightly.add_argument(
        "--shard-tokens",
        type=int,
        default=DEFAULT_SHARD_TOKENS,
        metavar="N",
        help="tokens per shard",
    )
    add_runner_arguments(nightly)
    nightly.set_defaults(handler=run_nightly)


def run_nightly(args: argparse.Namespace) -> int:
    from smelt.cli import api
    from smelt.corpus.config import resolve_config
    from smelt.prep.tokenizer_files import load_tokenizer

    resolve_config(args.config, {})
    load_tokenizer(args.tokenizer)
    api.prepare()  # before Prefect is imported (see smelt.cli.api)
    from smelt.flows.nightly import NightlyParams, nightly_build

    api.ready()

    params = NightlyParams(
        inputs=args.input,
        corpus=args.corpus,
        dedup_against=args.dedup_against,
        tokenizer=args.tokenizer,
        shards=args.shards,
        config_path=args.config,
        val_fraction=args.val_fraction,
        shard_tokens=args.shard_tokens,
        runner=args.runner,
        workers=args.workers,
        dask_address=args.dask_address,
        night=args.night,
    )
    outcome = nightly_build(params)
    counts = outcome["inputs"]
    print(
        f"night {outcome['date']}: {outcome['status']}; input objects: {counts['new']} new, "
        f"{counts['changed']} changed, {counts['skipped']} unchanged (skipped); "
        f"{counts['superseded_docs']} earlier document(s) superseded"
    )
    if outcome["status"] != "nothing new":
        print(f"corpus: {outcome['corpus']} ({outcome['kept']:,} documents kept)")
    if outcome["shards"]:
        print(f"shards: {outcome['shards']}")
    for uri in outcome["rebuilt_shards"]:
        print(f"rebuilt without superseded documents: {uri}")
    return 0
