"""PNG charts of evaluation results (matplotlib, Agg backend: no display needed).

Two charts: each metric against training tokens over a run's checkpoints, and each metric per
variant of a data ablation with its spread over seeds. Both return PNG bytes, so callers write
them anywhere a URI points (local or s3://) and embed them in Prefect artifacts.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

Series = dict[str, list[float | None]]  # metric label -> one value per x (None: not measured)


def _figure(panels: int):  # noqa: ANN202 - matplotlib types
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    columns = min(3, max(panels, 1))
    rows = max(1, math.ceil(panels / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    return plt, fig, [ax for row in axes for ax in row]


def _png(plt, fig) -> bytes:  # noqa: ANN001
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def metrics_vs_tokens(tokens: Sequence[int], series: Series, title: str) -> bytes:
    """One panel per metric: its value at each checkpoint against tokens seen."""
    plt, fig, axes = _figure(len(series))
    for ax, (label, values) in zip(axes, series.items(), strict=False):
        points = [(t, v) for t, v in zip(tokens, values, strict=True) if v is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("tokens seen")
        ax.grid(alpha=0.3)
    for ax in axes[len(series) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    return _png(plt, fig)


def metrics_by_variant(
    variants: Sequence[str], means: Series, spreads: Series, title: str
) -> bytes:
    """One panel per metric: a bar per variant, error bars = standard deviation over seeds."""
    plt, fig, axes = _figure(len(means))
    for ax, (label, values) in zip(axes, means.items(), strict=False):
        heights = [v if v is not None else 0.0 for v in values]
        errors = [e if e is not None else 0.0 for e in spreads.get(label, [None] * len(values))]
        ax.bar(range(len(variants)), heights, yerr=errors, capsize=4, color="#4c72b0")
        ax.set_xticks(range(len(variants)), list(variants), rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        finite = [h for h in heights if h]
        if finite:  # zoom in on the differences rather than on the distance from zero
            low, high = min(finite), max(finite)
            pad = (high - low) * 0.5 or abs(high) * 0.05 or 0.05
            ax.set_ylim(low - pad - max(errors), high + pad + max(errors))
    for ax in axes[len(means) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    return _png(plt, fig)
