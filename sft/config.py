"""`SFTConfig`: a fine-tuning run, i.e. a base, conversations, and the training settings.

The training settings are `TrainConfig`'s, by the names `smelt train` uses (a deployment passes
them as the `training` object, the command line as the same flags). Fine-tuning sets the rest
itself: the data is the run's own conversation shards (`RUN/sft_data`), the model is the base's
(`init_from`), the batches are packed conversations. Defaults: conversations longer than
`--seq-len` are cut at a turn rather than dropped (most of a long chat is still good data), and
5% of the conversations (by a hash of their messages) are held out for the validation loss.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smelt.chat import FORMS
from smelt.errors import ConfigError
from smelt.prep.defaults import CONVERSATION_VAL_FRACTION as DEFAULT_VAL_FRACTION
from smelt.prep.defaults import LONG_POLICIES
from smelt.training.config import TrainConfig

# TrainConfig fields that fine-tuning decides: never flags of `smelt sft`, never in `training`
SET_BY_SFT = frozenset(
    {"shards", "output", "tokenizer", "init_from", "batch_source", "preset", "model_overrides"}
    | {"doc_mask"}  # conversations are always document-masked
    | {"data", "on_exhausted"}  # one conversation set, not a pretraining mixture
)
TRAINING_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig)) - SET_BY_SFT


class SFTConfig(BaseModel):
    """A fine-tuning run: which model, which conversations, where, and how to train."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: str = Field(
        min_length=1,
        description="the trained run to start from (its newest complete checkpoint) or one of "
        "its step_NNNNNNNN directories, local or s3://",
    )
    data: list[str] = Field(
        min_length=1,
        description="JSONL, JSON or Parquet files (or folders, s3:// prefixes) of conversations",
    )
    output: str = Field(min_length=1, description="the fine-tuned run's directory (or s3://)")
    data_form: Literal["auto", "openai", "sharegpt", "alpaca"] = Field(
        "auto",
        description="auto: per file, from its first record; or every file in the named form",
    )
    long: Literal["truncate", "drop"] = Field(
        "truncate",
        description="a conversation longer than seq_len: cut after the last assistant turn that "
        "fits, or drop it",
    )
    val_fraction: float = Field(
        DEFAULT_VAL_FRACTION, ge=0, lt=1, description="share of conversations held out for val"
    )
    training: dict[str, Any] = Field(
        default_factory=dict,
        description="training settings as `smelt train` names them, e.g. max_steps, batch_size, "
        "seq_len, lr, checkpoint_every, end_of_turn_weight",
    )

    @classmethod
    def create(cls, **values: Any) -> SFTConfig:
        """The config, or a one-line ConfigError naming the first bad field."""
        try:
            config = cls(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"]) or "config"
            raise ConfigError(f"invalid sft setting {field}: {error['msg']}") from None
        config.train_config()  # the training settings are checked now, not when training starts
        return config

    @property
    def data_uri(self) -> str:
        """Where the conversations are tokenized: beside the run's checkpoints."""
        from smelt.training.checkpoint import RunLayout

        return RunLayout(self.output).sft_data

    def train_config(self) -> TrainConfig:
        """The training run: the given settings plus what fine-tuning decides."""
        unknown = sorted(set(self.training) - TRAINING_FIELDS)
        if unknown:
            decided = [k for k in unknown if k in SET_BY_SFT]
            why = "is decided by smelt sft" if decided else "is no training setting"
            raise ConfigError(
                f"training setting {unknown[0]!r} {why}; use one of "
                f"{', '.join(sorted(TRAINING_FIELDS))}"
            )
        return TrainConfig(
            **self.training,
            shards=self.data_uri,
            output=self.output,
            init_from=self.base,
            batch_source="conversations",
        )

    # ---- command line ----------------------------------------------------------------------

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """`smelt sft`'s flags: base, data and output, how conversations are read, and the
        training flags of `smelt train` that fine-tuning leaves to the user."""
        fields = SFTConfig.model_fields
        parser.add_argument(
            "--base", required=True, metavar="URI", help=f"{fields['base'].description} (required)"
        )
        parser.add_argument(
            "--data",
            required=True,
            action="append",
            metavar="URI",
            help=f"{fields['data'].description}; repeatable (required)",
        )
        parser.add_argument(
            "--output",
            required=True,
            metavar="URI",
            help=f"{fields['output'].description} (required)",
        )
        parser.add_argument(
            "--data-form",
            default="auto",
            choices=("auto", *FORMS),
            help=f"{fields['data_form'].description} (default: %(default)s)",
        )
        parser.add_argument(
            "--long",
            default="truncate",
            choices=LONG_POLICIES,
            help=f"{fields['long'].description} (default: %(default)s)",
        )
        parser.add_argument(
            "--val-fraction",
            type=float,
            default=DEFAULT_VAL_FRACTION,
            metavar="F",
            help=f"{fields['val_fraction'].description} (default: %(default)s)",
        )
        TrainConfig.add_arguments(parser, exclude=SET_BY_SFT)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SFTConfig:
        training = {name: getattr(args, name) for name in TRAINING_FIELDS if hasattr(args, name)}
        return cls.create(
            base=args.base,
            data=list(args.data),
            output=args.output,
            data_form=args.data_form,
            long=args.long,
            val_fraction=args.val_fraction,
            training=training,
        )
