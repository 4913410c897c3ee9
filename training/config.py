"""`TrainConfig`: every knob of a training run in one frozen dataclass.

Defaults and their sources: AdamW betas (0.9, 0.95), weight decay 0.1 and gradient clipping 1.0
follow GPT-3 (Brown et al. 2020) and LLaMA (Touvron et al. 2023); the peak learning rate 6e-4 is
GPT-3 small's (125M); the warmup-stable-decay schedule with a 20% cooldown follows Hägele et al.
2024 ("Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations"); the minimum
learning rate of 10% of the peak is Chinchilla's (Hoffmann et al. 2022).

The same dataclass parses the command line (`add_arguments`/`from_args`), so `smelt train` and
`torchrun -m smelt.training.loop` accept the same flags, and is stored in every checkpoint, so a
resumed run can tell whether it is the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from smelt.errors import ConfigError

SCHEDULES = ("wsd", "cosine")
DTYPES = ("auto", "float32", "bfloat16")  # float16 would need loss scaling

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
        "eval_tasks",
    }
)


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, model, optimizer, schedule, checkpointing, runtime."""

    shards: str
    output: str
    preset: str = "test"
    model_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"n_layers": 2}
    tokenizer: str | None = None  # default: <shards>/tokenizer.json when present
    max_steps: int = 1000
    batch_size: int = 8  # sequences per micro-batch per rank
    seq_len: int = 256
    grad_accum: int = 1
    lr: float = 6e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100  # clamped to the run length
    schedule: str = "wsd"
    decay_fraction: float = 0.2  # WSD: share of the run spent in the final decay
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0 disables clipping
    checkpoint_every: int = 100
    keep_last: int = 3
    eval_every: int = 100  # and at the last step; 0: never (needs val shards)
    eval_batches: int = 8
    seed: int = 1337
    resume: str = "auto"  # 'auto' | 'never'
    force: bool = False
    device: str = "auto"  # 'auto' | 'cpu' | 'cuda' | 'cuda:N'
    dtype: str = "auto"  # 'auto': bfloat16 autocast on CUDA, float32 on CPU
    compile: bool = False
    activation_checkpointing: bool = False
    fsdp: bool = False
    doc_mask: bool = False  # document-masked attention inside packed windows
    cache_dir: str | None = None  # local copy of an s3:// run (default ~/.cache/smelt/runs/...)
    num_threads: int | None = None
    peak_flops: float | None = None  # per device, for MFU; default from the GPU name
    log_every: int = 10  # how often the progress callback fires (metrics.jsonl: every step)
    eval_tasks: dict[str, str] = field(default_factory=dict)  # --eval-task NAME=URI, every eval

    def __post_init__(self) -> None:
        positive = (
            "max_steps",
            "batch_size",
            "seq_len",
            "grad_accum",
            "checkpoint_every",
            "keep_last",
            "eval_batches",
            "log_every",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be a positive integer, got {value!r}"
                )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.resume not in ("auto", "never"):
            raise ConfigError(f"--resume must be 'auto' or 'never', got {self.resume!r}")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("--lr must be > 0 and --min-lr-ratio in [0, 1]")
        if not 0 < self.decay_fraction <= 1:
            raise ConfigError(f"--decay-fraction must be in (0, 1], got {self.decay_fraction}")
        if self.warmup_steps < 0 or self.eval_every < 0 or self.grad_clip < 0:
            raise ConfigError("--warmup-steps, --eval-every and --grad-clip must be >= 0")

    @property
    def tokens_per_micro_batch(self) -> int:
        return self.batch_size * self.seq_len

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def differences(self, other: TrainConfig) -> dict[str, tuple[Any, Any]]:
        """Fields that define the run and differ from `other`: {name: (other's, ours)}."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {
            k: (theirs[k], mine[k])
            for k in mine
            if k not in RESUMABLE_CHANGES and mine[k] != theirs[k]
        }

    # ---- command line ----------------------------------------------------------------------

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """The `smelt train` flags (also `python -m smelt.training.loop` under torchrun)."""
        d = TrainConfig.__dataclass_fields__
        add = parser.add_argument
        add("--shards", required=True, metavar="URI", help="token shards (manifest.json)")
        add("--output", required=True, metavar="URI", help="run directory: checkpoints, metrics")
        add("--preset", default=d["preset"].default, help="model preset (smelt.model.presets)")
        add(
            "--model-override",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a model config field, e.g. n_layers=2 (repeatable)",
        )
        add("--tokenizer", metavar="URI", help="tokenizer.json (default: <shards>/tokenizer.json)")
        for name in (
            "max_steps",
            "batch_size",
            "seq_len",
            "grad_accum",
            "warmup_steps",
            "checkpoint_every",
            "keep_last",
            "eval_every",
            "eval_batches",
            "seed",
            "log_every",
        ):
            add(f"--{name.replace('_', '-')}", type=int, default=d[name].default)
        for name in (
            "lr",
            "min_lr_ratio",
            "decay_fraction",
            "weight_decay",
            "beta1",
            "beta2",
            "eps",
            "grad_clip",
        ):
            add(f"--{name.replace('_', '-')}", type=float, default=d[name].default)
        add("--schedule", choices=SCHEDULES, default=d["schedule"].default)
        add(
            "--resume",
            choices=["auto", "never"],
            default="auto",
            help="auto: continue from the newest complete checkpoint (default)",
        )
        add(
            "--force",
            action="store_true",
            help="resume a run whose configuration differs (or, with --resume never, discard it)",
        )
        add("--device", default="auto")
        add("--dtype", choices=DTYPES, default="auto")
        add("--compile", action="store_true", help="torch.compile the model")
        add("--activation-checkpointing", action="store_true")
        add("--fsdp", action="store_true", help="shard parameters with FSDP2 (under torchrun)")
        add("--doc-mask", action="store_true", help="no attention across document boundaries")
        add("--cache-dir", metavar="DIR", help="local copy of an s3:// run")
        add("--num-threads", type=int, default=None, help="torch CPU threads")
        add("--peak-flops", type=float, default=None, help="peak FLOP/s per device, for MFU")
        add(
            "--eval-task",
            dest="eval_tasks",
            action="append",
            default=[],
            metavar="NAME=URI",
            help="a task `smelt eval` reads, scored every --eval-every steps (repeatable)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"model_overrides", "eval_tasks"}
        values = {k: getattr(args, k) for k in names if hasattr(args, k)}
        return cls(
            model_overrides=parse_overrides(args.model_override or []),
            eval_tasks=parse_named(getattr(args, "eval_tasks", None) or [], "--eval-task"),
            **values,
        )


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
