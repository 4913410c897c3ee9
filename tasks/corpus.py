"""What a corpus build shows in the Prefect UI: its counts as a table artifact."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_table_artifact


def publish_stats(summary: dict[str, Any], output_uri: str) -> None:
    """stats.json as the `corpus-stats` table artifact of the running flow."""
    create_table_artifact(
        key="corpus-stats",
        table=stats_rows(summary),
        description=f"Corpus build counts for {output_uri}",
    )


def stats_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """stats.json flattened into (count, value) rows, e.g. `filtered.gopher_quality`."""
    rows = []
    for key, value in summary.items():
        if isinstance(value, dict):
            rows.extend({"count": f"{key}.{sub}", "value": n} for sub, n in value.items())
        else:
            rows.append({"count": key, "value": value})
    return rows
