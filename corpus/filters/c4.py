"""C4 rules (Raffel et al. 2020, section 2.2; the TFDS `c4_utils` code for the extras).

Line-level rules remove lines: a line with a word longer than `max_word_length`, without
terminal punctuation (or ending in an ellipsis), with fewer than `min_words_per_line` words,
mentioning javascript, or with cookie/terms-of-use boilerplate; Wikipedia-style citations
(`[1]`, `[edit]`, `[citation needed]`) are cut out of kept lines. Document-level rules then
drop the page: "lorem ipsum" or a curly bracket in a kept line, or fewer than
`min_num_sentences` sentences left. Semantics and order follow datatrove's C4QualityFilter.

Sentences are counted with a regex (terminal punctuation, optional closing quotes/brackets,
then whitespace or end of line) instead of NLTK's Punkt, so an abbreviation such as "e.g."
inside a line counts as a sentence end. Integer thresholds <= 0 switch their rule off.

Code is kept out of it: lines of fenced code blocks are neither judged nor counted and stay
in the text as they are; the other lines are judged by their prose (`prose_line`: no heading
marks, no backticks) and kept as written.

Reasons (prefixed `c4:`): lorem_ipsum, curly_bracket, min_num_sentences.
"""

from __future__ import annotations

import re

from smelt.corpus.config import C4Config
from smelt.corpus.filters.base import Filter
from smelt.corpus.filters.text_utils import TextView, fenced_lines, prose_line

CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
SENTENCE_END_RE = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")
END_PUNCTUATION = (".", "?", "!", '"', "'")
ELLIPSIS = "..."
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


def count_sentences(line: str) -> int:
    """Sentences in one line (at least 1 for a non-empty line)."""
    return max(1, len(SENTENCE_END_RE.findall(line)))


class C4Quality(Filter):
    """Removes bad lines, then accepts or rejects what is left."""

    name = "c4"

    def __init__(self, config: C4Config) -> None:
        self.config = config

    def apply(self, view: TextView) -> TextView | str:
        """The view without its bad lines, or the reason to drop the document."""
        text, rule = self.remove_lines(view.text)
        if rule is not None:
            return self.reason(rule)
        if not text:
            return "empty"
        return view if text == view.text else TextView(text, view.labels)

    def remove_lines(self, text: str) -> tuple[str, str | None]:
        """(the text with bad lines removed, None), or ("", rule) when the document goes."""
        cfg = self.config
        kept: list[str] = []
        sentences = 0
        for written, in_code in fenced_lines(text):
            if in_code:
                kept.append(written)
                continue
            written = written.strip()
            line = prose_line(written)  # judged as plain text, kept as written
            words = line.split()
            if self._has_long_word(line, words):
                continue
            if cfg.remove_citations and "[" in line:
                line = CITATION_RE.sub("", line)
                written = CITATION_RE.sub("", written)
            if cfg.require_terminal_punct and (
                not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)
            ):
                continue
            if len(words) < cfg.min_words_per_line:
                continue
            lowered = line.lower()
            if cfg.filter_lorem_ipsum and "lorem ipsum" in lowered:
                return "", "lorem_ipsum"
            if cfg.filter_javascript and "javascript" in lowered:
                continue
            if cfg.filter_curly_bracket and "{" in line:
                return "", "curly_bracket"
            if cfg.filter_policy and any(p in lowered for p in POLICY_SUBSTRINGS):
                continue
            sentences += count_sentences(line)
            kept.append(written)
        if cfg.min_num_sentences > 0 and sentences < cfg.min_num_sentences:
            return "", "min_num_sentences"
        return "\n".join(kept).strip(), None

    def _has_long_word(self, line: str, words: list[str]) -> bool:
        limit = self.config.max_word_length
        return 0 < limit < len(line) and any(len(word) > limit for word in words)
