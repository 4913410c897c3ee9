"""Limits benchmark: how long pathological inputs take, how soon a time limit fires, and whether
the loader's memory stays flat, each against the limit smelt promises for it.

The unit tests check what happens to these inputs (which reason, which outcome) and guard
against hangs only; wall-clock and resident-memory limits live here, where a busy machine is
a known caveat rather than a flaky test. One process, one thread for torch; medians of
`--reps` runs. Exit status 1 when a median is over its limit.

    .venv/bin/python bench/limits_bench.py [--reps 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `tests.*` (the fixtures' corpus factory)


def timed(work: Callable[[], object], reps: int) -> float:
    """Median seconds of `work()` over `reps` runs."""
    seconds = []
    for _ in range(reps):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def huge_line_file(folder: Path) -> Path:
    path = folder / "one-line.txt"
    path.write_text(" ".join(f"word{i % 5003} and more" for i in range(1_000_000)))  # ~16 MB
    return path


def huge_word_file(folder: Path) -> Path:
    path = folder / "one-word.txt"
    path.write_bytes(b"a" * 15_000_000)
    return path


def process(path: Path) -> None:
    from smelt.corpus.config import CorpusConfig
    from smelt.corpus.pipeline import process_file
    from smelt.corpus.stats import CorpusStats

    list(process_file(str(path), CorpusConfig(), CorpusStats()))


def filters_on_a_huge_line() -> None:
    """Every filter alone over a ~3 MB single line (Gopher's word limit lifted)."""
    from smelt.corpus.config import (
        C4Config,
        FilterConfig,
        FineWebConfig,
        GopherQualityConfig,
        GopherRepetitionConfig,
    )
    from smelt.corpus.document import Document
    from smelt.corpus.filters import QualityFilters

    words = "abcdefghijklmnopqrstuvwxyz"
    text = " ".join(f"{words[i % 26] * 5}{i % 997}" for i in range(400_000))
    sections = {
        "gopher_repetition": GopherRepetitionConfig(),
        "gopher_quality": GopherQualityConfig(max_doc_words=10_000_000),
        "c4": C4Config(),
        "fineweb": FineWebConfig(),
    }
    for name in sections:
        values = {key: cfg.replace(enabled=key == name) for key, cfg in sections.items()}
        QualityFilters(FilterConfig(**values)).check(Document("d", text, "bench"))


def time_limit_latency() -> float:
    """Seconds from a 0.3 s limit to the return of a busy pure-Python call it interrupts."""
    from smelt.corpus.readers.timelimit import TimeLimitExceeded, call_with_time_limit

    def busy() -> None:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            pass

    started = time.perf_counter()
    with contextlib.suppress(TimeLimitExceeded):
        call_with_time_limit(busy, 0.3)
    return time.perf_counter() - started - 0.3


def loader_rss_growth(folder: Path) -> float:
    """Resident-memory growth (MB) of this process over ~10 epochs of the shard loader."""
    import psutil
    import torch

    from smelt.prep.shards import build_shards
    from smelt.prep.tokenizer import train_tokenizer
    from smelt.training.loader import ShardLoader
    from tests.shards.corpus_factory import write_corpus

    torch.set_num_threads(1)
    write_corpus(str(folder / "corpus"), parts=3)
    train_tokenizer(str(folder / "corpus"), str(folder / "tok"), vocab_size=1024)
    build_shards(
        str(folder / "corpus"),
        str(folder / "tok"),
        str(folder / "shards"),
        val_fraction=0.1,
        shard_tokens=20_000,
    )
    loader = ShardLoader(str(folder / "shards"), batch_size=8, seq_len=64, seed=0)
    for _ in range(300):
        loader.next_batch()
    process_info = psutil.Process()
    before = process_info.memory_info().rss
    for _ in range(3000):
        loader.next_batch()
    return (process_info.memory_info().rss - before) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        line, word = huge_line_file(folder), huge_word_file(folder)
        rows = [  # (what, measured, limit)
            (
                "16 MB single-line text file, read + filtered (s)",
                timed(lambda: process(line), args.reps),
                20,
            ),
            (
                "15 MB single-word file, read + filtered (s)",
                timed(lambda: process(word), args.reps),
                20,
            ),
            (
                "each filter over a 3 MB single line (s)",
                timed(filters_on_a_huge_line, args.reps),
                10,
            ),
            (
                "0.3 s HTML time limit: extra seconds to return (s)",
                statistics.median(time_limit_latency() for _ in range(args.reps)),
                5,
            ),
            ("shard loader, RSS growth over ~10 epochs (MB)", loader_rss_growth(folder), 8),
        ]
    print("| what | measured | limit | |")
    print("|---|---:|---:|---|")
    over = 0
    for what, value, limit in rows:
        over += value > limit
        print(f"| {what} | {value:.2f} | {limit} | {'ok' if value <= limit else 'OVER'} |")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
