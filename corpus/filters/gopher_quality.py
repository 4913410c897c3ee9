"""Gopher quality rules (Rae et al. 2021, "Scaling Language Models", appendix A).

Semantics follow datatrove's GopherQualityFilter: word counts and the average word length use
word tokens only; the symbol and stop-word ratios divide by all tokens (punctuation included);
stop words are matched case-sensitively. A threshold of 0 switches its rule off.

One deliberate difference, the alpha rule: the paper asks that "80% of words in a document
contain at least one alphabetic character". datatrove divides by every token, punctuation
included, so a comma counts as a word without letters and clean, punctuation-heavy prose
(technical writing: `os.path.join(a, b)`, "e.g.", lists of options) fails it. Here the words
are the word tokens: a number is a word without letters, a punctuation token is not a word.

Reasons (prefixed `gopher_quality:`): min_doc_words, max_doc_words, min_avg_word_length,
max_avg_word_length, hash_word_ratio, ellipsis_word_ratio, bullet_lines_ratio,
ellipsis_lines_ratio, non_alpha_words_ratio, min_stop_words.
"""

from __future__ import annotations

from itertools import filterfalse

from smelt.corpus.config import GopherQualityConfig
from smelt.corpus.filters.base import DocumentFilter
from smelt.corpus.filters.text_utils import TextView, has_alpha

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
BULLETS = ("•", "-")
ELLIPSES = ("...", "…")


class GopherQuality(DocumentFilter):
    """Document-level rules on length, word shape, symbols, bullets and stop words."""

    name = "gopher_quality"

    def __init__(self, config: GopherQualityConfig) -> None:
        self.config = config

    def check(self, view: TextView) -> str | None:
        """The first rule the text breaks, or None when it passes."""
        return self._length_rules(view) or self._symbol_rules(view) or self._word_rules(view)

    def _length_rules(self, view: TextView) -> str | None:
        cfg = self.config
        if cfg.max_doc_words and view.more_words_than(cfg.max_doc_words):
            return "max_doc_words"  # checked first: cheap, and such a text has enough words
        words = view.alnum_words
        if cfg.min_doc_words and len(words) < cfg.min_doc_words:
            return "min_doc_words"
        if not words:
            return "min_doc_words"
        average = sum(map(len, words)) / len(words)
        if cfg.min_avg_word_length and average < cfg.min_avg_word_length:
            return "min_avg_word_length"
        if cfg.max_avg_word_length and average > cfg.max_avg_word_length:
            return "max_avg_word_length"
        return None

    def _symbol_rules(self, view: TextView) -> str | None:
        cfg = self.config
        text, n_tokens = view.text, len(view.words)
        if cfg.max_symbol_word_ratio:
            if text.count("#") / n_tokens > cfg.max_symbol_word_ratio:
                return "hash_word_ratio"
            ellipses = text.count("...") + text.count("…")
            if ellipses / n_tokens > cfg.max_symbol_word_ratio:
                return "ellipsis_word_ratio"
        lines = view.lines
        if cfg.max_bullet_lines_ratio:
            bullets = sum(1 for line in lines if line.lstrip().startswith(BULLETS))
            if bullets / len(lines) > cfg.max_bullet_lines_ratio:
                return "bullet_lines_ratio"
        if cfg.max_ellipsis_lines_ratio:
            trailing = sum(1 for line in lines if line.rstrip().endswith(ELLIPSES))
            if trailing / len(lines) > cfg.max_ellipsis_lines_ratio:
                return "ellipsis_lines_ratio"
        return None

    def _word_rules(self, view: TextView) -> str | None:
        cfg = self.config
        if cfg.max_non_alpha_words_ratio:
            words = view.alnum_words
            alpha = len(words) - sum(1 for w in filterfalse(str.isalpha, words) if not has_alpha(w))
            if alpha / len(words) < cfg.max_non_alpha_words_ratio:
                return "non_alpha_words_ratio"
        if cfg.min_stop_words:
            found = 0
            for word in view.words:
                if word in STOP_WORDS:
                    found += 1
                    if found >= cfg.min_stop_words:
                        return None
            return "min_stop_words"
        return None
