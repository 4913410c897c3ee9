"""Prefect task that publishes a data ablation's ranked report (files and artifacts)."""

from __future__ import annotations

import base64
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from smelt import storage
from smelt.evaluation.ablation import AblationLayout
from smelt.evaluation.ablation_report import (
    dumps,
    rank_variants,
    report_markdown,
    report_plot,
    report_rows,
)
from smelt.evaluation.report import to_csv


@task(name="rank-variants", cache_policy=NONE)
def publish_ablation(
    results: dict[str, list[dict[str, Any]]],
    rank_by: str,
    seeds: list[int],
    root: str,
    title: str,
) -> dict[str, Any]:
    """Rank the variants; write report.json/.md/.csv/.png under `root`; show them in the UI."""
    layout = AblationLayout(root)
    report = rank_variants(results, rank_by, seeds)
    markdown = report_markdown(report, title)
    png = report_plot(report, title)
    storage.write_text(layout.report_json, dumps(report))
    storage.write_text(layout.report_md, markdown)
    storage.write_text(layout.report_csv, to_csv(report_rows(report)))
    storage.write_bytes(layout.report_png, png)
    image = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    create_markdown_artifact(
        key="data-ablation",
        markdown=f"{markdown}\n![metrics per variant]({image})\n",
        description=f"Data ablation {title}: ranked variants",
    )
    create_table_artifact(
        key="data-ablation-ranking",
        table=[{k: v for k, v in row.items() if k in _COLUMNS} for row in report["ranking"]],
        description=f"Data ablation {title}, ranked by {rank_by}",
    )
    return {
        **report,
        "files": {
            "json": layout.report_json,
            "markdown": layout.report_md,
            "csv": layout.report_csv,
            "plot": layout.report_png,
        },
    }


_COLUMNS = ("rank", "variant", "metric", "mean", "noise", "diff_vs_base", "diff_noise", "clear")
