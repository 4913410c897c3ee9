"""The `evaluate` flow: score a checkpoint (or every checkpoint of a run) on tasks and texts.

    load inputs (every file checked) -> evaluate a checkpoint per step -> results JSON + table
                                                                       -> comparison + plot

`smelt eval` runs it; a deployment passes the same parameters, e.g. `{"checkpoint":
"s3://b/runs/main", "output": "s3://b/eval/main.json", "tasks": {"hellaswag":
"s3://b/tasks/hellaswag.parquet"}, "all_checkpoints": true}`. With `all_checkpoints`, each
checkpoint is its own task run and its stored result is reused while the checkpoint and the
inputs are unchanged, so evaluating a run again after more training scores only the new steps.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger

from smelt import storage
from smelt.evaluation.evaluator import EvalSettings, ProgressFactory
from smelt.evaluation.report import EvalLayout, evaluate_steps
from smelt.flows.flow import flow
from smelt.tasks.evaluate import evaluate as evaluate_task
from smelt.tasks.evaluate import load_inputs, publish_comparison, publish_results


@flow(name="evaluate")
def evaluate(
    checkpoint: str,
    output: str,
    tasks: dict[str, str] | None = None,
    texts: dict[str, str] | None = None,
    all_checkpoints: bool = False,
    settings: EvalSettings = EvalSettings(),  # noqa: B008 - a form default
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """Evaluate `checkpoint` (a run's newest, or a step) into the JSON file `output`.

    Args:
        checkpoint: a run's output URI or one of its step_NNNNNNNN directories.
        output: the results JSON (local path or s3://).
        tasks: NAME -> URI of multiple-choice task files (published or generic layouts).
        texts: NAME -> URI of text files for bits per byte.
        all_checkpoints: evaluate every complete checkpoint of the run, and write the
            comparison table and plot beside `output`.
        settings: batch size, maximum length, device, precision, item limit, val batches.
    """
    logger = get_run_logger()
    inputs = load_inputs(tasks or {}, texts or {}, settings.limit)
    logger.info(
        "%d tasks, %d text sets, %d items", len(inputs.tasks), len(inputs.texts), inputs.num_items
    )
    if not all_checkpoints:
        result = evaluate_task(checkpoint, inputs, settings, progress)
        publish_results(result, output)
        return result
    from smelt.training.checkpoint import complete_steps

    steps = complete_steps(storage.normalize(checkpoint))
    if not steps:  # a step directory, or a run without checkpoints: one result
        result = evaluate_task(checkpoint, inputs, settings, progress)
        publish_results(result, output)
        return result
    results = evaluate_steps(
        steps,
        EvalLayout(output),
        inputs.identity(settings),
        lambda uri: evaluate_task(uri, inputs, settings, progress),
    )
    newest = {**results[-1], "checkpoint": checkpoint}
    publish_results(newest, output)
    files = publish_comparison(results, output, checkpoint)
    logger.info("compared %d checkpoints: %s", len(results), files["plot"])
    return {**newest, "checkpoints": [r["step"] for r in results], "comparison": files}
