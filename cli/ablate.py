"""`smelt ablate`: compare corpus recipes by training the same proxy model on each (the
`data-ablation` flow). The recipe file's format is in `smelt.evaluation.ablation`.

    smelt ablate --config ablation.yaml [--output URI] [--seeds N] [--force]
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from smelt.cli.options import add_runner_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    ablate = subparsers.add_parser(
        "ablate", help="train a proxy model per corpus variant and rank the variants"
    )
    ablate.add_argument("--config", required=True, metavar="FILE", help="YAML or TOML recipe")
    ablate.add_argument("--output", metavar="URI", help="where everything goes (or `output:`)")
    ablate.add_argument(
        "--seeds", type=int, default=None, help="proxy runs per variant (seeds 0..N-1)"
    )
    ablate.add_argument(
        "--force", action="store_true", help="rebuild corpora, tokenizer and shards"
    )
    add_runner_arguments(ablate)
    ablate.set_defaults(handler=run_ablate)


def run_ablate(args: argparse.Namespace) -> int:
    from smelt.cli import api
    from smelt.evaluation.ablation import load_ablation, parse_ablation
    from smelt.evaluation.evaluator import EvalInputs

    config = load_ablation(args.config)
    if args.seeds is not None:
        data = config.model_dump()
        data["proxy"]["seeds"] = args.seeds
        config = parse_ablation(data, args.config)
    # the task and text files are read now: a bad row must not wait for hours of training
    EvalInputs.load(config.eval.tasks, config.eval.texts, config.eval.limit)
    api.prepare()  # before Prefect is imported (see smelt.cli.api)
    from smelt.flows.ablation import data_ablation

    api.ready()
    console = Console()
    report = data_ablation(
        config=config,
        output=args.output,
        force=args.force,
        runner=args.runner,
        workers=args.workers,
        notify=lambda line: console.print(f"[dim]{line}[/]"),
    )
    console.print(ranking_table(report, config.name))
    for label, uri in report["files"].items():
        console.print(f"{label}: {uri}")
    return 0


def ranking_table(report: dict[str, Any], name: str) -> Table:
    """The ranked variants: the ranking metric, its difference from the base and the noise."""
    table = Table(
        title=f"data ablation {name}: ranked by {report['rank_by']}, seeds {report['seeds']}",
        header_style="bold",
    )
    for column in ("rank", "variant", "mean", "± noise", "vs base", "± noise", "clear"):
        table.add_column(column, justify="left" if column == "variant" else "right")

    def num(value: float | None, sign: str = "") -> str:
        return "" if value is None else f"{value:{sign}.4f}"

    for row in report["ranking"]:
        table.add_row(
            str(row["rank"]),
            row["variant"],
            num(row["mean"]),
            num(row["noise"]),
            num(row["diff_vs_base"], "+"),
            num(row["diff_noise"]),
            "yes" if row["clear"] else "",
        )
    return table
