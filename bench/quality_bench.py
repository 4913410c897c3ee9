"""Corpus quality on real documentation: pages kept per filter profile, against datatrove.

Inputs: the HTML of Python's documentation (`python3.11-doc`, 530 pages) and of the Rust books
(`rust-doc`, 1,067 pages), staged flat as in bench/corpus_bench.py. Every page is extracted
once per HTML format (smelt's Markdown, and the plain text of `html_format = "text"`),
normalized, and judged by the filter configurations below; datatrove 0.10.1 runs its own
pipeline on the same files in its venv (Trafilatura favour_precision -> GopherRepetition ->
GopherQuality -> C4 -> FineWeb, its defaults, as in bench/corpus_bench.py).

A *real* page is one that is not a redirect stub (the Rust books' pages for retired editions:
"no longer distributed with Rust's documentation", "this is an old link") and holds at least
50 words of prose in smelt's Markdown extraction; the goal is that the `docs` profile keeps at
least 90% of them. Two extraction checks compare Markdown with the plain-text extraction:

- *code listings*: every outermost `<pre>` of a page, and whether its longest line is in the
  extracted text (pages where Markdown keeps fewer listings than plain text: must be 0);
- *boilerplate*: prose lines (outside fences, heading marks and backticks removed) that
  Markdown extraction has and plain text has not, excluding headings, grouped and counted.

    .venv/bin/python bench/quality_bench.py [--sets python,rust] [--workers 2]
        [--peer-python .venv-bench/bin/python]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import pyarrow.parquet as pq
from corpus_bench import DATATROVE_SCRIPT, ROOT, SETS, stage_input  # the same peer pipeline

STUB_RE = re.compile(
    r"no longer distributed with Rust's documentation|"
    r"There is a new edition of the book and this is an old link",
    re.IGNORECASE,
)
REAL_MIN_WORDS = 50
CONFIGS = {  # name: (html format, filter settings)
    "plain text, web": ("text", {"profile": "web"}),
    "markdown, web": ("markdown", {"profile": "web"}),
    "markdown, docs": ("markdown", {"profile": "docs"}),
}
FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def extract(path: str) -> tuple[str, dict[str, str], list[str]]:
    """(page name, {format: normalized text}, the page's listings)."""
    import lxml.html

    from smelt.corpus.config import NormalizeConfig, ReaderConfig
    from smelt.corpus.normalize import normalize_text
    from smelt.corpus.readers.encoding import decode_bytes
    from smelt.corpus.readers.html import ExtractionError, extract_main_text
    from smelt.corpus.readers.markdown import protect_code

    with open(path, "rb") as fh:
        html = decode_bytes(fh.read(), html=True)
    texts = {}
    for fmt in ("markdown", "text"):
        try:  # the build's per-page limits, but a page over them is counted, not fatal here
            text = extract_main_text(html, ReaderConfig(html_format=fmt))
        except ExtractionError:
            text = ""
        texts[fmt] = normalize_text(text, NormalizeConfig())
    listings = protect_code(lxml.html.fromstring(html.encode()))
    return os.path.basename(path), texts, listings


def flat(text: str) -> str:
    return " ".join(text.split())


def prose_lines(text: str) -> list[str]:
    """Markdown text's prose lines, as the plain-text extraction would write them."""
    lines, inside = [], False
    for line in text.split("\n"):
        if FENCE_RE.match(line):
            inside = not inside
            continue
        if not inside and line.strip() and not line.lstrip().startswith("#"):
            lines.append(flat(line.replace("`", "")))
    return lines


def listings_found(text: str, listings: list[str]) -> int:
    haystack = flat(text)
    found = 0
    for code in listings:
        lines = [line for line in code.splitlines() if line.strip()]
        found += flat(max(lines, key=len))[:60] in haystack if lines else 1
    return found


def is_real(markdown: str) -> bool:
    from smelt.corpus.filters.text_utils import TextView

    return not STUB_RE.search(markdown) and len(TextView(markdown).prose.alnum_words) >= 50


def judge_all(pages: dict[str, dict[str, str]]) -> dict[str, dict[str, str | None]]:
    """Per configuration, each page's reason (None: kept)."""
    from smelt.corpus.config import config_from_dict
    from smelt.corpus.document import Document
    from smelt.corpus.filters import QualityFilters

    outcome: dict[str, dict[str, str | None]] = {}
    for name, (fmt, settings) in CONFIGS.items():
        filters = QualityFilters(config_from_dict({"filters": settings}).filters)
        outcome[name] = {
            page: filters.check(Document(id=page, text=texts[fmt], source=page))[1]
            for page, texts in pages.items()
        }
    return outcome


def run_datatrove(peer_python: str, input_dir: str, workdir: str, workers: int) -> set[str]:
    """Names of the pages datatrove keeps."""
    script = os.path.join(workdir, "datatrove_quality.py")
    with open(script, "w") as fh:
        fh.write(DATATROVE_SCRIPT)
    output = os.path.join(workdir, f"datatrove-{os.path.basename(input_dir)}")
    for stale in (output, output + "-logs"):  # datatrove skips the tasks its logs call done
        shutil.rmtree(stale, ignore_errors=True)
    command = [
        peer_python,
        script,
        input_dir,
        output,
        output + "-logs",
        str(4 * workers),
        str(workers),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        sys.exit(f"datatrove failed:\n{done.stderr[-3000:]}")
    kept: set[str] = set()
    for name in os.listdir(output) if os.path.isdir(output) else []:  # none kept: no file
        ids = pq.read_table(os.path.join(output, name), columns=["id"]).column("id").to_pylist()
        kept.update(os.path.basename(doc_id) for doc_id in ids)
    return kept


def bench_set(name: str, workdir: str, workers: int, peer_python: str | None) -> None:
    input_dir, count, size = stage_input(name, workdir)
    paths = sorted(os.path.join(input_dir, p) for p in os.listdir(input_dir))
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        extracted = list(pool.map(extract, paths, chunksize=8))
    extract_s = time.perf_counter() - started
    pages = {page: texts for page, texts, _ in extracted}
    real = {page for page, texts in pages.items() if is_real(texts["markdown"])}
    outcome = judge_all(pages)
    if peer_python:
        kept = run_datatrove(peer_python, input_dir, workdir, workers)
        outcome["datatrove 0.10.1 (its trafilatura 1.11, defaults)"] = {
            page: (None if page in kept else "dropped") for page in pages
        }
    print(f"\n### {name}: {count} pages ({size / 1e6:.1f} MB), {len(real)} real pages "
          f"(the rest: redirect stubs and pages under {REAL_MIN_WORDS} words); "
          f"both extractions in {extract_s:.0f} s on {workers} workers\n")  # fmt: skip
    print(
        "| system | pages kept | real pages kept | share of real pages | top reasons (real pages) |"
    )
    print("|---|---:|---:|---:|---|")
    for system, reasons in outcome.items():
        kept_all = sum(r is None for r in reasons.values())
        kept_real = sum(reasons[p] is None for p in real)
        top = Counter(reasons[p] for p in real if reasons[p] is not None).most_common(3)
        tops = ", ".join(f"{r} {n}" for r, n in top)
        print(f"| {system} | {kept_all} | {kept_real} | {kept_real / len(real):.1%} | {tops} |")

    listings = sum(len(found) for _, _, found in extracted)
    kept_md = sum(listings_found(t["markdown"], found) for _, t, found in extracted)
    kept_txt = sum(listings_found(t["text"], found) for _, t, found in extracted)
    fewer = [
        page
        for page, texts, found in extracted
        if listings_found(texts["markdown"], found) < listings_found(texts["text"], found)
    ]
    extra: Counter[str] = Counter()
    for texts in pages.values():
        plain = set(flat(line) for line in texts["text"].split("\n"))
        plain_flat = flat(texts["text"])
        extra.update(
            line
            for line in prose_lines(texts["markdown"])
            if line not in plain and line not in plain_flat
        )
    print(
        f"\nCode listings (`<pre>`): {listings}; found in the Markdown extraction {kept_md}, in "
        f"the plain-text extraction {kept_txt}; pages where Markdown keeps fewer: {len(fewer)}"
        f"{' (' + ', '.join(fewer[:5]) + ')' if fewer else ''}."
    )
    print(
        f"Prose lines in Markdown but not in plain text (headings excluded): {sum(extra.values())} "
        f"lines, {sum(len(k) * n for k, n in extra.items()):,} characters; most frequent: "
        + "; ".join(f"{line[:50]!r} x{n}" for line, n in extra.most_common(5))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="python,rust")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--peer-python", default=os.path.join(ROOT, ".venv-bench", "bin", "python"))
    parser.add_argument("--no-peer", action="store_true", help="skip datatrove")
    args = parser.parse_args()
    peer = None if args.no_peer else args.peer_python
    if peer and not os.path.exists(peer):
        sys.exit(f"no {peer}: run `bash bench/setup_peer.sh` first, or pass --no-peer")
    workdir = tempfile.mkdtemp(prefix="smelt-quality-bench-")
    try:
        print(f"load average before: {os.getloadavg()}")
        for name in args.sets.split(","):
            if name not in SETS:
                sys.exit(f"unknown set {name}; choose from {', '.join(SETS)}")
            bench_set(name, workdir, args.workers, peer)
        print(f"\nload average after: {os.getloadavg()}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
