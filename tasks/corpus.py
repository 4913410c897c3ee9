"""What a corpus build shows in the Prefect UI: its counts, what the filters dropped (count and
a few short excerpts per reason) and the largest duplicate clusters, as artifacts."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from smelt.corpus.filtered import excerpt, samples_by_reason


def publish_stats(summary: dict[str, Any], output_uri: str) -> None:
    """stats.json as the `corpus-stats` table artifact of the running flow, and the filtered
    documents' reasons with excerpts as the `corpus-filtered` markdown artifact."""
    create_table_artifact(
        key="corpus-stats",
        table=stats_rows(summary),
        description=f"Corpus build counts for {output_uri}",
    )
    create_markdown_artifact(
        key="corpus-filtered",
        markdown=filtered_markdown(summary, samples_by_reason(output_uri)),
        description=f"What the quality filters and dedup dropped from {output_uri}",
    )


def stats_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """stats.json flattened into (count, value) rows, e.g. `filtered.gopher_quality`."""
    rows = []
    for key, value in summary.items():
        if isinstance(value, dict):
            rows.extend({"count": f"{key}.{sub}", "value": n} for sub, n in value.items())
        elif not isinstance(value, list):
            rows.append({"count": key, "value": value})
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def filtered_markdown(summary: dict[str, Any], samples: dict[str, list[dict[str, Any]]]) -> str:
    """Per reason: its count and a few short excerpts; then the largest duplicate clusters."""
    lines = ["## Filtered documents", "", "| reason | documents | examples |", "|---|---:|---|"]
    for reason, count in summary.get("filtered", {}).items():
        examples = "<br>".join(
            f"`{_cell(row['id'])}`: {_cell(excerpt(row['text'], 120))}"
            for row in samples.get(reason, [])
        )
        lines.append(f"| {reason} | {count:,} | {examples} |")
    clusters = summary.get("near_duplicate_clusters") or []
    if clusters:
        lines += [
            "",
            "## Largest duplicate clusters",
            "",
            "| size | kept | removed |",
            "|---:|---|---|",
        ]
        for found in clusters:
            removed = "<br>".join(
                f"`{_cell(r['id'])}`: {_cell(r['start'])}" for r in found["removed"]
            )
            kept = f"`{_cell(found['kept']['id'])}`: {_cell(found['kept']['start'])}"
            lines.append(f"| {found['size']} | {kept} | {removed} |")
    return "\n".join(lines) + "\n"
