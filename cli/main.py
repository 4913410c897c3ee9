"""The `smelt` command line: parses arguments, runs a command, prints errors in one line.

Each command lives in its own module with `register(subparsers)`; the handler it sets runs the
same Prefect flow a deployment runs. A `SmeltError` is printed as `error: ...` without a
traceback (exit 2); `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from smelt.errors import SmeltError

COMMAND_MODULES = (
    "corpus",
    "nightly",
    "tokenizer",
    "shards",
    "train",
    "sft",
    "push",
    "generate",
    "chat",
    "serve",
    "export",
    "eval",
    "ablate",
    "demo",
    "server",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, one sub-command per module in `COMMAND_MODULES`."""
    import importlib

    from smelt.cli.options import formatter

    parser = argparse.ArgumentParser(
        prog="smelt", description=__doc__.splitlines()[0], formatter_class=formatter
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"smelt.cli.{name}")
        module.register(subparsers)
    _use_formatter(parser, formatter)
    return parser


def _use_formatter(parser: argparse.ArgumentParser, cls: type[argparse.HelpFormatter]) -> None:
    """One help style for every command and sub-command (defaults shown)."""
    parser.formatter_class = cls
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _use_formatter(sub, cls)


def _quiet_prefect(debug: bool) -> None:
    """Keep the terminal for smelt's own output unless the user configured Prefect logging.

    Flow and task logs still reach the Prefect API (the UI shows them); only the terminal copy
    is held back, so a user error prints as one `error:` line, not as Prefect's traceback.
    """
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if not debug:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _connect_prefect(debug: bool) -> None:
    """Choose the Prefect API before Prefect is imported (it reads the address once), import
    Prefect while a private server, if one is needed, starts, then wait until it answers.

    Flow and task run logs go to the API (the UI shows them); in the terminal they would
    repeat an error that the command prints itself in one line, so they stay there unless
    `--debug`.
    """
    from smelt.cli import api

    api.prepare()
    import prefect  # noqa: F401 - imported here, in parallel with the server's start

    if not debug:
        for name in ("prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).propagate = False
    api.ready()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `smelt` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_prefect(debug="--debug" in argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if getattr(args, "runs_flows", False):
            _connect_prefect(args.debug)
        return int(args.handler(args) or 0)
    except SmeltError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
