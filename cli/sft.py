"""`smelt sft`: fine-tune a trained run on conversations (`sft` flow).

Single process: runs the `sft` Prefect flow with a progress bar. Under torchrun (`torchrun
--nproc-per-node N -m smelt.cli.main sft ...`, or `-m smelt.sft.run` with the same flags) every
rank runs fine-tuning directly, without Prefect; rank 0 tokenizes the conversations.
"""

from __future__ import annotations

import argparse
import os

from smelt.sft.config import SFTConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    sft = subparsers.add_parser(
        "sft",
        help="fine-tune a trained run on conversations",
        description="Fine-tune --base on conversations (OpenAI messages, ShareGPT or Alpaca "
        "records) into --output, a chat model: loss on the assistant's tokens only, several "
        "conversations packed per sequence. The same command again resumes.",
    )
    SFTConfig.add_arguments(sft)
    sft.add_argument("--no-progress", action="store_true", help="no progress bar (default: off)")
    sft.set_defaults(handler=run_sft)


def run_sft(args: argparse.Namespace) -> int:
    from smelt.cli.train import TrainProgress, print_summary
    from smelt.training.distributed import under_torchrun

    config = SFTConfig.from_args(args)
    if under_torchrun():
        from smelt.sft.run import run_sft as run_directly

        data, result = run_directly(config)
        summary = {
            "step": result.step,
            "tokens": result.tokens,
            "loss": result.loss,
            "val_loss": result.val_loss,
            "output": result.output,
            "already_done": result.already_done,
            "data": data,
        }
    else:
        from smelt.cli import api

        api.prepare()  # before Prefect is imported (see smelt.cli.api)
        from smelt.flows.sft import sft_flow

        api.ready()
        steps = config.train_config().max_steps
        with TrainProgress(steps, enabled=not args.no_progress, label="sft") as on_step:
            summary = sft_flow(config=config, on_step=on_step)
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary["data"]["summary"])
    print_summary(summary)
    return 0
