"""Where evaluation results go and how they read: the output layout, tables, the run comparison.

`smelt eval --output OUT.json` writes OUT.json (ARCHITECTURE.md's results of the newest checkpoint).
With `--all-checkpoints` it also writes, beside it:

    OUT.steps/step_NNNNNNNN.json   each checkpoint's results (reused while current)
    OUT.checkpoints.csv            one row per checkpoint: step, tokens, every metric
    OUT.checkpoints.md             the same as a markdown table
    OUT.checkpoints.png            every metric against tokens seen

`EvalLayout` is the only place those names are spelled.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from smelt import storage
from smelt.storage.stage import FINGERPRINT_KEY, SKIPPED_KEY, Marker, fingerprint, run_once

Row = dict[str, Any]


@dataclass(frozen=True)
class EvalLayout:
    """The files of one `smelt eval --output OUTPUT`."""

    output: str

    @property
    def stem(self) -> str:
        return self.output[: -len(".json")] if self.output.endswith(".json") else self.output

    @property
    def results(self) -> str:
        return self.output

    def step_results(self, step: int) -> str:
        return f"{self.stem}.steps/step_{step:08d}.json"

    @property
    def table_csv(self) -> str:
        return f"{self.stem}.checkpoints.csv"

    @property
    def table_md(self) -> str:
        return f"{self.stem}.checkpoints.md"

    @property
    def plot(self) -> str:
        return f"{self.stem}.checkpoints.png"


def write_json(uri: str, data: dict[str, Any]) -> None:
    storage.write_text(uri, json.dumps(data, indent=1, sort_keys=True) + "\n")


def clean(result: dict[str, Any]) -> dict[str, Any]:
    """A result without the bookkeeping keys a stage marker adds."""
    return {k: v for k, v in result.items() if k not in (FINGERPRINT_KEY, SKIPPED_KEY)}


# ---- one result as rows --------------------------------------------------------------------


def result_rows(result: dict[str, Any]) -> list[Row]:
    """(set, metric, value, n) rows of one result: the Prefect table and the CLI table."""
    rows: list[Row] = []
    if result.get("val_loss") is not None:
        rows.append({"set": "val shards", "metric": "val_loss", "value": result["val_loss"]})
    for name, task in result.get("tasks", {}).items():
        for metric in ("acc", "acc_norm", "perplexity"):
            if metric in task and not (metric == "acc_norm" and task["layout"] == "lambada"):
                stderr = task.get(f"{metric}_stderr")
                rows.append(
                    {
                        "set": name,
                        "metric": metric,
                        "value": task[metric],
                        "stderr": stderr,
                        "n": task["n"],
                    }
                )
    for name, text in result.get("texts", {}).items():
        rows.append(
            {
                "set": name,
                "metric": "bits_per_byte",
                "value": text["bits_per_byte"],
                "n": text["docs"],
            }
        )
    return rows


# ---- a run's checkpoints compared ----------------------------------------------------------


def metric_columns(results: Sequence[dict[str, Any]]) -> list[str]:
    """Every metric any result has, as `set/metric` column names, in a stable order."""
    columns: list[str] = []
    for result in results:
        for key in flatten(result):
            if key not in columns:
                columns.append(key)
    return columns


def flatten(result: dict[str, Any]) -> dict[str, float]:
    """{"val_loss": .., "hellaswag/acc": .., "hellaswag/acc_norm": .., "held/bits_per_byte": ..}"""
    flat: dict[str, float] = {}
    if result.get("val_loss") is not None:
        flat["val_loss"] = result["val_loss"]
    for name, task in result.get("tasks", {}).items():
        flat[f"{name}/acc"] = task["acc"]
        if task.get("layout") == "lambada":
            flat[f"{name}/perplexity"] = task["perplexity"]
        else:
            flat[f"{name}/acc_norm"] = task["acc_norm"]
    for name, value in result.get("bits_per_byte", {}).items():
        flat[f"{name}/bits_per_byte"] = value
    return flat


def checkpoint_rows(results: Sequence[dict[str, Any]]) -> list[Row]:
    """One row per checkpoint: step, tokens and every metric."""
    columns = metric_columns(results)
    return [
        {"step": r["step"], "tokens": r["tokens"], **{c: flatten(r).get(c) for c in columns}}
        for r in results
    ]


def to_csv(rows: Sequence[Row]) -> str:
    fields = list(dict.fromkeys(key for row in rows for key in row))  # every column, in order
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_markdown(rows: Sequence[Row]) -> str:
    if not rows:
        return "(no rows)\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def evaluate_steps(
    steps: dict[int, str],
    layout: EvalLayout,
    identity: Any,
    evaluate: Callable[[str], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each checkpoint's result, computed once: a step's stored result is reused while the
    checkpoint (its completion marker) and `identity` (inputs and settings) are unchanged."""
    from smelt.training.checkpoint import StepLayout

    results = []
    for step, uri in sorted(steps.items()):
        marker_text = storage.read_text(StepLayout(uri).marker.uri)
        marker = Marker(layout.step_results(step), fingerprint(marker_text, identity))
        results.append(clean(run_once(marker, lambda uri=uri: evaluate(uri))))
    return results


def write_comparison(layout: EvalLayout, results: Sequence[dict[str, Any]], title: str) -> bytes:
    """The table (CSV, markdown) and the plot of metrics against tokens; returns the PNG."""
    from smelt.evaluation.plots import metrics_vs_tokens

    rows = checkpoint_rows(results)
    storage.write_text(layout.table_csv, to_csv(rows))
    storage.write_text(layout.table_md, to_markdown(rows))
    columns = metric_columns(results)
    png = metrics_vs_tokens(
        [r["tokens"] for r in rows], {c: [row[c] for row in rows] for c in columns}, title
    )
    storage.write_bytes(layout.plot, png)
    return png
