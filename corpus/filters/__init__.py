"""Quality filters: language first, then the published heuristics in datatrove's order.

    size (empty, min_chars) -> language -> code -> gopher_repetition -> gopher_quality
        -> c4 (removes lines) -> fineweb

Every filter implements one interface (`base.Filter`: `apply(view)` returns the view to pass
on or the reason to drop). `QualityFilters(config).check(doc)` runs the enabled ones in order
and returns `(doc, None)` when the document is kept (with the lines C4 removed, if any, and
its labels, the language, in `metadata`) or `(None, reason)` when it is dropped; `judge`
returns the labelled document in both cases, for the filtered documents a build keeps.
Reasons are short, stable strings `"<filter>:<rule>"` (e.g. `gopher_quality:min_doc_words`,
`c4:lorem_ipsum`, `language:de`), plus `empty` (no text at all, e.g. an empty file, a page
without main content, or nothing left after C4's line removal) and `min_chars` (shorter than
`FilterConfig.min_chars`). Each filter module lists its rules. The prose rules see the text
without its fenced code blocks (`TextView.prose`); the code rule bounds how much code there is.
"""

from __future__ import annotations

import dataclasses

from smelt.corpus.config import FilterConfig
from smelt.corpus.document import Document
from smelt.corpus.filters.base import DocumentFilter, Filter
from smelt.corpus.filters.c4 import C4Quality
from smelt.corpus.filters.code import CodeShare
from smelt.corpus.filters.fineweb import FineWebQuality
from smelt.corpus.filters.gopher_quality import GopherQuality
from smelt.corpus.filters.gopher_repetition import GopherRepetition
from smelt.corpus.filters.language import LanguageFilter
from smelt.corpus.filters.text_utils import TextView

__all__ = [
    "C4Quality",
    "CodeShare",
    "DocumentFilter",
    "Filter",
    "FineWebQuality",
    "GopherQuality",
    "GopherRepetition",
    "LanguageFilter",
    "QualityFilters",
    "SizeFilter",
    "TextView",
]


class SizeFilter(DocumentFilter):
    """No text at all (`empty`), or fewer characters than `min_chars` (`min_chars`)."""

    name = "size"
    measures_prose = False

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
        (config.language.enabled, LanguageFilter(config.language)),
        (config.code.enabled, CodeShare(config.code)),
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
        judged, reason = self.judge(doc)
        return (None, reason) if reason is not None else (judged, None)

    def judge(self, doc: Document) -> tuple[Document, str | None]:
        """The document with its labels in `metadata` and, when kept, C4's line removal;
        with the reason it is filtered, or None."""
        view = TextView(doc.text)
        for step in self.filters:
            outcome = step.apply(view)
            if isinstance(outcome, str):
                return self._labelled(doc, view.labels, doc.text), outcome
            view = outcome
        return self._labelled(doc, view.labels, view.text), None

    @staticmethod
    def _labelled(doc: Document, labels: dict[str, object], text: str) -> Document:
        if not labels and text == doc.text:
            return doc
        return dataclasses.replace(doc, text=text, metadata={**doc.metadata, **labels})
