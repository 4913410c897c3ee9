"""One checkpoint -> the results of ARCHITECTURE.md's `smelt eval`.

    {"checkpoint": str, "step": int, "tokens": int,
     "tasks": {NAME: {"acc", "acc_norm", "n", ...}}, "bits_per_byte": {NAME: float}, ...}

Inputs (task files, texts) are read and checked once (`EvalInputs.load`), before any model is
loaded, so a bad row fails in a second and the same inputs serve every checkpoint of a run.
Beside the contract's keys the result carries standard errors, LAMBADA's perplexity, each text
set's perplexities and sizes (`texts`), the validation loss on the run's own `val` shards
(`val_loss`), the settings and the scoring speed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from smelt import storage
from smelt.errors import InputError
from smelt.evaluation import metrics
from smelt.evaluation.items import ChoiceItem, ClozeItem, Task, TextSet
from smelt.evaluation.scorer import Progress, Scorer
from smelt.evaluation.sources import load_task, load_texts
from smelt.training.inference import OpenedCheckpoint, open_checkpoint

log = logging.getLogger(__name__)

# (label, total requests) -> a callable advanced by requests done; the CLI draws a bar with it
ProgressFactory = Callable[[str, int], Progress]
DTYPES = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class EvalSettings:
    """How to evaluate: batch, length, device and precision, how much of each input."""

    batch_size: int = 32
    max_length: int | None = None  # default: the model's max_seq_len (the harness's default)
    device: str = "auto"  # 'auto': cuda when present, else cpu
    dtype: str = "auto"  # 'auto': bf16 autocast on cuda, float32 on cpu
    limit: int | None = None  # first N items of each task / documents of each text set
    val_batches: int = 20  # batches of the run's val shards for val_loss; 0: skip
    val_shards: str | None = None  # default: the shards the run trained on (run.json)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InputError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.limit is not None and self.limit <= 0:
            raise InputError(f"--limit must be a positive integer, got {self.limit}")
        if self.val_batches < 0:
            raise InputError(f"--val-batches must be >= 0, got {self.val_batches}")

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        if self.dtype == "bfloat16" or (self.dtype == "auto" and device.type == "cuda"):
            return torch.bfloat16
        return None


@dataclass(frozen=True)
class EvalInputs:
    """Task and text sets, read and validated."""

    tasks: tuple[Task, ...] = ()
    texts: tuple[TextSet, ...] = ()
    uris: dict[str, dict[str, str]] = field(default_factory=dict)  # {"tasks": {}, "texts": {}}

    @classmethod
    def load(
        cls, tasks: dict[str, str], texts: dict[str, str], limit: int | None = None
    ) -> EvalInputs:
        return cls(
            tasks=tuple(load_task(name, uri, limit) for name, uri in tasks.items()),
            texts=tuple(load_texts(name, uri, limit) for name, uri in texts.items()),
            uris={"tasks": dict(tasks), "texts": dict(texts)},
        )

    def identity(self, settings: EvalSettings) -> str:
        """A fingerprint of every item and setting: stored results are reused while it holds."""
        from smelt.storage.stage import fingerprint

        return fingerprint(
            [asdict(t) for t in self.tasks], [asdict(t) for t in self.texts], asdict(settings)
        )

    @property
    def num_items(self) -> int:
        return sum(len(t.items) for t in self.tasks) + sum(len(t.docs) for t in self.texts)


def score_inputs(
    scorer: Scorer, inputs: EvalInputs, progress: ProgressFactory | None = None
) -> dict[str, Any]:
    """Scores of every task and text set: {"tasks": {...}, "bits_per_byte": {...}, "texts": {...}}.

    All tasks' requests go through the scorer together (one length-sorted stream, the least
    padding); the texts follow in rolling windows.
    """
    requests = [r for task in inputs.tasks for item in task.items for r in item.requests]
    advance = progress("score", len(requests)) if progress and requests else None
    scores = iter(scorer.loglikelihood(requests, advance))
    tasks: dict[str, Any] = {}
    for task in inputs.tasks:
        per_item = [[next(scores) for _ in item.requests] for item in task.items]
        if task.kind == "cloze":
            result = metrics.cloze_metrics(
                [i for i in task.items if isinstance(i, ClozeItem)], [s[0] for s in per_item]
            )
        else:
            result = metrics.choice_metrics(
                [i for i in task.items if isinstance(i, ChoiceItem)], per_item
            )
        tasks[task.name] = {**result, "layout": task.layout, "source": task.source}
    texts: dict[str, Any] = {}
    for text_set in inputs.texts:
        advance = progress(f"text {text_set.name}", len(text_set.docs)) if progress else None
        docs = [d.text for d in text_set.docs]
        results = _rolling(scorer, docs, advance)
        texts[text_set.name] = {
            **metrics.text_metrics(text_set.docs, results),
            "source": text_set.source,
        }
    return {
        "tasks": tasks,
        "bits_per_byte": {name: r["bits_per_byte"] for name, r in texts.items()},
        "texts": texts,
    }


def _rolling(scorer: Scorer, docs: list[str], advance: Progress | None) -> list[tuple[float, int]]:
    """Rolling log-likelihoods, with progress counted in documents rather than windows."""
    if advance is None:
        return scorer.loglikelihood_rolling(docs)
    results = []
    for start in range(0, len(docs), scorer.batch_size):
        chunk = docs[start : start + scorer.batch_size]
        results.extend(scorer.loglikelihood_rolling(chunk))
        advance(len(chunk))
    return results


def evaluate_checkpoint(
    uri: str,
    inputs: EvalInputs,
    settings: EvalSettings = EvalSettings(),  # noqa: B008 - frozen, shared safely
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """Open the checkpoint at `uri` (a run or a step), score `inputs`, measure val loss."""
    device = settings.resolved_device()
    opened = open_checkpoint(uri, device)
    return evaluate_opened(opened, inputs, settings, progress)


def evaluate_opened(
    opened: OpenedCheckpoint,
    inputs: EvalInputs,
    settings: EvalSettings,
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """The results JSON of an already opened checkpoint."""
    device = opened.model.embed.weight.device
    autocast = settings.autocast_dtype(device)
    started = time.perf_counter()
    scored: dict[str, Any] = {"tasks": {}, "bits_per_byte": {}, "texts": {}}
    if inputs.tasks or inputs.texts:
        tokenizer = opened.require_tokenizer()
        check_tokenizer_fits(opened)
        scorer = Scorer(
            opened.model,
            tokenizer,
            batch_size=settings.batch_size,
            max_length=settings.max_length,
            autocast_dtype=autocast,
        )
        scored = score_inputs(scorer, inputs, progress)
    scoring_s = time.perf_counter() - started
    val = validation_loss(opened, settings, autocast)
    return {
        "checkpoint": opened.source,
        "step_dir": opened.step_dir,
        "step": opened.step,
        "tokens": opened.tokens,
        **scored,
        "val_loss": val,
        "settings": {**asdict(settings), "device": str(device)},
        "items": inputs.num_items,
        "seconds": round(time.perf_counter() - started, 3),
        "items_per_s": round(inputs.num_items / scoring_s, 2) if inputs.num_items else None,
    }


# ---- checks --------------------------------------------------------------------------------


def check_tokenizer_fits(opened: OpenedCheckpoint) -> None:
    """A tokenizer with more tokens than the model has rows was not the one it trained with."""
    size = opened.tokenizer.get_vocab_size(with_added_tokens=True)
    vocab = opened.config.vocab_size
    if size > vocab:
        raise InputError(
            f"checkpoint {opened.step_dir} was trained with another tokenizer: its model has "
            f"{vocab} token rows but {opened.tokenizer_path} has {size} tokens; put the "
            "tokenizer.json the run was trained with beside the run"
        )


def tokenizer_sha256(opened: OpenedCheckpoint) -> str | None:
    if opened.tokenizer_path is None:
        return None
    return storage.sha256_file(opened.tokenizer_path)


# ---- validation loss on the run's own shards -----------------------------------------------


def run_shards(opened: OpenedCheckpoint, settings: EvalSettings) -> tuple[str, int, int] | None:
    """(shards URI, seq_len, batch size) for val loss: --val-shards, or what run.json records."""
    from smelt.training.checkpoint import StepLayout
    from smelt.training.data_plan import parse_source
    from smelt.training.manager import CheckpointManager
    from smelt.training.preflight import recorded_config

    source = storage.normalize(opened.source)
    run_uri = storage.parent(source) if StepLayout(source).marker.done() else source
    recorded = recorded_config(CheckpointManager(run_uri))
    seq_len = recorded.seq_len if recorded else min(256, opened.config.max_seq_len)
    batch = recorded.batch_size if recorded else 8
    # a mixture's validation comes from its first shard set, as in training
    first = parse_source(recorded.shards[0]).uri if recorded and recorded.shards else None
    shards = settings.val_shards or first
    return (shards, seq_len, batch) if shards else None


def validation_loss(
    opened: OpenedCheckpoint, settings: EvalSettings, autocast: torch.dtype | None
) -> float | None:
    """Mean token loss over the first `val_batches` batches of the val split, or None when
    the run has no val shards (or `val_batches` is 0)."""
    from smelt.prep.layout import ShardsLayout
    from smelt.prep.shard_format import open_manifest
    from smelt.training.loader import eval_batches

    found = run_shards(opened, settings) if settings.val_batches else None
    if found is None:
        return None
    shards, seq_len, batch_size = found
    if "*" in shards or not storage.exists(ShardsLayout.at(shards).manifest):
        log.warning("val loss skipped: no single shard set at %s", shards)
        return None
    manifest = open_manifest(shards)
    if not manifest.split("val"):
        return None
    ours = tokenizer_sha256(opened)
    if ours is not None and manifest.tokenizer_sha256 != ours:
        raise InputError(
            f"checkpoint {opened.step_dir} was trained with another tokenizer than the shards "
            f"{shards} (tokenizer_sha256 differs from {opened.tokenizer_path}); pass the "
            "shards tokenized for this model with --val-shards, or --val-batches 0"
        )
    model, device = opened.model, opened.model.embed.weight.device
    losses: list[float] = []
    model.eval()
    with torch.no_grad():
        for batch in eval_batches(shards, "val", batch_size, seq_len, settings.val_batches):
            context = torch.autocast(device.type, dtype=autocast) if autocast else None
            with context or contextlib.nullcontext():
                loss = model(batch.inputs.to(device), targets=batch.targets.to(device)).loss
            losses.append(float(loss))
    return sum(losses) / len(losses) if losses else None
