"""Flags and help formatting shared by several commands, defined once."""

from __future__ import annotations

import argparse


class formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows every flag's default.

    A default is appended as `(default: X)` unless the help already says it, or there is none
    to show (None: the help says what happens; False: a switch that is off; []: a repeatable
    flag given no times).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (so `--workers 0` is an error, not "all")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """`--runner`, `--workers`, `--dask-address`: where a stage's work runs."""
    parser.add_argument(
        "--runner",
        choices=["process", "thread", "dask"],
        default="process",
        help="process: a warm pool of worker processes; thread: threads of this process; "
        "dask: a Dask cluster",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="parallel workers (default: every core this process may use)",
    )
    parser.add_argument(
        "--dask-address",
        metavar="ADDR",
        help="scheduler of an existing Dask cluster, for --runner dask "
        "(default: a local cluster of --workers processes)",
    )
