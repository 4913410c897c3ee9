"""Mixture loader benchmark: training tokens served per CPU-second with 1, 3 and 10 sources.

The loader of a run (`smelt.training.mixture.MixtureLoader`) draws every window from one of the
run's shard sets by weight (exact shares, `training/allocation.py`), then reads it with the same
`ShardReader` one source uses. What a mixture adds is the per-micro-batch allocation and one
stream per set; this measures what that costs against one source, and against the loader of a
single shard set from before mixtures (`ShardLoader`).

    .venv/bin/python bench/mixture_bench.py                 # B=16, T=1024, 200 micro-batches
    .venv/bin/python bench/mixture_bench.py --reps 7 --batches 400

Data: synthetic shard sets (random uint32 ids, the layout of ARCHITECTURE.md's "On-disk
formats") of 10M tokens in all for each configuration (one set of 10M, three of 3.3M, ten of
1M), so that every loader reads from the same amount of data (the same page-cache and
CPU-cache footprint). Every loader is warmed up first (each shard's one-time integrity check,
page cache), then the configurations run alternately, `--reps` rounds, and medians are
reported. CPU time is the process's (`time.process_time`), so another program on a shared
machine slows the wall clock but not the figure; the load average is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_bench import write_shards  # noqa: E402  (the same synthetic shards)

from smelt.training.data_plan import plan_from_shards  # noqa: E402
from smelt.training.loader import ShardLoader  # noqa: E402
from smelt.training.mixture import MixtureLoader  # noqa: E402
from smelt.training.sources import resolve  # noqa: E402

TOTAL_TOKENS = 10_000_000


def mixtures(work: Path) -> dict[str, list[str]]:
    """The configurations measured, each over 10M tokens: one source, three weighted, ten
    without weights (drawn in proportion to their tokens)."""

    def sets(count: int) -> list[str]:
        return [
            write_shards(work / f"{count}-{n}", TOTAL_TOKENS // count, seed=100 * count + n)
            for n in range(count)
        ]

    one, three, ten = sets(1), sets(3), sets(10)
    return {
        "1 source": one,
        "3 sources (50/30/20)": [f"{three[0]}=5", f"{three[1]}=3", f"{three[2]}=2"],
        "10 sources (by tokens)": ten,
    }


def build(entries: list[str], args: argparse.Namespace, before_mixtures: bool = False):
    """A MixtureLoader of `entries`, or the loader of one shard set from before mixtures."""
    if before_mixtures:
        return ShardLoader(entries[0], batch_size=args.batch_size, seq_len=args.seq_len, seed=0)
    data = resolve(plan_from_shards(entries), args.seq_len, "repeat")
    return MixtureLoader(data, batch_size=args.batch_size, seed=0)


def tokens_per_cpu_second(loader, batches: int) -> tuple[float, float]:
    """(tokens per CPU-second, tokens per wall-second) over `batches` micro-batches."""
    cpu, wall = time.process_time(), time.perf_counter()
    tokens = 0
    for _ in range(batches):
        tokens += loader.next_batch().inputs.numel()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return tokens / cpu, tokens / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=200, help="micro-batches per measurement")
    parser.add_argument("--reps", type=int, default=5, help="alternating rounds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="smelt-mixture-bench-"))
    os.environ.setdefault("SMELT_CACHE_DIR", str(work / "cache"))
    configs = mixtures(work)
    loaders = {"1 source, ShardLoader (before mixtures)": build(configs["1 source"], args, True)}
    loaders.update({name: build(entries, args) for name, entries in configs.items()})
    for loader in loaders.values():  # every shard checked once, pages cached
        tokens_per_cpu_second(loader, 40)
    cpu: dict[str, list[float]] = {name: [] for name in loaders}
    wall: dict[str, list[float]] = {name: [] for name in loaders}
    load = []
    for _ in range(args.reps):
        for name, loader in loaders.items():
            per_cpu, per_wall = tokens_per_cpu_second(loader, args.batches)
            cpu[name].append(per_cpu)
            wall[name].append(per_wall)
        load.append(os.getloadavg()[0])
    base = statistics.median(cpu["1 source"])
    print(
        f"# Mixture loader throughput (B={args.batch_size}, T={args.seq_len}, "
        f"{args.batches} micro-batches x {args.reps} alternating rounds, 1 thread; "
        f"load average {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores)\n"
    )
    print("| loader | tokens per CPU-second (median) | vs 1 source | tokens per wall-second |")
    print("|---|---:|---:|---:|")
    for name in loaders:
        median = statistics.median(cpu[name])
        print(
            f"| {name} | {median / 1e6:.1f} M | {median / base - 1:+.1%} | "
            f"{statistics.median(wall[name]) / 1e6:.1f} M |"
        )
    for loader in loaders.values():
        loader.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
