"""Quality filters: the published heuristics, in datatrove's reference order.

    size (empty, min_chars) -> gopher_repetition -> gopher_quality -> c4 (removes lines)
        -> fineweb

Every filter implements one interface (`base.Filter`: `apply(view)` returns the view to pass
on or the reason to drop). `QualityFilters(config).check(doc)` runs the enabled ones in order
and returns `(doc, None)` when the document is kept (with the lines C4 removed, if any) or
`(None, reason)` when it is dropped. Reasons are short, stable strings `"<filter>:<rule>"`
(e.g. `gopher_quality:min_doc_words`, `c4:lorem_ipsum`), plus `empty` (no text at all, e.g.
an empty file, a page without main content, or nothing left after C4's line removal) and
`min_chars` (shorter than `FilterConfig.min_chars`). Each filter module lists its rules.
"""

from __future__ import annotations

import dataclasses

from smelt.corpus.config import FilterConfig
from smelt.corpus.document import Document
from smelt.corpus.filters.base import DocumentFilter, Filter
from smelt.corpus.filters.c4 import C4Quality
from smelt.corpus.filters.fineweb import FineWebQuality
from smelt.corpus.filters.gopher_quality import GopherQuality
from smelt.corpus.filters.gopher_repetition import GopherRepetition
from smelt.corpus.filters.text_utils import TextView

__all__ = [
    "C4Quality",
    "DocumentFilter",
    "Filter",
    "FineWebQuality",
    "GopherQuality",
    "GopherRepetition",
    "QualityFilters",
    "SizeFilter",
    "TextView",
]


class SizeFilter(DocumentFilter):
    """No text at all (`empty`), or fewer characters than `min_chars` (`min_chars`)."""

    name = "size"

    def __init__(self, min_chars: int) -> None:
        self.min_chars = min_chars

    def check(self, view: TextView) -> str | None:
        if not view.text or view.text.isspace():
            return "empty"
        if len(view.text) < self.min_chars:
            return "min_chars"
        return None

    def reason(self, rule: str) -> str:
        return rule  # `empty` and `min_chars` are reasons of their own, without a prefix


def enabled_filters(config: FilterConfig) -> list[Filter]:
    """The filters `config` switches on, in the order they run."""
    quality = config.gopher_quality
    # Texts over Gopher's word limit are rejected by it anyway: skip their n-gram counting.
    max_words = quality.max_doc_words if quality.enabled else 0
    candidates: list[tuple[bool, Filter]] = [
        (True, SizeFilter(config.min_chars)),
        (config.gopher_repetition.enabled, GopherRepetition(config.gopher_repetition, max_words)),
        (quality.enabled, GopherQuality(quality)),
        (config.c4.enabled, C4Quality(config.c4)),
        (config.fineweb.enabled, FineWebQuality(config.fineweb)),
    ]
    return [candidate for enabled, candidate in candidates if enabled]


class QualityFilters:
    """All enabled filters, applied in order; the first rule that trips names the reason."""

    def __init__(self, config: FilterConfig) -> None:
        self.config = config
        self.filters = enabled_filters(config)

    def check(self, doc: Document) -> tuple[Document | None, str | None]:
        """(doc, None) when kept, possibly with lines removed; (None, reason) when filtered."""
        view = TextView(doc.text)
        for step in self.filters:
            outcome = step.apply(view)
            if isinstance(outcome, str):
                return None, outcome
            view = outcome
        if view.text != doc.text:
            doc = dataclasses.replace(doc, text=view.text)
        return doc, None
