"""Prefect tasks around evaluation: read the inputs, score a checkpoint, publish results."""

from __future__ import annotations

import base64
from typing import Any

from prefect import task
from prefect.artifacts import (
    create_image_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NONE

from smelt.evaluation.evaluator import (
    EvalInputs,
    EvalSettings,
    ProgressFactory,
    evaluate_checkpoint,
)
from smelt.evaluation.report import (
    EvalLayout,
    checkpoint_rows,
    result_rows,
    to_markdown,
    write_comparison,
    write_json,
)


@task(name="load-eval-inputs", cache_policy=NONE)
def load_inputs(tasks: dict[str, str], texts: dict[str, str], limit: int | None) -> EvalInputs:
    """Read and check every task and text file (before any model is loaded)."""
    return EvalInputs.load(tasks, texts, limit)


@task(name="evaluate-checkpoint", cache_policy=NONE, task_run_name="evaluate-{checkpoint}")
def evaluate(
    checkpoint: str,
    inputs: EvalInputs,
    settings: EvalSettings,
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """Score one checkpoint (a run's newest, or one step directory)."""
    return evaluate_checkpoint(checkpoint, inputs, settings, progress)


@task(name="publish-eval-results", cache_policy=NONE)
def publish_results(result: dict[str, Any], output: str, key: str = "eval-results") -> str:
    """Write the results JSON and show them as a table artifact."""
    write_json(output, result)
    create_table_artifact(
        key=key,
        table=result_rows(result),
        description=f"Evaluation of {result['checkpoint']} (step {result['step']:,}, "
        f"{result['tokens']:,} tokens) -> {output}",
    )
    return output


@task(name="publish-checkpoint-comparison", cache_policy=NONE)
def publish_comparison(results: list[dict[str, Any]], output: str, run: str) -> dict[str, str]:
    """The table and plot of every checkpoint, written beside `output` and shown as artifacts."""
    layout = EvalLayout(output)
    png = write_comparison(layout, results, title=f"{run}: metrics against tokens seen")
    image = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    create_markdown_artifact(
        key="eval-checkpoints",
        markdown=f"# Checkpoints of {run}\n\n{to_markdown(checkpoint_rows(results))}\n"
        f"![metrics against tokens seen]({image})\n",
        description=f"Every checkpoint of {run} evaluated on the same items",
    )
    create_image_artifact(
        image_url=image, key="eval-checkpoints-plot", description=f"{run}: metrics vs tokens"
    )
    return {"csv": layout.table_csv, "markdown": layout.table_md, "plot": layout.plot}
