"""Every command of `smelt` explains itself: each flag has help, and `--help` shows its default."""

from __future__ import annotations

import argparse

import pytest

from smelt.cli.main import build_parser
from smelt.cli.options import formatter


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))
            return
    yield path, parser


COMMANDS = dict(_commands(build_parser()))


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_every_flag_has_help_and_shows_its_default(path: tuple[str, ...]) -> None:
    parser = COMMANDS[path]
    render = formatter(parser.prog)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"smelt {' '.join(path)} {action.option_strings} has no help"
        shown = render._get_help_string(action)
        if (
            action.option_strings
            and not action.required
            and action.default
            not in (
                None,
                False,
                [],
                argparse.SUPPRESS,
            )
        ):
            assert "(default" in shown, f"smelt {' '.join(path)} {action.option_strings}"
    assert parser.formatter_class is formatter  # one style everywhere


def test_an_unknown_flag_value_is_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["corpus", "build", "--input", "x", "--output", "y",
                                   "--workers", "0"])  # fmt: skip
    assert stop.value.code == 2


def test_reading_the_command_line_imports_neither_prefect_nor_torch() -> None:
    """Prefect must not be imported before a command chooses its API (smelt.cli.api), and
    every command pays for what it uses only: `--help` and a typo answer at once."""
    import subprocess
    import sys

    code = (
        "import sys; from smelt.cli.main import build_parser; build_parser(); "
        "print(sorted(m for m in ('prefect', 'torch', 'trafilatura', 'presidio_analyzer') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_a_command_line_imports_the_module_of_its_command_only() -> None:
    """`smelt corpus build ...` does not pay for the flags of training and fine-tuning."""
    import subprocess
    import sys

    code = (
        "import sys; from smelt.cli.main import parse; "
        "args = parse(['--debug', 'corpus', 'build', '--input', 'x', '--output', 'y']); "
        "print(args.command, args.debug, 'smelt.training.config' in sys.modules, "
        "'smelt.cli.train' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["corpus", "True", "False", "False"], done.stdout


@pytest.mark.parametrize("argv", [["--help"], ["corpsu", "build"]])
def test_help_and_typos_see_every_command(argv: list[str], capsys) -> None:
    from smelt.cli.main import COMMAND_MODULES, parse

    with pytest.raises(SystemExit):
        parse(argv)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert all(name in text for name in COMMAND_MODULES), text
