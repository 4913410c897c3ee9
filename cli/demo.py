"""`smelt demo`: the whole pipeline on a sample of real text already on this machine.

The demo is a list of steps (`STEPS`), each a function of the shared `DemoContext`; later
stages append their step (tokenizer, shards, training) to the list. Everything lands under
`--workdir` (default `./smelt-data`) on local storage, with Prefect's ephemeral server.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# The demo's embedded defaults: PII with pattern recognizers only (spaCy NER is ~10x slower).
DEMO_CORPUS_OVERRIDES: dict[str, Any] = {"pii": {"ner": False}}


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the pipeline on a local sample, no download")
    demo.add_argument("--workdir", default="./smelt-data", metavar="DIR")
    demo.add_argument("--max-docs", type=int, default=3000, help="size of the sample corpus")
    demo.add_argument("--train-steps", type=int, default=300)
    demo.set_defaults(handler=run_demo)


@dataclass
class DemoContext:
    """What the steps share: arguments, paths, and each step's results by name."""

    args: argparse.Namespace
    console: Console
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # label -> path, printed at the end

    @property
    def raw_dir(self) -> Path:
        return self.workdir / "raw"

    @property
    def corpus_dir(self) -> Path:
        return self.workdir / "corpus"


def step_sample(ctx: DemoContext) -> None:
    """Write a sample of real documents found on this machine under WORKDIR/raw."""
    from smelt.corpus.sample import build_sample

    if ctx.raw_dir.exists():
        shutil.rmtree(ctx.raw_dir)
    summary = build_sample(str(ctx.raw_dir), ctx.args.max_docs)
    table = Table(title=f"sample: {summary.total:,} documents", header_style="bold")
    table.add_column("kind")
    table.add_column("documents", justify="right")
    for kind, count in sorted(summary.counts.items()):
        table.add_row(kind, f"{count:,}")
    ctx.console.print(table)
    ctx.results["sample"] = summary
    ctx.outputs["raw input"] = str(ctx.raw_dir)


def step_corpus(ctx: DemoContext) -> None:
    """Build the clean corpus from the sample (resumes when rerun on the same sample)."""
    from smelt.cli.corpus import build_corpus, stats_table
    from smelt.corpus.partition import PlanMismatchError
    from smelt.flows.corpus_build import CorpusBuildParams

    params = CorpusBuildParams(
        inputs=[str(ctx.raw_dir)],
        output=str(ctx.corpus_dir),
        config_overrides=DEMO_CORPUS_OVERRIDES,
    )
    try:
        summary = build_corpus(params, ctx.console)
    except PlanMismatchError:  # the sample changed (another --max-docs): rebuild the demo corpus
        shutil.rmtree(ctx.corpus_dir)
        summary = build_corpus(params, ctx.console)
    ctx.console.print(stats_table(summary, title=f"corpus {ctx.corpus_dir}"))
    ctx.results["corpus"] = summary
    ctx.outputs["corpus"] = str(ctx.corpus_dir / "data")
    ctx.outputs["quarantine"] = str(ctx.corpus_dir / "quarantine")
    ctx.outputs["stats"] = str(ctx.corpus_dir / "stats.json")


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("sample", step_sample),
    ("corpus", step_corpus),
]


def run_demo(args: argparse.Namespace) -> int:
    console = Console()
    ctx = DemoContext(args=args, console=console, workdir=Path(args.workdir).resolve())
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for name, step in STEPS:
        console.rule(f"[bold]{name}")
        step_started = time.monotonic()
        step(ctx)
        console.print(f"[dim]{name}: {time.monotonic() - step_started:.1f} s[/]")
    table = Table(
        title=f"smelt demo: done in {time.monotonic() - started:.0f} s", header_style="bold"
    )
    table.add_column("output")
    table.add_column("path")
    for label, path in ctx.outputs.items():
        table.add_row(label, path)
    console.print(table)
    return 0
