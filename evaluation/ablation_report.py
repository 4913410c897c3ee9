"""The ranked report of a data ablation: each variant's metrics (mean over seeds, spread), its
difference from the base in the ranking metric and that difference's noise, as JSON, Markdown,
table rows and a plot.

With two or more seeds a metric's noise is the standard error of its mean over seeds; with one,
an accuracy's noise is its binomial standard error over the items. A difference is *clear* when
it exceeds twice its noise (the noises of variant and base added in quadrature).
"""

from __future__ import annotations

import json
import math
from typing import Any

from smelt.errors import ConfigError
from smelt.evaluation.ablation import BASE, MEAN_ACC_NORM
from smelt.evaluation.report import flatten

LOWER_IS_BETTER = ("val_loss", "bits_per_byte", "perplexity")


def lower_is_better(metric: str) -> bool:
    return metric.endswith(LOWER_IS_BETTER)


def run_metrics(result: dict[str, Any]) -> dict[str, float]:
    """Every metric of one run's evaluation, plus the mean acc_norm over its tasks."""
    flat = flatten(result)
    tasks = result.get("tasks", {})
    if tasks:
        flat[MEAN_ACC_NORM] = sum(t["acc_norm"] for t in tasks.values()) / len(tasks)
    return flat


def _stderr_of_one_run(result: dict[str, Any], metric: str) -> float | None:
    """With one seed, an accuracy's noise is its binomial standard error over the items."""
    tasks = result.get("tasks", {})
    name, _, which = metric.partition("/")
    if name in tasks and which in ("acc", "acc_norm"):
        return tasks[name].get(f"{which}_stderr")
    if metric == MEAN_ACC_NORM and tasks:
        errors = [t.get("acc_norm_stderr") or 0.0 for t in tasks.values()]
        return math.sqrt(sum(e * e for e in errors)) / len(errors)
    return None


def summarize(results: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """{metric: {"mean", "std" (over seeds), "noise" (standard error of the mean)}}"""
    per_run = [run_metrics(r) for r in results]
    metrics = [m for m in per_run[0] if all(m in run for run in per_run)]
    summary: dict[str, dict[str, float | None]] = {}
    for metric in metrics:
        values = [run[metric] for run in per_run]
        mean = sum(values) / len(values)
        if len(values) >= 2:
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            noise: float | None = std / math.sqrt(len(values))
        else:
            std, noise = None, _stderr_of_one_run(results[0], metric)
        summary[metric] = {"mean": mean, "std": std, "noise": noise}
    return summary


def rank_variants(
    results: dict[str, list[dict[str, Any]]], rank_by: str, seeds: list[int]
) -> dict[str, Any]:
    """The ranked report: each variant's metrics (mean over seeds, spread) and its difference
    from the base in the ranking metric, with that difference's noise
    (sqrt(noise_variant² + noise_base²)); `clear` when |difference| > 2 x noise."""
    summaries = {name: summarize(runs) for name, runs in results.items()}
    missing = [name for name, s in summaries.items() if rank_by not in s]
    if missing:
        known = ", ".join(sorted(next(iter(summaries.values()))))
        raise ConfigError(
            f"rank_by {rank_by!r} is not measured for {', '.join(missing)}; pick one of: {known}"
        )
    sign = -1.0 if lower_is_better(rank_by) else 1.0
    base = summaries[BASE][rank_by]
    rows = []
    for name, summary in summaries.items():
        here = summary[rank_by]
        diff = here["mean"] - base["mean"]  # type: ignore[operator]
        noise = None
        if here["noise"] is not None and base["noise"] is not None:
            noise = math.sqrt(here["noise"] ** 2 + base["noise"] ** 2) if name != BASE else 0.0
        rows.append(
            {
                "variant": name,
                "metric": rank_by,
                "mean": here["mean"],
                "std": here["std"],
                "noise": here["noise"],
                "diff_vs_base": diff,
                "diff_noise": noise,
                "clear": bool(noise) and abs(diff) > 2 * noise,  # type: ignore[operator]
                "better_than_base": name != BASE and sign * diff > 0,
            }
        )
    rows.sort(key=lambda r: -sign * r["mean"])
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return {"rank_by": rank_by, "seeds": seeds, "ranking": rows, "variants": summaries}


def report_markdown(report: dict[str, Any], title: str) -> str:
    """The ranked table, then every metric per variant."""
    better = "lower" if lower_is_better(report["rank_by"]) else "higher"
    lines = [
        f"# Data ablation: {title}",
        "",
        f"Ranked by `{report['rank_by']}` ({better} is better), seeds {report['seeds']}. "
        "Noise = standard error of the mean over seeds (with one seed: the binomial standard "
        "error over the items); a difference is *clear* when it exceeds twice its noise.",
        "",
        "| rank | variant | mean | ± noise | diff vs base | ± noise | clear |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in report["ranking"]:
        lines.append(
            f"| {row['rank']} | {row['variant']} | {row['mean']:.4f} | {_num(row['noise'])} | "
            f"{row['diff_vs_base']:+.4f} | {_num(row['diff_noise'])} | "
            f"{'yes' if row['clear'] else ''} |"
        )
    metrics = sorted({m for s in report["variants"].values() for m in s})
    lines += ["", "| variant | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for name, summary in report["variants"].items():
        cells = [
            f"{summary[m]['mean']:.4f}"
            + (f" ± {summary[m]['std']:.4f}" if summary[m]["std"] else "")
            if m in summary
            else ""
            for m in metrics
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows for a CSV or a Prefect table: the ranking with every metric's mean."""
    rows = []
    for row in report["ranking"]:
        summary = report["variants"][row["variant"]]
        rows.append({**row, **{m: v["mean"] for m, v in summary.items()}})
    return rows


def report_plot(report: dict[str, Any], title: str) -> bytes:
    from smelt.evaluation.plots import metrics_by_variant

    names = list(report["variants"])
    metrics = sorted({m for s in report["variants"].values() for m in s})
    means = {m: [report["variants"][n].get(m, {}).get("mean") for n in names] for m in metrics}
    spreads = {m: [report["variants"][n].get(m, {}).get("std") for n in names] for m in metrics}
    return metrics_by_variant(names, means, spreads, title)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, sort_keys=True) + "\n"
