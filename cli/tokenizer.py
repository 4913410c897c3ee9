"""`smelt tokenizer train`: byte-level BPE on a sample of a corpus (the `tokenizer-train` flow)."""

from __future__ import annotations

import argparse
import sys

from smelt.prep.defaults import DEFAULT_SAMPLE_BYTES, DEFAULT_VOCAB_SIZE


def register(subparsers: argparse._SubParsersAction) -> None:
    tok = subparsers.add_parser("tokenizer", help="train a BPE tokenizer on a corpus")
    commands = tok.add_subparsers(dest="tokenizer_command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train byte-level BPE on a corpus sample",
        description="Train a byte-level BPE tokenizer on a sample of a finished corpus. A rerun "
        "with the same corpus and settings keeps the tokenizer already there.",
    )
    train.add_argument(
        "--corpus", required=True, metavar="URI", help="a finished `smelt corpus build` output"
    )
    train.add_argument(
        "--output", required=True, metavar="URI", help="directory for tokenizer.json and friends"
    )
    train.add_argument(
        "--vocab-size",
        type=int,
        default=DEFAULT_VOCAB_SIZE,
        metavar="N",
        help="vocabulary size to reach, special tokens included (default: %(default)s)",
    )
    train.add_argument(
        "--sample-bytes",
        type=int,
        default=DEFAULT_SAMPLE_BYTES,
        metavar="N",
        help="bytes of corpus text to train on, spread over all partitions (default: %(default)s)",
    )
    train.add_argument(
        "--force",
        action="store_true",
        help="train again even when OUTPUT holds a tokenizer current for this corpus and "
        "these settings (default: keep it)",
    )
    train.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from smelt.cli import api, stopping
    from smelt.prep.tokenizer import TokenizerReport, check_request

    # one line before Prefect starts, for a bad setting, corpus or output
    check_request(args.corpus, args.vocab_size, args.sample_bytes, output_uri=args.output)
    api.prepare()
    stopping.report_progress(
        lambda: (
            f"no tokenizer was finished (training is one step); {args.output} holds no "
            "report.json for these settings"
        )
    )
    from smelt.flows.tokenizer_train import tokenizer_train

    api.ready()
    summary = tokenizer_train(
        corpus=args.corpus,
        output=args.output,
        vocab_size=args.vocab_size,
        sample_bytes=args.sample_bytes,
        force=args.force,
    )
    report = TokenizerReport.from_dict(summary)
    state = "up to date, " if report.skipped else ""
    print(
        f"tokenizer: {state}{report.vocab_size:,} tokens -> {summary['output']} "
        f"({report.bytes_per_token_text()})"
    )
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
