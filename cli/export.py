"""`smelt export-hf`: a checkpoint to a folder that transformers loads without remote code."""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export-hf", help="export a checkpoint to Hugging Face format")
    export.add_argument("--checkpoint", required=True, metavar="URI")
    export.add_argument("--output", required=True, metavar="DIR")
    export.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    import torch

    from smelt.errors import InputError
    from smelt.model.checkpoint_io import load_weights
    from smelt.model.export_hf import export_hf
    from smelt.serving.chat_model import run_chat_template
    from smelt.training.run_dir import locate_checkpoint

    step_dir, tokenizer_path = locate_checkpoint(args.checkpoint)
    state, config = load_weights(os.path.join(step_dir, "model.safetensors"))
    if config is None:
        raise InputError(f"{step_dir}/model.safetensors records no model config")
    chat_template = run_chat_template(args.checkpoint) if tokenizer_path else None
    folder = export_hf(
        (config, state),
        args.output,
        tokenizer_path=tokenizer_path,
        dtype=getattr(torch, args.dtype),
        chat_template=chat_template,
    )
    note = "" if tokenizer_path else " (no tokenizer: the run recorded none)"
    if chat_template is not None:
        note = " (chat model: ChatML template, <|im_end|> ends a turn)"
    print(f"exported {step_dir} to {folder}{note}")
    return 0
