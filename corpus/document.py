"""The unit every corpus stage consumes and yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Document:
    """One document: `id` is stable across runs (same input -> same id)."""

    id: str
    text: str
    source: str
    url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Quarantined:
    """An input, or part of one, that could not be processed: kept aside with the reason."""

    source: str
    reason: str
    id: str | None = None
    stage: str = "extract"
