"""`smelt generate`: stream a completion from a checkpoint to the terminal."""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    gen = subparsers.add_parser("generate", help="generate text from a checkpoint")
    gen.add_argument(
        "--checkpoint",
        required=True,
        metavar="URI",
        help="a run's output URI (newest complete checkpoint) or a step directory",
    )
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    gen.add_argument("--top-k", type=int, default=None)
    gen.add_argument("--top-p", type=float, default=None)
    gen.add_argument("--repetition-penalty", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--device", default="cpu")
    gen.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    import torch
    from tokenizers import Tokenizer

    from smelt.chat import TextStream
    from smelt.errors import InputError
    from smelt.model.checkpoint_io import load_model
    from smelt.model.generate import stream
    from smelt.training.run_dir import locate_checkpoint

    step_dir, tokenizer_path = locate_checkpoint(args.checkpoint)
    if tokenizer_path is None:
        raise InputError(
            f"no tokenizer.json beside the checkpoint {step_dir}: the run was "
            "trained without one; train with --tokenizer"
        )
    tokenizer = Tokenizer.from_file(tokenizer_path)
    model = load_model(os.path.join(step_dir, "model.safetensors"), device=args.device)
    prompt = tokenizer.encode(args.prompt).ids
    if not prompt:
        raise InputError("--prompt encodes to no tokens; give some text")
    eos = tokenizer.token_to_id("<|endoftext|>")
    generator = None
    if args.seed is not None:
        generator = torch.Generator(device=args.device).manual_seed(args.seed)
    text = TextStream(tokenizer)
    sys.stdout.write(args.prompt)
    for token in stream(
        model,
        prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        stop_token_ids=[eos] if eos is not None else [],
        generator=generator,
    ):
        sys.stdout.write(text.push(token))
        sys.stdout.flush()
    sys.stdout.write(text.finish() + "\n")
    sys.stdout.flush()
    return 0
