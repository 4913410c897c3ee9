"""Corpus build benchmark: smelt versus datatrove on the same real HTML, plus Prefect's overhead.

Input: the HTML pages of Python's documentation (Debian's `python3.11-doc`, ~530 pages, installed
by bench/setup_peer.sh), copied flat into one folder. Both systems run the same stages:

    HTML -> trafilatura main-content extraction -> Gopher repetition -> Gopher quality -> C4
         -> FineWeb quality -> Parquet writer

smelt runs its `corpus-build` flow with dedup and PII switched off; datatrove runs a
`LocalPipelineExecutor` in its own venv (.venv-bench: its extras pin trafilatura<1.12), with its
spaCy word tokenizer (a blank English pipeline: NLTK's punkt models cannot be downloaded here).
A third variant calls smelt's domain functions directly from a process pool, without Prefect,
to measure the flow's overhead. Runs alternate between the systems; figures are medians.

    .venv/bin/python bench/corpus_bench.py [--reps 3] [--workers 2] [--max-pages N]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

HTML_ROOT = "/usr/share/doc/python3.11-doc/html"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_PYTHON = os.path.join(ROOT, ".venv-bench", "bin", "python")
NO_DEDUP_NO_PII = {"dedup": {"exact": False, "near": False}, "pii": {"enabled": False}}

DATATROVE_SCRIPT = r"""
import json, sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers.base import BaseDiskReader
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter,
                                        GopherQualityFilter, GopherRepetitionFilter)
from datatrove.pipeline.writers import ParquetWriter

class HtmlFileReader(BaseDiskReader):
    "One document per HTML file (datatrove ships no plain-HTML-file reader)."
    name = "html files"

    def read_file(self, filepath):
        with self.data_folder.open(filepath, "r", encoding="utf-8", errors="replace") as fh:
            yield self.get_document_from_dict({"text": fh.read(), "id": filepath}, filepath, 0)

if __name__ == "__main__":  # the worker pool re-imports this module
    input_dir, output_dir, logs_dir, tasks, workers = sys.argv[1:6]
    pipeline = [
        HtmlFileReader(input_dir, glob_pattern="*.html"),
        Trafilatura(favour_precision=True, timeout=10.0),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=True),
        FineWebQualityFilter(),
        ParquetWriter(output_dir),
    ]
    executor = LocalPipelineExecutor(pipeline=pipeline, tasks=int(tasks), workers=int(workers),
                                     logging_dir=logs_dir)
    started = time.perf_counter()
    stats = executor.run()
    wall = time.perf_counter() - started
    kept = int(sum(s.stats["total"].total for s in stats.stats if "Parquet" in s.name))
    print(json.dumps({"wall": wall, "kept": kept}))
"""


def stage_input(workdir: str, max_pages: int | None) -> tuple[str, int, int]:
    """Copy the documentation pages flat into `workdir/html`; returns (dir, pages, bytes)."""
    pages = sorted(glob.glob(os.path.join(HTML_ROOT, "**", "*.html"), recursive=True))
    if not pages:
        sys.exit(f"no HTML under {HTML_ROOT}: run `bash bench/setup_peer.sh` (python3.11-doc)")
    pages = pages[:max_pages] if max_pages else pages
    target = os.path.join(workdir, "html")
    os.makedirs(target, exist_ok=True)
    for page in pages:
        name = os.path.relpath(page, HTML_ROOT).replace(os.sep, "__")
        shutil.copyfile(page, os.path.join(target, name))
    return target, len(pages), sum(os.path.getsize(p) for p in pages)


def run_smelt_flow(input_dir: str, output: str, workers: int) -> dict:
    from smelt.flows.corpus_build import CorpusBuildParams, corpus_build

    params = CorpusBuildParams(
        inputs=[input_dir],
        output=output,
        runner="process",
        workers=workers,
        config_overrides=NO_DEDUP_NO_PII,
    )
    started = time.perf_counter()
    summary = corpus_build(params)
    return {"wall": time.perf_counter() - started, "kept": summary["kept"]}


def run_smelt_direct(input_dir: str, output: str, workers: int) -> dict:
    """The same domain functions the flow's tasks call, from a plain process pool."""
    from smelt.corpus.build import extract_partition, write_corpus_stats
    from smelt.corpus.config import config_from_dict
    from smelt.corpus.finalize import finalize_partition
    from smelt.corpus.partition import plan_build

    started = time.perf_counter()
    config = config_from_dict(NO_DEDUP_NO_PII)
    plan = plan_build([input_dir], output, config)
    with cf.ProcessPoolExecutor(max_workers=workers) as pool:
        extracts = [
            pool.submit(extract_partition, output, p.index, list(p.files), config)
            for p in plan.partitions
        ]
        finals = [
            pool.submit(finalize_partition, output, f.result()["index"], None, config)
            for f in cf.as_completed(extracts)
        ]
        for future in finals:
            future.result()
    summary = write_corpus_stats(output, plan, config, [])
    return {"wall": time.perf_counter() - started, "kept": summary["kept"]}


def run_datatrove(input_dir: str, output: str, workers: int) -> dict:
    script = os.path.join(os.path.dirname(output), "datatrove_pipeline.py")
    with open(script, "w") as fh:
        fh.write(DATATROVE_SCRIPT)
    done = subprocess.run(
        [PEER_PYTHON, script, input_dir, output, output + "-logs", str(workers * 4), str(workers)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"datatrove failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def warm_up_prefect() -> None:
    """Start Prefect's ephemeral server before timing (a CLI run pays this once, ~5-20 s)."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def warm_up() -> None:
        return None

    warm_up()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--max-pages", type=int, default=None)
    parser.add_argument("--only", choices=["smelt", "datatrove", "direct"], action="append")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="smelt-corpus-bench-")
    input_dir, pages, size = stage_input(workdir, args.max_pages)
    systems = {
        "smelt (flow)": run_smelt_flow,
        "datatrove": run_datatrove,
        "smelt (direct, no Prefect)": run_smelt_direct,
    }
    if args.only:
        keep = {
            "smelt": "smelt (flow)",
            "datatrove": "datatrove",
            "direct": "smelt (direct, no Prefect)",
        }
        systems = {keep[name]: systems[keep[name]] for name in args.only}
    if "smelt (flow)" in systems:
        warm_up_prefect()
    results: dict[str, list[dict]] = {name: [] for name in systems}
    names = list(systems)
    for rep in range(args.reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:  # alternate order
            output = os.path.join(workdir, f"out-{rep}-{names.index(name)}")
            outcome = systems[name](input_dir, output, args.workers)
            results[name].append(outcome)
            print(
                f"<!-- rep {rep} {name}: {outcome['wall']:.1f} s, kept {outcome['kept']} -->",
                flush=True,
            )
    report(results, pages, size, args.workers)
    shutil.rmtree(workdir, ignore_errors=True)


def report(results: dict[str, list[dict]], pages: int, size: int, workers: int) -> None:
    medians = {name: statistics.median(r["wall"] for r in runs) for name, runs in results.items()}
    print(
        f"\n{pages} HTML pages, {size / 1e6:.1f} MB, {workers} workers, "
        f"median of {len(next(iter(results.values())))}\n"
    )
    print("| system | wall s (median) | docs/s | docs/s per core | MB/s per core | kept docs |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, wall in medians.items():
        kept = results[name][0]["kept"]
        print(
            f"| {name} | {wall:.1f} | {pages / wall:.1f} | {pages / wall / workers:.1f} | "
            f"{size / 1e6 / wall / workers:.2f} | {kept} |"
        )
    if "datatrove" in medians and "smelt (flow)" in medians:
        print(
            f"\nsmelt (flow) vs datatrove throughput: "
            f"{medians['datatrove'] / medians['smelt (flow)']:.2f}x"
        )
    if "smelt (direct, no Prefect)" in medians and "smelt (flow)" in medians:
        direct, flow = medians["smelt (direct, no Prefect)"], medians["smelt (flow)"]
        print(
            f"Prefect overhead: flow {flow:.1f} s vs direct {direct:.1f} s = "
            f"{(flow - direct) / flow * 100:+.1f}% of wall time"
        )


if __name__ == "__main__":
    main()
