"""Second-night benchmark: `--only-new` with 1% new objects against a full rebuild.

Input: the HTML pages of Python's documentation (Debian's `python3.11-doc`, installed by
bench/setup_peer.sh), copied flat into `raw/`. Night 1 builds all but 1% of them (deduplicated
against nothing). Then the held-out 1% arrive in `raw/`, and night 2 is built two ways, each
into a fresh output, deduplicated against night 1, with the same warm-pool executor:

- `full`: every object read again (what the nightly deployment did before `--only-new`);
- `only-new`: only the objects no earlier night consumed (the nightly deployment now).

Stages: trafilatura extraction -> filters -> exact + MinHash dedup against night 1 -> PII
(pattern recognizers; NER off, the same for both) -> Parquet. Each run is a fresh process
(nothing warm that a nightly run would not find warm); timing covers `build_corpus` alone,
listing and reading the earlier night's records included. Runs alternate; medians.

    .venv/bin/python bench/nightly_bench.py [--reps 3] [--workers 2] [--pages 530]
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PAGES = "/usr/share/doc/python3.11/html"
CONFIG = {"pii": {"ner": False}}


def run_build(raw: str, output: str, against: str, only_new: bool, workers: int) -> None:
    """Child process: one build, printing its timing and counts as the last line."""
    from smelt.corpus.build import BuildRequest, build_corpus, preload_modules
    from smelt.corpus.config import config_from_dict
    from smelt.parallel import LocalExecutor

    config = config_from_dict(CONFIG)
    request = BuildRequest(
        [raw], output, config, dedup_against=[against] if against else [], only_new=only_new
    )
    started = time.perf_counter()
    with LocalExecutor(workers, preload_modules(config)) as pool:
        summary = build_corpus(request, pool)
    wall = time.perf_counter() - started
    read = summary.get("only_new", {})
    print(
        json.dumps(
            {
                "wall": wall,
                "objects_read": read["new"] + read["changed"] if read else None,
                "skipped": read.get("skipped", 0),
                "input_docs": summary["input_docs"],
                "kept": summary["kept"],
            }
        )
    )


def child(*args: str) -> dict:
    command = [sys.executable, __file__, "--child", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"build failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pages", type=int, default=530, help="pages in all (night 1 + new)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        raw, output, against, only_new, workers = args.child
        run_build(raw, output, against, only_new == "1", int(workers))
        return
    pages = sorted(glob.glob(os.path.join(PAGES, "**", "*.html"), recursive=True))[: args.pages]
    if not pages:
        raise SystemExit(f"no pages under {PAGES}: run bench/setup_peer.sh (python3.11-doc)")
    new = max(1, math.ceil(len(pages) / 100))
    work = tempfile.mkdtemp(prefix="smelt-nightly-bench-")
    raw = os.path.join(work, "raw")
    os.makedirs(raw)
    for index, page in enumerate(pages[:-new]):
        shutil.copy(page, os.path.join(raw, f"{index:04d}.html"))
    night1 = os.path.join(work, "night1")
    first = child(raw, night1, "", "1", str(args.workers))
    for index, page in enumerate(pages[-new:], start=len(pages) - new):
        shutil.copy(page, os.path.join(raw, f"{index:04d}.html"))
    runs: dict[str, list[dict]] = {"full": [], "only-new": []}
    for rep in range(args.reps):
        for variant in ("full", "only-new") if rep % 2 == 0 else ("only-new", "full"):
            output = os.path.join(work, f"night2-{variant}-{rep}")
            flag = "1" if variant == "only-new" else "0"
            runs[variant].append(child(raw, output, night1, flag, str(args.workers)))
            shutil.rmtree(output)
    load = os.getloadavg()
    shutil.rmtree(work)
    full = statistics.median(r["wall"] for r in runs["full"])
    print(
        f"\n{len(pages)} pages; night 1: {len(pages) - new} pages in {first['wall']:.1f} s; "
        f"night 2: {new} new page(s) ({new / len(pages):.1%}); {args.workers} workers; "
        f"{args.reps} rounds; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}\n"
    )
    print("| night 2 | objects read | input docs | kept | wall s (runs) | median s | vs full |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for variant, results in runs.items():
        median = statistics.median(r["wall"] for r in results)
        walls = ", ".join(f"{r['wall']:.1f}" for r in results)
        read = results[0]["objects_read"]
        print(
            f"| {variant} | {read if read is not None else len(pages)} | "
            f"{results[0]['input_docs']} | {results[0]['kept']} | "
            f"{walls} | {median:.1f} | "
            f"{median / full:.1%} |"
        )


if __name__ == "__main__":
    main()
