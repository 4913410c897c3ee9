"""`smelt eval`: score a checkpoint on multiple-choice tasks and texts (the `evaluate` flow).

    smelt eval --checkpoint URI [--task NAME=URI ...] [--text NAME=URI ...] --output URI
               [--all-checkpoints] [--batch-size B] [--device D] [--limit N]

Prints the results as a table; `--output` receives ARCHITECTURE.md's results JSON (and, with
`--all-checkpoints`, the comparison table and plot beside it).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser("eval", help="evaluate a checkpoint on tasks and texts")
    ev.add_argument(
        "--checkpoint",
        required=True,
        metavar="URI",
        help="a run's output URI (newest complete checkpoint) or a step directory",
    )
    ev.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="NAME=URI",
        help="multiple-choice task file; hellaswag, arc_easy, arc_challenge, piqa, "
        "winogrande, boolq, lambada read their published layout, other names the generic "
        'one {"context", "choices", "label"}; URI may be `hub` for a published set (repeatable)',
    )
    ev.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="NAME=URI",
        help="text file (plain, JSONL or Parquet with `text`) for bits per byte (repeatable)",
    )
    ev.add_argument("--output", required=True, metavar="URI", help="results JSON file")
    ev.add_argument(
        "--all-checkpoints",
        action="store_true",
        help="evaluate every checkpoint of the run; write a table and plot against tokens",
    )
    ev.add_argument("--batch-size", type=int, default=32, help="requests per forward pass")
    ev.add_argument("--max-length", type=int, default=None, help="default: model max_seq_len")
    ev.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda:N")
    ev.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="auto: bfloat16 autocast on a GPU, float32 on the CPU",
    )
    ev.add_argument("--limit", type=int, default=None, help="first N items of each task/text")
    ev.add_argument(
        "--val-batches", type=int, default=20, help="val-shard batches for val_loss (0: skip)"
    )
    ev.add_argument("--val-shards", metavar="URI", help="default: the shards the run trained on")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from smelt.cli import api
    from smelt.evaluation.evaluator import EvalInputs, EvalSettings
    from smelt.training.config import parse_named
    from smelt.training.manager import locate

    tasks = parse_named(args.task, "--task")
    texts = parse_named(args.text, "--text")
    settings = EvalSettings(
        batch_size=args.batch_size,
        max_length=args.max_length,
        device=args.device,
        dtype=args.dtype,
        limit=args.limit,
        val_batches=args.val_batches,
        val_shards=args.val_shards,
    )
    # bad files and a missing checkpoint surface here, before Prefect starts, in one line
    EvalInputs.load(tasks, texts, settings.limit)
    locate(args.checkpoint)
    api.prepare()  # before Prefect is imported (see smelt.cli.api)
    from smelt.flows.evaluate import evaluate

    api.ready()
    console = Console()
    with progress_bars(console, enabled=not args.no_progress) as progress:
        result = evaluate(
            checkpoint=args.checkpoint,
            output=args.output,
            tasks=tasks,
            texts=texts,
            all_checkpoints=args.all_checkpoints,
            settings=settings,
            progress=progress,
        )
    console.print(results_table(result))
    if result.get("comparison"):
        for label, uri in result["comparison"].items():
            console.print(f"{label}: {uri}")
    console.print(f"results: {args.output}")
    return 0


@contextmanager
def progress_bars(console: Console, enabled: bool) -> Iterator[Any]:
    """A rich progress bar per scoring stage, fed by the evaluator's progress callbacks."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bars = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )

    def start(label: str, total: int) -> Any:
        bar = bars.add_task(label, total=total)
        return lambda done: bars.advance(bar, done)

    with bars:
        yield start


def results_table(result: dict[str, Any]) -> Table:
    """The evaluation as a terminal table: one row per metric."""
    from smelt.evaluation.report import result_rows

    table = Table(
        title=f"{result['checkpoint']}: step {result['step']:,}, {result['tokens']:,} tokens",
        header_style="bold",
    )
    for column in ("set", "metric", "value", "± stderr", "n"):
        table.add_column(column, justify="left" if column in ("set", "metric") else "right")
    for row in result_rows(result):
        stderr = row.get("stderr")
        table.add_row(
            row["set"],
            row["metric"],
            f"{row['value']:.4f}",
            f"{stderr:.4f}" if stderr is not None else "",
            f"{row['n']:,}" if row.get("n") is not None else "",
        )
    return table
