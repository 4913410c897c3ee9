"""`smelt corpus build`: raw files to a clean Parquet corpus (the `corpus-build` flow);
`smelt corpus inspect`: what the filters dropped, document by document."""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from smelt.cli.options import add_runner_arguments, positive_int

POLL_SECONDS = 0.5


def register(subparsers: argparse._SubParsersAction) -> None:
    corpus = subparsers.add_parser("corpus", help="build a clean corpus from raw files")
    commands = corpus.add_subparsers(dest="corpus_command", required=True, metavar="COMMAND")
    build = commands.add_parser(
        "build",
        help="extract, normalize, filter, dedup, redact PII",
        description="Raw files (HTML, WARC, PDF, TXT, JSON/JSONL, Parquet; .gz/.zst) to a clean, "
        "deduplicated, PII-redacted Parquet corpus, as the `corpus-build` Prefect flow.",
    )
    build.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="URI",
        help="input file, directory or s3:// prefix (repeatable)",
    )
    build.add_argument(
        "--output",
        required=True,
        metavar="URI",
        help="corpus output URI; {date} becomes the build's UTC date",
    )
    build.add_argument(
        "--config", metavar="FILE", help="TOML or YAML config overriding the defaults"
    )
    build.add_argument(
        "--dedup-against",
        action="append",
        default=[],
        metavar="URI",
        help="earlier smelt corpus whose documents must not come back (repeatable; a glob "
        "means every finished corpus it matches)",
    )
    build.add_argument(
        "--keep-filtered",
        action="store_true",
        help="write every filtered document with its reason to OUTPUT/filtered/ "
        "(as `[output] keep_filtered = true`; a few per reason are kept in any case)",
    )
    build.add_argument(
        "--only-new",
        action="store_true",
        help="read only input objects that no --dedup-against corpus consumed in this version "
        "(new or changed; a changed object's old documents are superseded); with none, "
        "write nothing",
    )
    add_runner_arguments(build)
    build.add_argument("--no-progress", action="store_true", help="no live progress display")
    build.set_defaults(handler=run_build)

    inspect = commands.add_parser(
        "inspect",
        help="show the documents the quality filters dropped",
        description="The filtered documents of a finished corpus: counts and an example per "
        "reason, or with --reason the documents themselves (all of them after a build with "
        "--keep-filtered, else the few kept per reason).",
    )
    inspect.add_argument("output", metavar="OUTPUT", help="a finished corpus (local or s3://)")
    inspect.add_argument(
        "--reason",
        metavar="R",
        help="a reason (`c4:min_num_sentences`) or a filter (`c4`, `language`) to show",
    )
    inspect.add_argument("--limit", type=positive_int, default=5, help="documents to show")
    inspect.add_argument(
        "--chars", type=positive_int, default=600, help="characters of each document to show"
    )
    inspect.set_defaults(handler=run_inspect)


class BuildProgress:
    """Live progress of a running build, from its plan and its partitions' markers (polled)."""

    def __init__(self, output_uri: str, dedup: bool, console: Console) -> None:
        from smelt.corpus.layout import CorpusLayout

        self.layout = CorpusLayout.at(output_uri)
        self.dedup = dedup
        self.progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="build-progress")

    def _poll(self) -> None:
        bars: dict[str, Any] = {}
        while True:
            stopping = self._stop.wait(POLL_SECONDS)
            total = planned_partitions(self.layout)
            if total is not None and not bars:
                if self.dedup:
                    bars[self.layout.extracted_dir] = self.progress.add_task("extract", total=total)
                name = "finalize" if self.dedup else "partitions"
                bars[self.layout.final_dir] = self.progress.add_task(name, total=total)
            for directory, bar in bars.items():
                self.progress.update(bar, completed=markers_in(directory))
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


def markers_in(directory: str) -> int:
    """How many partitions of a stage are done (their markers), 0 when unreadable."""
    from smelt.corpus.layout import MARKER_SUFFIX
    from smelt.storage import exists, list_files

    try:
        return len(list_files(directory, suffixes=[MARKER_SUFFIX])) if exists(directory) else 0
    except Exception:  # noqa: BLE001 - a failed poll only delays the display
        return 0


def planned_partitions(layout: Any) -> int | None:
    """The partition count of the build's saved plan; None before the plan is written."""
    from smelt.storage import exists, read_text

    try:
        return (
            len(json.loads(read_text(layout.plan))["partitions"]) if exists(layout.plan) else None
        )
    except Exception:  # noqa: BLE001 - not written yet, or being written
        return None


def build_progress(output_uri: str, dedup: bool) -> str:
    """What a stopped build keeps, for the stop line: finished partitions are kept."""
    from smelt.corpus.layout import CorpusLayout
    from smelt.storage import exists

    if "{date}" in output_uri:
        return f"finished partitions are kept under {output_uri}"
    layout = CorpusLayout.at(output_uri)
    total = planned_partitions(layout)
    if total is None:
        return f"nothing was written to {layout.root}"
    if exists(layout.stats):
        return f"the corpus {layout.root} was finished"
    done = f"{markers_in(layout.final_dir)} of {total} partitions finished"
    if dedup:
        done = f"{markers_in(layout.extracted_dir)} of {total} partitions extracted, " + done
    return f"{done} in {layout.root}"


def stats_table(summary: dict[str, Any], title: str) -> Table:
    """stats.json as a two-column table: overall counts, then each reason."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("count")
    table.add_column("documents", justify="right")
    for key in ("input_docs", "kept", "quarantined"):
        table.add_row(key, f"{summary.get(key, 0):,}")
    for group in ("filtered", "duplicates", "pii", "only_new"):
        for reason, count in summary.get(group, {}).items():
            table.add_row(f"{group}: {reason}", f"{count:,}")
    if summary.get("id_collisions"):
        table.add_row(
            "ids renamed (shared by different documents)", f"{summary['id_collisions']:,}"
        )
    table.add_row("input bytes", f"{summary.get('input_bytes', 0):,}")
    table.add_row("kept characters", f"{summary.get('kept_chars', 0):,}")
    return table


def samples_table(output_uri: str, summary: dict[str, Any]) -> Table | None:
    """Per filter reason: how many documents it dropped and the start of one of them."""
    from smelt.corpus.filtered import excerpt, samples_by_reason

    samples = samples_by_reason(output_uri, per_reason=1)
    if not samples:
        return None
    table = Table(
        title="filtered: one example per reason (`smelt corpus inspect OUTPUT --reason R`)",
        header_style="bold",
    )
    table.add_column("reason")
    table.add_column("documents", justify="right")
    table.add_column("example (start)", overflow="fold")
    counts = summary.get("filtered", {})
    for reason, rows in samples.items():
        table.add_row(reason, f"{counts.get(reason, 0):,}", excerpt(rows[0]["text"], 100))
    return table


def clusters_table(summary: dict[str, Any]) -> Table | None:
    """The largest near-duplicate clusters: size, the kept document and two removed ones."""
    clusters = summary.get("near_duplicate_clusters") or []
    if not clusters:
        return None
    table = Table(title="largest duplicate clusters", header_style="bold")
    table.add_column("size", justify="right")
    table.add_column("kept", overflow="fold")
    table.add_column("removed", overflow="fold")
    for found in clusters:
        kept = f"{found['kept']['id']}: {found['kept']['start']}"
        removed = "\n".join(f"{r['id']}: {r['start']}" for r in found["removed"])
        table.add_row(str(found["size"]), kept, removed)
    return table


def print_report(console: Console, output_uri: str, summary: dict[str, Any], title: str) -> None:
    """The build's report: counts, an example per filter reason, the largest dup clusters."""
    console.print(stats_table(summary, title=title))
    for extra in (samples_table(output_uri, summary), clusters_table(summary)):
        if extra is not None:
            console.print(extra)


def check_build(
    inputs: list[str],
    output: str,
    config_path: str | None,
    overrides: dict[str, Any],
    dedup_against: list[str],
    only_new: bool = False,
) -> Any:
    """The validated config, once the locations and the output's saved plan are checked (the
    flow checks them again): a user error is one line in seconds, before Prefect is imported
    or its server waited for."""
    from datetime import UTC, datetime

    from smelt.corpus.config import resolve_config
    from smelt.corpus.partition import check_locations, check_plan
    from smelt.corpus.targets import expand_dedup_against, expand_output

    config = resolve_config(config_path, overrides)
    output = expand_output(output, datetime.now(UTC))
    check_locations(inputs, output, dedup_against)
    if only_new:  # its plan covers the selected objects only: the flow checks it
        return config
    check_plan(inputs, output, config, expand_dedup_against(dedup_against, output))
    return config


def build_corpus(params: Any, console: Console, progress: bool = True) -> dict[str, Any]:
    """Check the config and the locations, then run the `corpus-build` flow with a progress
    display.

    Config and location errors surface here in seconds, before Prefect starts, as one-line
    errors; everything else is resolved once, inside the flow.
    """
    from smelt.cli import api

    config = check_build(
        params.inputs, params.output, params.config_path, params.config_overrides,
        params.dedup_against, params.only_new,
    )  # fmt: skip
    api.prepare()  # the Prefect server starts while the rest gets ready
    return run_flow(params, config, console, progress)


def run_flow(params: Any, config: Any, console: Console, progress: bool) -> dict[str, Any]:
    """The `corpus-build` flow of checked `params` (`config`: their validated config)."""
    from smelt.cli import api, stopping

    dedup = config.dedup.exact or config.dedup.near
    stopping.report_progress(lambda: build_progress(params.output, dedup))
    from smelt.flows.corpus_build import corpus_build

    console.print(f"[bold]corpus build[/]: {', '.join(params.inputs)} -> {params.output}")
    api.ready()
    if not progress or "{date}" in params.output:
        return corpus_build(params)
    with BuildProgress(params.output, dedup, console):
        return corpus_build(params)


def run_build(args: argparse.Namespace) -> int:
    from smelt.cli import api

    overrides = {"output": {"keep_filtered": True}} if args.keep_filtered else {}
    config = check_build(
        args.input, args.output, args.config, overrides, args.dedup_against, args.only_new
    )
    api.prepare()  # before Prefect is imported (see smelt.cli.api)
    from smelt.flows.corpus_build import CorpusBuildParams

    params = CorpusBuildParams(
        inputs=args.input,
        output=args.output,
        config_path=args.config,
        config_overrides=overrides,
        dedup_against=args.dedup_against,
        only_new=args.only_new,
        runner=args.runner,
        workers=args.workers,
        dask_address=args.dask_address,
    )
    console = Console()
    summary = run_flow(params, config, console, progress=not args.no_progress)
    if summary.get("written") is False:
        counts = summary["only_new"]
        console.print(
            f"nothing new: {counts['skipped']:,} input object(s) unchanged since the "
            "--dedup-against corpora; nothing written"
        )
        return 0
    output = summary.get("output", args.output)
    print_report(console, output, summary, title=f"corpus {output}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    """`smelt corpus inspect OUTPUT [--reason R]`: no Prefect, only the corpus's files."""
    from smelt import storage
    from smelt.corpus.filtered import excerpt, iter_filtered, matches
    from smelt.corpus.layout import CorpusLayout
    from smelt.errors import InputError

    layout = CorpusLayout.at(args.output)
    if not storage.exists(layout.stats):
        raise InputError(
            f"no finished corpus at {layout.root} (stats.json missing); build it with "
            "`smelt corpus build` first"
        )
    summary = json.loads(storage.read_text(layout.stats))
    console = Console()
    if args.reason is None:
        table = samples_table(layout.root, summary)
        if table is None:
            console.print(f"corpus {layout.root}: no document was filtered")
        else:
            console.print(table)
        return 0
    counts = summary.get("filtered", {})
    total = sum(n for reason, n in counts.items() if matches(reason, args.reason))
    if not total:
        known = ", ".join(counts) or "none"
        raise InputError(
            f"no document of {layout.root} was filtered as {args.reason!r}; reasons: {known}"
        )
    everything = storage.exists(layout.filtered_dir)
    shown = 0
    for row in iter_filtered(layout.root, args.reason):
        if shown == args.limit:
            break
        shown += 1
        language = f", {row['language']} {row['language_score']:.2f}" if row["language"] else ""
        console.rule(f"[bold]{row['reason']}[/] {row['id']}{language}")
        console.print(f"[dim]{row['source']}[/]")
        console.print(excerpt(row["text"], args.chars), markup=False, highlight=False)
    where = (
        f"every one is in {layout.filtered_dir}"
        if everything
        else "a sample per reason was kept; `smelt corpus build --keep-filtered` keeps every one"
    )
    console.print(
        f"[dim]{shown} of {total:,} document(s) filtered as {args.reason} ({where})[/]",
        soft_wrap=True,
    )
    return 0
