"""`smelt corpus build`: raw files to a clean Parquet corpus (the `corpus-build` flow)."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from smelt.cli.options import add_runner_arguments

POLL_SECONDS = 0.5


def register(subparsers: argparse._SubParsersAction) -> None:
    corpus = subparsers.add_parser("corpus", help="build a clean corpus from raw files")
    commands = corpus.add_subparsers(dest="corpus_command", required=True, metavar="COMMAND")
    build = commands.add_parser("build", help="extract, normalize, filter, dedup, redact PII")
    build.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="URI",
        help="input file, directory or s3:// prefix (repeatable)",
    )
    build.add_argument("--output", required=True, metavar="URI", help="corpus output URI")
    build.add_argument("--config", metavar="FILE", help="TOML or YAML config overriding defaults")
    build.add_argument(
        "--dedup-against",
        action="append",
        default=[],
        metavar="URI",
        help="previous smelt corpus whose documents must not come back",
    )
    add_runner_arguments(build)
    build.add_argument("--no-progress", action="store_true", help="no live progress display")
    build.set_defaults(handler=run_build)


class BuildProgress:
    """Live progress of a running build, from the partitions' `.done` markers (polled)."""

    def __init__(self, output_uri: str, partitions: int, console: Console) -> None:
        from smelt.corpus.layout import CorpusLayout

        self.layout = CorpusLayout.at(output_uri)
        self.partitions = partitions
        self.progress = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="build-progress")

    def _done(self, directory: str) -> int:
        from smelt.storage import exists, list_files

        try:
            return len(list_files(directory, suffixes=[".done"])) if exists(directory) else 0
        except Exception:  # noqa: BLE001 - a failed poll only delays the display
            return 0

    def _poll(self) -> None:
        extract = self.progress.add_task("extract", total=self.partitions)
        final = self.progress.add_task("finalize", total=self.partitions)
        while True:
            stopping = self._stop.wait(POLL_SECONDS)
            self.progress.update(extract, completed=self._done(self.layout.extracted_dir))
            self.progress.update(final, completed=self._done(self.layout.final_dir))
            if stopping:
                return

    def __enter__(self) -> BuildProgress:
        self.progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.progress.stop()


def stats_table(summary: dict[str, Any], title: str) -> Table:
    """stats.json as a two-column table: overall counts, then each reason."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("count")
    table.add_column("documents", justify="right")
    for key in ("input_docs", "kept", "quarantined"):
        table.add_row(key, f"{summary.get(key, 0):,}")
    for group in ("filtered", "duplicates", "pii"):
        for reason, count in summary.get(group, {}).items():
            table.add_row(f"{group}: {reason}", f"{count:,}")
    table.add_row("input bytes", f"{summary.get('input_bytes', 0):,}")
    table.add_row("kept characters", f"{summary.get('kept_chars', 0):,}")
    return table


def build_corpus(params: Any, console: Console, progress: bool = True) -> dict[str, Any]:
    """Check inputs and config, plan, then run the `corpus-build` flow with a progress display.

    Input and config errors surface here, before Prefect starts, as one-line errors.
    """
    from datetime import datetime

    from smelt.corpus.partition import plan_build
    from smelt.flows.corpus_build import corpus_build, resolve_config, resolve_targets
    from smelt.storage import require_readable

    params = resolve_targets(params, datetime.now().astimezone())
    config = resolve_config(params)
    for uri in params.dedup_against:
        require_readable(uri)
    plan = plan_build(params.inputs, params.output, config, params.dedup_against)
    console.print(
        f"[bold]corpus build[/]: {plan.file_count:,} input files "
        f"({plan.total_bytes / 1e6:,.1f} MB) in {len(plan.partitions)} partitions "
        f"-> {params.output}"
    )
    if not progress:
        return corpus_build(params)
    with BuildProgress(params.output, len(plan.partitions), console):
        return corpus_build(params)


def run_build(args: argparse.Namespace) -> int:
    from smelt.flows.corpus_build import CorpusBuildParams

    params = CorpusBuildParams(
        inputs=args.input,
        output=args.output,
        config_path=args.config,
        dedup_against=args.dedup_against,
        runner=args.runner,
        workers=args.workers,
        dask_address=args.dask_address,
    )
    console = Console()
    summary = build_corpus(params, console, progress=not args.no_progress)
    console.print(stats_table(summary, title=f"corpus {args.output}"))
    return 0
