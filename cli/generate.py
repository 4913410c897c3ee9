"""`smelt generate`: stream a completion from a checkpoint to the terminal."""

from __future__ import annotations

import argparse
import itertools
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    gen = subparsers.add_parser("generate", help="generate text from a checkpoint")
    gen.add_argument(
        "--checkpoint",
        required=True,
        metavar="URI",
        help="a run's output URI (its newest complete checkpoint) or one step directory (required)",
    )
    gen.add_argument("--prompt", required=True, help="text to continue (required)")
    gen.add_argument(
        "--max-new-tokens", type=int, default=64, help="tokens to generate (default: %(default)s)"
    )
    gen.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="sampling temperature; 0 is greedy (default: %(default)s)",
    )
    gen.add_argument(
        "--top-k", type=int, default=None, help="sample among the K likeliest (default: off)"
    )
    gen.add_argument(
        "--top-p",
        type=float,
        default=None,
        help="sample within this probability mass (default: off)",
    )
    gen.add_argument(
        "--repetition-penalty",
        type=float,
        default=1.0,
        help="penalty for tokens already seen; 1.0 is off (default: %(default)s)",
    )
    gen.add_argument("--seed", type=int, default=None, help="sampling seed (default: a random one)")
    gen.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    gen.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from smelt.chat import TextStream
    from smelt.errors import InputError
    from smelt.model.generate import stream
    from smelt.training.inference import open_checkpoint

    opened = open_checkpoint(args.checkpoint, device=args.device)
    tokenizer = opened.require_tokenizer()
    prompt = tokenizer.encode(args.prompt).ids
    if not prompt:
        raise InputError("--prompt encodes to no tokens; give some text")
    eos = tokenizer.token_to_id("<|endoftext|>")
    generator = None
    if args.seed is not None:
        generator = torch.Generator(device=args.device).manual_seed(args.seed)
    tokens = stream(
        opened.model,
        prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        stop_token_ids=[eos] if eos is not None else [],
        generator=generator,
    )
    # The settings and the prompt's length are checked when the first token is drawn: draw it
    # before printing anything, so that a refused request prints only its error.
    first = list(itertools.islice(tokens, 1))
    text = TextStream(tokenizer)
    sys.stdout.write(args.prompt)
    for token in itertools.chain(first, tokens):
        sys.stdout.write(text.push(token))
        sys.stdout.flush()
    sys.stdout.write(text.finish() + "\n")
    sys.stdout.flush()
    return 0
