"""`TrainConfig`: every knob of a training run in one frozen dataclass.

Defaults and their sources: AdamW betas (0.9, 0.95), weight decay 0.1 and gradient clipping 1.0
follow GPT-3 (Brown et al. 2020) and LLaMA (Touvron et al. 2023); the peak learning rate 6e-4 is
GPT-3 small's (125M); the warmup-stable-decay schedule with a 20% cooldown follows Hägele et al.
2024 ("Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations"); the minimum
learning rate of 10% of the peak is Chinchilla's (Hoffmann et al. 2022). Warmup is 100 steps
(nanoGPT's order for small models) but at most 10% of the run unless set explicitly, so that a
short run still reaches its decay.

Every field carries its type and range (pydantic constraints, checked when the config is built:
one line naming the key, the value and what is allowed) and its help text. The same dataclass
parses the command line (`add_arguments`/`from_args`), so `smelt train` and
`torchrun -m smelt.training.loop` accept the same flags, and is stored in every checkpoint, so a
resumed run can tell whether it is the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import re
import types
import typing
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from smelt.errors import ConfigError
from smelt.training.data_plan import plan_from_shards

DEFAULT_WARMUP_STEPS = 100
DEFAULT_WARMUP_FRACTION = 0.1  # of max_steps, when --warmup-steps is not given

# Fields that may change between a run and its resumption without `--force`: they do not change
# what is being trained (how long, how often to save or evaluate, on which device, how fast).
RESUMABLE_CHANGES = frozenset(
    {
        "output",
        "max_steps",
        "checkpoint_every",
        "keep_last",
        "eval_every",
        "eval_batches",
        "resume",
        "force",
        "device",
        "compile",
        "activation_checkpointing",
        "cache_dir",
        "num_threads",
        "tokenizer",
        "peak_flops",
        "log_every",
        "upload_timeout",
        "eval_tasks",
        # the data may change: a changed set of sources is a new phase (training/mixture.py)
        "shards",
        "data",
        "on_exhausted",
    }
)

Positive = Annotated[int, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Text = Annotated[str, Field(min_length=1)]


def _knob(default: Any = dataclasses.MISSING, help: str = "", **flag: Any) -> Any:  # noqa: A002
    """A field with its command-line help (and optionally `metavar`, `shown`: the default as
    the help should print it when the value itself says little, e.g. None)."""
    if isinstance(default, dict | list):
        factory = type(default)
        return field(default_factory=factory, metadata={"help": help, **flag})
    return field(default=default, metadata={"help": help, **flag})


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, model, optimizer, schedule, checkpointing, runtime."""

    output: Text = _knob(help="run directory: checkpoints, metrics, TensorBoard", metavar="URI")
    shards: list[Text] | Text = _knob(
        [],
        "token shards: a directory or s3:// prefix with manifest.json, or a glob of them "
        "(every finished set it matches); repeatable, URI=WEIGHT, for a mixture",
        metavar="URI[=WEIGHT]",
    )
    data: Text | None = _knob(
        None,
        "YAML or TOML file of sources, weights and phases (instead of --shards)",
        metavar="FILE",
    )
    on_exhausted: Literal["repeat", "end_phase"] = _knob(
        "repeat", "when a source runs out: repeat it (a new epoch), or end the phase"
    )
    preset: Text = _knob("test", "model preset (smelt.model.presets)")
    model_overrides: dict[str, Any] = _knob(
        {}, "override a model config field, e.g. n_layers=2 (repeatable)", metavar="KEY=VALUE"
    )
    tokenizer: Text | None = _knob(
        None,
        "tokenizer.json the shards were built with",
        metavar="URI",
        shown="<shards>/tokenizer.json, else the one the shards' build report names",
    )
    max_steps: Positive = _knob(1000, "optimizer steps to train to")
    batch_size: Positive = _knob(8, "sequences per micro-batch per rank")
    seq_len: Positive = _knob(256, "tokens per sequence")
    grad_accum: Positive = _knob(1, "micro-batches accumulated per optimizer step")
    lr: Rate = _knob(6e-4, "peak learning rate")
    min_lr_ratio: Annotated[float, Field(ge=0, le=1)] = _knob(
        0.1, "final learning rate as a fraction of the peak"
    )
    warmup_steps: NonNegative | None = _knob(
        None,
        "linear warmup steps",
        shown=f"{DEFAULT_WARMUP_STEPS}, at most {DEFAULT_WARMUP_FRACTION:.0%} of --max-steps",
    )
    schedule: Literal["wsd", "cosine"] = _knob("wsd", "learning-rate schedule after warmup")
    decay_fraction: Annotated[float, Field(gt=0, le=1)] = _knob(
        0.2, "WSD: share of the run spent in the final decay"
    )
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)] = _knob(
        0.1, "AdamW weight decay (linear layers' matrices only)"
    )
    beta1: Annotated[float, Field(ge=0, lt=1)] = _knob(0.9, "AdamW beta1")
    beta2: Annotated[float, Field(ge=0, lt=1)] = _knob(0.95, "AdamW beta2")
    eps: Rate = _knob(1e-8, "AdamW epsilon")
    grad_clip: Annotated[float, Field(ge=0, allow_inf_nan=False)] = _knob(
        1.0, "clip the gradient norm to this; 0 disables clipping"
    )
    checkpoint_every: Positive = _knob(100, "save a checkpoint every N steps (and at the last)")
    keep_last: Positive = _knob(3, "complete checkpoints kept (older ones are pruned)")
    eval_every: NonNegative = _knob(
        100, "validation loss every N steps and at the last; 0: never (needs val shards)"
    )
    eval_batches: Positive = _knob(8, "validation batches per evaluation")
    seed: NonNegative = _knob(1337, "seed of the model init, data order and every generator")
    resume: Literal["auto", "never"] = _knob(
        "auto", "auto: continue from the newest complete checkpoint; never: start over"
    )
    force: bool = _knob(
        False, "resume a run whose configuration differs (or, with --resume never, discard it)"
    )
    device: Text = _knob("auto", "auto, cpu, cuda or cuda:N (auto: the rank's GPU if any)")
    dtype: Literal["auto", "float32", "bfloat16"] = _knob(  # float16 would need loss scaling
        "auto", "auto: bfloat16 autocast on CUDA, float32 on CPU"
    )
    compile: bool = _knob(False, "torch.compile the model")
    activation_checkpointing: bool = _knob(False, "recompute activations in the backward pass")
    fsdp: bool = _knob(False, "shard parameters with FSDP2 (under torchrun)")
    doc_mask: bool = _knob(False, "no attention across document boundaries")
    cache_dir: Text | None = _knob(
        None,
        "local copy of an s3:// run",
        metavar="DIR",
        shown="$SMELT_CACHE_DIR or ~/.cache/smelt, then runs/<hash of --output>",
    )
    num_threads: Positive | None = _knob(None, "torch CPU threads", shown="torch's choice")
    peak_flops: Rate | None = _knob(
        None, "peak FLOP/s per device, for MFU", shown="from the GPU's name; none on CPU"
    )
    log_every: Positive = _knob(10, "how often the progress callback fires (metrics: every step)")
    upload_timeout: Annotated[float, Field(ge=0, allow_inf_nan=False)] = _knob(
        600.0, "s3:// runs: seconds to wait for pending uploads after the last step"
    )
    eval_tasks: dict[str, str] = _knob(
        {},
        "a task `smelt eval` reads, scored every --eval-every steps (repeatable)",
        metavar="NAME=URI",
    )
    # starting from a trained model, and fine-tuning data (`smelt sft` sets these)
    init_from: Text | None = _knob(
        None,
        "start a new run from this run's newest checkpoint (or this step directory): its "
        "architecture and weights, a fresh optimizer and schedule; --preset is then ignored",
        metavar="URI",
        shown="none: initialise from --seed",
    )
    batch_source: Literal["windows", "conversations"] = _knob(
        "windows",
        "windows: token windows over the shards; conversations: whole conversations packed "
        "per sequence, loss on the assistant's tokens (`smelt sft` data)",
    )
    end_of_turn_weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = _knob(
        1.0, "conversations: loss weight of the assistant's <|im_end|> tokens"
    )

    def __post_init__(self) -> None:
        if isinstance(self.shards, str):  # one URI, as older runs and deployments pass it
            object.__setattr__(self, "shards", [self.shards])
        for item in dataclasses.fields(self):
            _check(item.name, getattr(self, item.name))
        _check_data(self.shards, self.data)

    @property
    def data_name(self) -> str:
        """The training data as the user gave it, for messages."""
        return f"in {self.data}" if self.data else ", ".join(self.shards)

    @property
    def tokens_per_micro_batch(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def resolved_warmup_steps(self) -> int:
        """--warmup-steps (at most the run), or the default capped to a fraction of the run."""
        if self.warmup_steps is not None:
            return min(self.warmup_steps, self.max_steps)
        return min(DEFAULT_WARMUP_STEPS, math.ceil(DEFAULT_WARMUP_FRACTION * self.max_steps))

    def schedule_note(self) -> str | None:
        """What a user should hear about the warmup chosen for them, if anything."""
        warmup = self.resolved_warmup_steps
        if self.warmup_steps is None and warmup < DEFAULT_WARMUP_STEPS:
            return (
                f"warmup is {warmup} steps ({DEFAULT_WARMUP_FRACTION:.0%} of --max-steps "
                f"{self.max_steps}) instead of {DEFAULT_WARMUP_STEPS}; pass --warmup-steps to "
                "choose"
            )
        if self.warmup_steps is not None and self.warmup_steps >= self.max_steps:
            return (
                f"--warmup-steps {self.warmup_steps} covers the whole run of {self.max_steps} "
                "steps: the learning rate never decays"
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def differences(self, other: TrainConfig) -> dict[str, tuple[Any, Any]]:
        """Fields that define the run and differ from `other`: {name: (other's, ours)}.

        A default warmup (None) keeps the run's; an explicit one is compared with the
        warmup the run actually has."""
        mine, theirs = self.to_dict(), other.to_dict()
        mine["warmup_steps"] = (
            theirs["warmup_steps"] if self.warmup_steps is None else self.warmup_steps
        )
        if self.warmup_steps is not None and other.warmup_steps is None:
            theirs["warmup_steps"] = other.resolved_warmup_steps
        return {
            k: (theirs[k], mine[k])
            for k in mine
            if k not in RESUMABLE_CHANGES and mine[k] != theirs[k]
        }

    # ---- command line ----------------------------------------------------------------------

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, exclude: Collection[str] = ()) -> None:
        """The `smelt train` flags (also `python -m smelt.training.loop` under torchrun):
        one per field, each with its help and default; a command that gives some fields
        another meaning (its own `--data`) excludes them by field name."""
        for item in dataclasses.fields(TrainConfig):
            if item.name not in exclude:
                parser.add_argument(*_flag(item), **_flag_options(item))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"model_overrides", "eval_tasks"}
        values = {k: getattr(args, k) for k in names if hasattr(args, k)}
        return cls(
            model_overrides=parse_overrides(args.model_override or []),
            eval_tasks=parse_named(getattr(args, "eval_task", None) or [], "--eval-task"),
            **values,
        )


def _check_data(shards: list[str], data: str | None) -> None:
    """Sources come from `--shards` (each URI[=WEIGHT] well formed) or from `--data`."""
    if bool(shards) == bool(data):
        raise ConfigError(
            "give the training data either as --shards URI[=WEIGHT] (repeatable) or as "
            f"--data FILE, not {'both' if data else 'neither'}"
        )
    if shards:
        plan_from_shards(shards)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["n_layers=2", "qk_norm=false"]` -> `{"n_layers": 2, "qk_norm": False}` (JSON values)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-override {item!r}: expected KEY=VALUE, e.g. n_layers=2")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    return overrides


# ---- validation -----------------------------------------------------------------------------


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig, include_extras=True)


@functools.cache
def _adapter(name: str) -> TypeAdapter:
    return TypeAdapter(_hints()[name], config=ConfigDict(strict=True))


def _check(name: str, value: Any) -> None:
    """One field against its annotation; a one-line ConfigError naming key, value and rule."""
    try:
        _adapter(name).validate_python(value)
    except ValidationError as exc:
        rule = re.sub(r"^\w+ should", "must", exc.errors()[0]["msg"])
        raise ConfigError(
            f"invalid {name}={value!r} (--{name.replace('_', '-')}): {rule}"
        ) from None


# ---- flags ----------------------------------------------------------------------------------


REPEATED = {"model_overrides": "--model-override", "eval_tasks": "--eval-task"}  # KEY=VALUE


def _flag(item: dataclasses.Field) -> list[str]:
    if item.name in REPEATED:
        return [REPEATED[item.name]]
    return [f"--{item.name.replace('_', '-')}"]


def _flag_options(item: dataclasses.Field) -> dict[str, Any]:
    """argparse options of a field: type or choices from its annotation, its help and the
    default shown beside it."""
    kind, choices = _plain_type(_hints()[item.name])
    help_text = item.metadata["help"].replace("%", "%%")  # argparse formats help with %
    options: dict[str, Any] = {"help": help_text}
    if "metavar" in item.metadata:
        options["metavar"] = item.metadata["metavar"]
    if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
        return {**options, "required": True, "help": f"{help_text} (required)"}
    if item.name in REPEATED or item.default_factory in (dict, list):  # repeatable flags
        return {
            **options,
            "action": "append",
            "default": [],
            "dest": _flag(item)[0].removeprefix("--").replace("-", "_"),
            "help": f"{help_text} (default: none)",
        }
    if kind is bool:
        return {**options, "action": "store_true", "help": f"{help_text} (default: off)"}
    shown = item.metadata.get("shown", "").replace("%", "%%") or "%(default)s"
    options.update(default=item.default, help=f"{help_text} (default: {shown})")
    if choices:
        options["choices"] = choices
    else:
        options["type"] = kind
        if kind is int:
            options.setdefault("metavar", "N")
    return options


def _plain_type(hint: Any) -> tuple[type, tuple[str, ...] | None]:
    """(python type, choices) of an annotation: Annotated, Optional and Literal unwrapped."""
    while typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (Union, types.UnionType):
        return _plain_type(next(a for a in typing.get_args(hint) if a is not type(None)))
    if typing.get_origin(hint) is Literal:
        return str, typing.get_args(hint)
    return typing.get_origin(hint) or hint, None


def parse_named(items: list[str], flag: str) -> dict[str, str]:
    """`["hellaswag=s3://b/hs.jsonl"]` -> `{"hellaswag": "s3://b/hs.jsonl"}` (NAME=URI flags)."""
    named: dict[str, str] = {}
    for item in items:
        name, sep, uri = item.partition("=")
        if not sep or not name.strip() or not uri.strip():
            raise ConfigError(
                f"{flag} {item!r}: expected NAME=URI, e.g. hellaswag=./hellaswag.jsonl"
            )
        if name.strip() in named:
            raise ConfigError(f"{flag} {item!r}: the name {name.strip()!r} is given twice")
        named[name.strip()] = uri.strip()
    return named
