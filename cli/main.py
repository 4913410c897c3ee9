"""The `smelt` command line: parses arguments, runs a command, prints errors in one line.

Each command lives in its own module with `register(subparsers)`; the handler it sets runs the
same Prefect flow a deployment runs. A `SmeltError` is printed as `error: ...` without a
traceback (exit 2); `--debug` shows the traceback. Ctrl-C and SIGTERM stop any command within
seconds with one line saying what was kept (`smelt.cli.stopping`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from smelt.cli import stopping
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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, one sub-command per module in `COMMAND_MODULES`; with `command` (one of
    them), that sub-command alone.

    Why alone: a command module imports what its flags are built from (the training and
    fine-tuning configs, say); registering every module costs each command about 0.3 s."""
    import importlib

    from smelt.cli.options import formatter

    parser = argparse.ArgumentParser(
        prog="smelt", description=__doc__.splitlines()[0], formatter_class=formatter
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    # A command that runs flows calls smelt.cli.api.prepare() once its inputs are checked and
    # before it imports Prefect, then api.ready() before its first flow. own_signals: main().
    parser.set_defaults(own_signals=False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (command,) if command in COMMAND_MODULES else COMMAND_MODULES:
        module = importlib.import_module(f"smelt.cli.{name}")
        module.register(subparsers)
    _use_formatter(parser, formatter)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """`argv` parsed by the parser of the command it names (the whole parser for `--help`, a
    typo or no command)."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return build_parser(command).parse_args(argv)


def _use_formatter(parser: argparse.ArgumentParser, cls: type[argparse.HelpFormatter]) -> None:
    """One help style for every command and sub-command (defaults shown)."""
    parser.formatter_class = cls
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _use_formatter(sub, cls)


def _quiet_children() -> None:
    """multiprocessing's resource tracker (a child process) warns about the semaphores of a
    worker pool that was stopped, after the stop line; it cleans them up all the same. It takes
    its warning filters from this process's `-W` options, read when it starts."""
    option = "ignore::UserWarning:multiprocessing.resource_tracker"
    if option not in sys.warnoptions:
        sys.warnoptions.append(option)


def quiet_prefect(debug: bool) -> None:
    """Keep the terminal for smelt's own output unless the user configured Prefect logging.

    Flow and task logs still reach the Prefect API (the UI shows them); only the terminal copy
    is held back, so a user error prints as one `error:` line, not as Prefect's traceback.
    """
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if not debug:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_INTERNAL_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _log_to_terminal(debug: bool) -> None:
    """smelt's warnings (debug: everything) on stderr; Prefect's records reach the UI, and on
    the terminal they would bury the one line that matters."""
    root = logging.getLogger()
    if root.handlers:  # configured already (an embedding program, a test run)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not debug:
        handler.addFilter(lambda record: not record.name.startswith("prefect"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


# Failures of the machine rather than of smelt: the user fixes them (space, permissions).
ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def _environment_error(exc: OSError) -> str | None:
    """One line for an OSError the user must fix (no space, no permission), else None."""
    if exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def run(argv: Sequence[str]) -> int:
    """Parse `argv` and run its command; errors and interrupts propagate (see `main`)."""
    args = parse(argv)
    return int(args.handler(args) or 0)


@contextlib.contextmanager
def _environment_restored() -> Iterator[None]:
    """A command run in-process (a notebook, a test) leaves `os.environ` as it found it: the
    Prefect logging levels and API address chosen for the command must not reach the servers
    and workers its caller starts later."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        if dict(os.environ) != saved:
            os.environ.clear()
            os.environ.update(saved)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `smelt` console script."""
    with _environment_restored():
        return _main(list(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> int:
    debug = "--debug" in argv
    quiet_prefect(debug)
    if not debug:
        _quiet_children()
    _log_to_terminal(debug)
    try:
        args = parse(argv)
        # a command that stops on a signal by design (`smelt server`) handles its own
        with contextlib.nullcontext() if args.own_signals else stopping.installed():
            return int(args.handler(args) or 0)
    except (SmeltError, OSError) as exc:
        message = str(exc) if isinstance(exc, SmeltError) else _environment_error(exc)
        if debug or message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return stopping.report(exc)
    except BaseException as exc:
        signum = getattr(exc, "signal", None)  # Prefect's TerminationSignal, re-raised
        if isinstance(signum, int) and not isinstance(exc, SystemExit):
            return stopping.report(stopping.Stopped(signum))
        raise


if __name__ == "__main__":
    code = main()
    if "WORLD_SIZE" in os.environ:  # a rank of `torchrun -m smelt.cli.main train`
        from smelt.training.distributed import exit_code

        code = exit_code(code)
    sys.exit(code)
