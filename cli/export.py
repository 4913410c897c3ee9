"""`smelt export-hf`: a checkpoint to a folder that transformers loads without remote code."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export-hf", help="export a checkpoint to Hugging Face format")
    export.add_argument(
        "--checkpoint",
        required=True,
        metavar="URI",
        help="a run's output URI (its newest complete checkpoint) or one step directory (required)",
    )
    export.add_argument("--output", required=True, metavar="DIR", help="folder to write (required)")
    export.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        default="float32",
        help="dtype of the exported weights (default: %(default)s)",
    )
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    import torch

    from smelt.model.export_hf import export_hf
    from smelt.serving.chat_model import run_chat_template
    from smelt.training.inference import open_checkpoint

    opened = open_checkpoint(args.checkpoint)
    chat_template = run_chat_template(args.checkpoint) if opened.tokenizer_path else None
    folder = export_hf(
        opened.model,
        args.output,
        tokenizer_path=opened.tokenizer_path,
        dtype=getattr(torch, args.dtype),
        chat_template=chat_template,
    )
    note = "" if opened.tokenizer_path else " (no tokenizer: the run recorded none)"
    if chat_template is not None:
        note = " (chat model: ChatML template, <|im_end|> ends a turn)"
    print(f"exported {opened.step_dir} to {folder}{note}")
    return 0
