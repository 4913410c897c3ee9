"""Flags shared by several commands, defined once."""

from __future__ import annotations

import argparse


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """`--runner`, `--workers`, `--dask-address`: where a stage's Prefect tasks run."""
    parser.add_argument(
        "--runner",
        choices=["process", "thread", "dask"],
        default="process",
        help="task runner (default: a process per core)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="parallel workers (default: cores)"
    )
    parser.add_argument(
        "--dask-address",
        metavar="ADDR",
        help="scheduler of an existing Dask cluster, for --runner dask "
        "(default: a local cluster of --workers processes)",
    )
