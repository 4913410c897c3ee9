"""Fine-tuning a trained run on conversations: check the base, tokenize once, train, mark chat.

    python -m smelt.sft.run --base RUN --data chats.jsonl --output SFT_RUN [training flags]
    torchrun --nproc-per-node 2 -m smelt.sft.run <same flags>

take the same flags as `smelt sft` (which runs `prepare` and the training loop as the `sft`
Prefect flow, and calls `run_sft` directly under torchrun). The order keeps refusals harmless:
the base is found and checked (a complete checkpoint, its own tokenizer, with ChatML tokens)
and a run whose data changed is refused before anything is written; the conversations are then
tokenized into `RUN/sft_data` (once: a rerun or a resume finds them current), the run gets the
base's chat template (`chat_template.jinja`, which makes it a chat model for `smelt chat`,
`smelt serve` and `export-hf`), and training starts from the base's weights or resumes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from smelt import storage
from smelt.chat import CHAT_TEMPLATE, load_template, require_chatml, save_template
from smelt.errors import ConfigError, InputError, IntegrityError
from smelt.prep.conversation_build import (
    ConversationPlan,
    build_conversation_shards,
    plan_conversations,
    recorded_fingerprint,
)
from smelt.prep.conversation_shards import describe
from smelt.sft.config import SFTConfig
from smelt.training import distributed, warm_start
from smelt.training.config import TrainConfig
from smelt.training.loop import TrainResult, train
from smelt.training.manager import CheckpointManager

log = logging.getLogger(__name__)


def prepare(config: SFTConfig) -> dict[str, Any]:
    """Check the base, tokenize the conversations beside the run (unless current), and give
    the run its chat template. Returns what the data build kept and dropped."""
    training = config.train_config()
    base = warm_start.find_base(config.base)
    require_chatml(_base_tokenizer(base), f"the base {config.base}")
    if training.seq_len > base.model_config.max_seq_len:
        raise ConfigError(
            f"--seq-len {training.seq_len} exceeds the max_seq_len "
            f"{base.model_config.max_seq_len} of the base {config.base}; lower --seq-len"
        )
    template = load_template(base.run.root) or CHAT_TEMPLATE
    plan = plan_conversations(
        config.data,
        base.run.tokenizer,
        config.data_uri,
        seq_len=training.seq_len,
        form=config.data_form,
        long=config.long,
        val_fraction=config.val_fraction,
        template=template,
    )
    if base.tokenizer_sha256 and plan.tokenizer_sha256 != base.tokenizer_sha256:
        raise IntegrityError(
            f"{base.run.tokenizer} is not the tokenizer {base.step.root} was trained with; put "
            "the base run's own tokenizer.json back"
        )
    _refuse_changed_data(plan, training)
    build = build_conversation_shards(plan)
    save_template(config.output, template)
    record = build.record
    return {
        "data": config.data_uri,
        "records": record["records"],
        "kept": record["kept"],
        "truncated": record["truncated"],
        "dropped": record["dropped"],
        "tokens": record["tokens"],
        "loss_tokens": record["loss_tokens"],
        "skipped": build.skipped,
        "summary": describe(record),
    }


def _base_tokenizer(base: warm_start.BaseCheckpoint) -> Any:
    from tokenizers import Tokenizer

    if not storage.exists(base.run.tokenizer):
        raise InputError(
            f"the base {base.source} has no {base.run.tokenizer}: it was trained without a "
            "tokenizer, so its conversations cannot be rendered; train it with --tokenizer"
        )
    return Tokenizer.from_str(storage.read_text(base.run.tokenizer))


def _refuse_changed_data(plan: ConversationPlan, training: TrainConfig) -> None:
    """A run with checkpoints continues only on the conversations it was trained on."""
    recorded = recorded_fingerprint(plan.output_uri)
    if recorded is None or recorded == plan.fingerprint:
        return
    if training.resume == "never" and training.force:
        return  # the run is being started over
    if not CheckpointManager(training.output, cache_dir=training.cache_dir).complete_steps():
        return  # nothing trained yet: nothing to protect
    raise ConfigError(
        f"{training.output} was fine-tuned on other conversations or settings (--data, their "
        "content, --data-form, --long, --val-fraction, --seq-len or the base's tokenizer "
        "changed); choose another --output, or pass --resume never --force to start it over"
    )


def run_sft(
    config: SFTConfig, on_step: Callable[[dict[str, Any]], None] | None = None
) -> tuple[dict[str, Any], TrainResult]:
    """`prepare` (on rank 0), then the training loop (every rank)."""
    training = config.train_config()
    info = distributed.init(training.device)
    data = distributed.broadcast_json(distributed.on_main(lambda: prepare(config), info), info)
    return data, train(training, on_step)


def main(argv: list[str] | None = None) -> int:
    """`python -m smelt.sft.run` / torchrun entry point (no Prefect)."""
    return distributed.entry_point(
        argv,
        "smelt.sft.run",
        __doc__,
        SFTConfig,
        run_sft,
        lambda outcome: [outcome[0]["summary"], outcome[1].summary()],
    )


if __name__ == "__main__":
    sys.exit(distributed.exit_code(main()))
