"""Accounting: every input document ends up kept, filtered, deduplicated or quarantined.

`CorpusStats` is what partitions report and what `stats.json` holds; the identity
`input_docs == kept + quarantined + sum(filtered) + sum(duplicates)` is checked when written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from smelt.errors import IntegrityError


@dataclass
class CorpusStats:
    """Counts for one partition or a whole corpus; `merge` adds another's counts."""

    input_docs: int = 0
    kept: int = 0
    quarantined: int = 0
    filtered: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=lambda: Counter({"exact": 0, "near": 0}))
    pii: Counter[str] = field(default_factory=Counter)
    input_bytes: int = 0
    kept_chars: int = 0

    def filter(self, reason: str, n: int = 1) -> None:
        """Count `n` documents dropped by a quality rule."""
        self.filtered[reason] += n

    def merge(self, other: CorpusStats) -> CorpusStats:
        """Add `other`'s counts into this one (in place) and return self."""
        self.input_docs += other.input_docs
        self.kept += other.kept
        self.quarantined += other.quarantined
        self.filtered.update(other.filtered)
        self.duplicates.update(other.duplicates)
        self.pii.update(other.pii)
        self.input_bytes += other.input_bytes
        self.kept_chars += other.kept_chars
        return self

    def accounted(self) -> int:
        """Documents whose fate is known."""
        return (
            self.kept
            + self.quarantined
            + sum(self.filtered.values())
            + sum(self.duplicates.values())
        )

    def check_identity(self) -> None:
        """Raise when a document went missing or was counted twice."""
        if self.input_docs != self.accounted():
            raise IntegrityError(
                f"stats do not add up: input_docs={self.input_docs} but kept + quarantined + "
                f"filtered + duplicates = {self.accounted()}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as in ARCHITECTURE.md's `stats.json`."""
        return {
            "input_docs": self.input_docs,
            "kept": self.kept,
            "quarantined": self.quarantined,
            "filtered": dict(sorted(self.filtered.items())),
            "duplicates": {"exact": self.duplicates["exact"], "near": self.duplicates["near"]},
            "pii": dict(sorted(self.pii.items())),
            "input_bytes": self.input_bytes,
            "kept_chars": self.kept_chars,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorpusStats:
        """Inverse of `to_dict`."""
        return cls(
            input_docs=data.get("input_docs", 0),
            kept=data.get("kept", 0),
            quarantined=data.get("quarantined", 0),
            filtered=Counter(data.get("filtered", {})),
            duplicates=Counter({"exact": 0, "near": 0, **data.get("duplicates", {})}),
            pii=Counter(data.get("pii", {})),
            input_bytes=data.get("input_bytes", 0),
            kept_chars=data.get("kept_chars", 0),
        )
