"""Quality filters: the published heuristics, in datatrove's reference order.

    empty -> gopher_repetition -> gopher_quality -> c4 (removes lines) -> fineweb

`QualityFilters(config).check(doc)` returns `(doc, None)` when the document is kept (with the
lines C4 removed, if any) or `(None, reason)` when it is dropped. Reasons are short, stable
strings `"<filter>:<rule>"` (e.g. `gopher_quality:min_doc_words`, `c4:lorem_ipsum`), plus
`empty` (no text at all, e.g. an empty file or a page without main content) and `min_chars`
(shorter than `FilterConfig.min_chars`). Each filter module lists its rules.
"""

from __future__ import annotations

import dataclasses

from smelt.corpus.config import FilterConfig
from smelt.corpus.document import Document
from smelt.corpus.filters.c4 import C4Quality
from smelt.corpus.filters.fineweb import FineWebQuality
from smelt.corpus.filters.gopher_quality import GopherQuality
from smelt.corpus.filters.gopher_repetition import GopherRepetition
from smelt.corpus.filters.text_utils import TextView

__all__ = [
    "C4Quality",
    "FineWebQuality",
    "GopherQuality",
    "GopherRepetition",
    "QualityFilters",
    "TextView",
]


class QualityFilters:
    """All enabled filters, applied in order; the first rule that trips names the reason."""

    def __init__(self, config: FilterConfig) -> None:
        self.config = config
        rep, quality = config.gopher_repetition, config.gopher_quality
        self.repetition = GopherRepetition(rep) if rep.enabled else None
        self.quality = GopherQuality(quality) if quality.enabled else None
        self.c4 = C4Quality(config.c4) if config.c4.enabled else None
        self.fineweb = FineWebQuality(config.fineweb) if config.fineweb.enabled else None
        # Texts over Gopher's word limit are rejected by it anyway: skip their n-gram counting.
        self._max_words = quality.max_doc_words if quality.enabled else 0

    def check(self, doc: Document) -> tuple[Document | None, str | None]:
        """(doc, None) when kept, possibly with lines removed; (None, reason) when filtered."""
        reason = self._size_rule(doc.text)
        if reason:
            return None, reason
        view = TextView(doc.text)
        if self.repetition and (reason := self.repetition.check(view, max_words=self._max_words)):
            return None, f"{self.repetition.name}:{reason}"
        if self.quality and (reason := self.quality.check(view)):
            return None, f"{self.quality.name}:{reason}"
        if self.c4:
            text, reason = self.c4.apply(view.text)
            if reason:
                return None, f"{self.c4.name}:{reason}"
            if not text:
                return None, "empty"
            if text != view.text:
                view = TextView(text)
        if self.fineweb and (reason := self.fineweb.check(view)):
            return None, f"{self.fineweb.name}:{reason}"
        if view.text != doc.text:
            doc = dataclasses.replace(doc, text=view.text)
        return doc, None

    def _size_rule(self, text: str) -> str | None:
        if not text or text.isspace():
            return "empty"
        if len(text) < self.config.min_chars:
            return "min_chars"
        return None
