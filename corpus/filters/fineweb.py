"""FineWeb rules (Penedo et al. 2024, "The FineWeb Datasets"), after datatrove's filter.

- line_punct_ratio: share of lines ending in terminal punctuation <= `line_punct_thr`
  (a share of exactly 0 passes when `line_punct_exclude_zero`);
- short_line_ratio: share of lines of at most `short_line_length` characters >= `short_line_thr`;
- char_dup_ratio: characters in duplicated non-empty lines / characters (newlines excluded)
  >= `char_duplicates_ratio`;
- list_ratio: newlines per word token > `new_line_ratio`.

A threshold out of reach switches a rule off (e.g. `line_punct_thr = -1`, the others `2`).
Reasons are prefixed `fineweb:`.
"""

from __future__ import annotations

from smelt.corpus.config import FineWebConfig
from smelt.corpus.filters.base import DocumentFilter
from smelt.corpus.filters.text_utils import TextView, find_duplicates

STOP_CHARS = (".", "'", '"', "!", "?")


class FineWebQuality(DocumentFilter):
    """Document-level rules on line shape, duplicated lines and list-likeness."""

    name = "fineweb"

    def __init__(self, config: FineWebConfig) -> None:
        self.config = config

    def check(self, view: TextView) -> str | None:
        """The first rule the text breaks, or None."""
        cfg, text = self.config, view.text
        lines = text.split("\n")
        ratio = sum(1 for line in lines if line.endswith(STOP_CHARS)) / len(lines)
        if ratio <= cfg.line_punct_thr and not (ratio == 0 and cfg.line_punct_exclude_zero):
            return "line_punct_ratio"
        ratio = sum(1 for line in lines if len(line) <= cfg.short_line_length) / len(lines)
        if ratio >= cfg.short_line_thr:
            return "short_line_ratio"
        newlines = len(lines) - 1
        chars = len(text) - newlines
        if chars:
            duplicated = find_duplicates([line for line in lines if line.strip()])[1]
            if duplicated / chars >= cfg.char_duplicates_ratio:
                return "char_dup_ratio"
        if view.words and newlines / len(view.words) > cfg.new_line_ratio:
            return "list_ratio"
        return None
