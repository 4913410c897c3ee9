"""`smelt tokenizer train`: byte-level BPE on a sample of a corpus (the `tokenizer-train` flow)."""

from __future__ import annotations

import argparse

from smelt.training.tokenizer import DEFAULT_SAMPLE_BYTES, DEFAULT_VOCAB_SIZE


def register(subparsers: argparse._SubParsersAction) -> None:
    tok = subparsers.add_parser("tokenizer", help="train a BPE tokenizer on a corpus")
    commands = tok.add_subparsers(dest="tokenizer_command", required=True, metavar="COMMAND")
    train = commands.add_parser("train", help="train byte-level BPE on a corpus sample")
    train.add_argument("--corpus", required=True, metavar="URI")
    train.add_argument("--output", required=True, metavar="URI")
    train.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE)
    train.add_argument(
        "--sample-bytes",
        type=int,
        default=DEFAULT_SAMPLE_BYTES,
        help="bytes of corpus text to train on, spread over all partitions",
    )
    train.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from smelt.flows.tokenizer_train import tokenizer_train
    from smelt.training.tokenizer import check_request

    check_request(args.corpus, args.vocab_size)  # a one-line error before Prefect starts
    summary = tokenizer_train(
        corpus=args.corpus,
        output=args.output,
        vocab_size=args.vocab_size,
        sample_bytes=args.sample_bytes,
    )
    bpt = summary["bytes_per_token"]
    print(
        f"tokenizer: {summary['vocab_size']:,} tokens -> {summary['output']} "
        f"({'n/a' if bpt is None else f'{bpt:.3f}'} bytes/token on held-out documents)"
    )
    return 0
