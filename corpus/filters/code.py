"""The code rule: how much of a document may be code listings.

HTML extraction keeps `<pre>` listings as fenced Markdown blocks, and the prose rules measure
only the text around them (`TextView.prose`). This rule bounds the other side: a page that is
mostly listings with a caption is a code dump, not documentation. The share is characters in
fenced blocks (fences included) over all characters.

Reason (prefixed `code:`): max_code_fraction.
"""

from __future__ import annotations

from smelt.corpus.config import CodeConfig
from smelt.corpus.filters.base import DocumentFilter
from smelt.corpus.filters.text_utils import TextView


class CodeShare(DocumentFilter):
    """Drops documents whose fenced code blocks exceed `max_code_fraction` of the text."""

    name = "code"
    measures_prose = False

    def __init__(self, config: CodeConfig) -> None:
        self.config = config

    def check(self, view: TextView) -> str | None:
        if view.code_fraction > self.config.max_code_fraction:
            return "max_code_fraction"
        return None
