"""Prefect task of fine-tuning's data step: a thin wrapper over `smelt.sft.run.prepare`."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from smelt.sft import run
from smelt.sft.config import SFTConfig


@task(name="tokenize-conversations", cache_policy=NONE)
def prepare_conversations(config: SFTConfig) -> dict[str, Any]:
    """Check the base, tokenize the conversations once (skipped when current), mark the run a
    chat model; a table of what was kept and dropped, by reason."""
    summary = run.prepare(config)
    rows = [
        {"outcome": f"kept ({split})", "conversations": n} for split, n in summary["kept"].items()
    ]
    rows.append({"outcome": "truncated at a turn (kept)", "conversations": summary["truncated"]})
    rows += [
        {"outcome": f"dropped: {reason}", "conversations": n}
        for reason, n in sorted(summary["dropped"].items())
    ]
    create_table_artifact(
        key="sft-data",
        table=rows,
        description=f"Conversations of {config.output}: {summary['summary']}",
    )
    return summary
