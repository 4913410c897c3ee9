"""Shared text measurements for the quality filters, computed once per text and cached.

Word splitting is one precompiled regex (no NLTK data to download): a word is a run of word
characters, with inner apostrophes kept (`don't`); a run of other non-space characters is one
punctuation token (`,` `...` `::` `->`). This mirrors what NLTK's Treebank tokenizer gives the
reference filters (punctuation as separate tokens, `...` whole) closely enough for the
published thresholds, at a small fraction of the cost.

Code is not prose. A text's *prose* (`TextView.prose`) is the text without its fenced code
blocks (Markdown ```` ``` ```` or `~~~` fences, as HTML extraction writes listings), without
the `#` marks of Markdown headings and without the backticks of inline code: what the
published rules were written to measure. A text without any of these is its own prose.
"""

from __future__ import annotations

import re
from functools import cached_property
from itertools import islice

TOKEN_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]+")
WORD_RE = re.compile(r"\w+(?:['’]\w+)*")
PARAGRAPH_SPLIT_RE = re.compile(r"\n{2,}")
LINE_SPLIT_RE = re.compile(r"\n+")
_HAS_ALPHA_RE = re.compile(r"[^\W\d_]")
FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING_MARK_RE = re.compile(r"^ {0,3}#{1,6}(?: +|$)")
_MARKDOWN_HINT_RE = re.compile(r"`|~~~|^ {0,3}#", re.MULTILINE)


def split_words(text: str) -> list[str]:
    """Word and punctuation tokens of `text`, in order."""
    return TOKEN_RE.findall(text)


def is_word(token: str) -> bool:
    """A token made of word characters (not a punctuation/symbol token)."""
    first = token[0]
    return first.isalnum() or first == "_"


def has_alpha(token: str) -> bool:
    """Whether the token contains at least one letter."""
    return token.isalpha() or _HAS_ALPHA_RE.search(token) is not None


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(number of items seen before, total characters of those repeats)."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def fenced_lines(text: str) -> list[tuple[str, bool]]:
    """Each line with whether it belongs to a fenced code block (fence lines included).

    A fence opens with three or more backticks or tildes and closes with a line of at least
    as many of the same character (CommonMark); an unclosed fence runs to the end.
    """
    lines: list[tuple[str, bool]] = []
    fence = ""
    for line in text.split("\n"):
        match = FENCE_RE.match(line)
        if not fence:
            if match:
                fence = match.group(1)
            lines.append((line, bool(match)))
        else:
            if match and _closes(match.group(1), line, fence):
                fence = ""
            lines.append((line, True))
    return lines


def _closes(marker: str, line: str, fence: str) -> bool:
    """A closing fence: the opening character, at least as many, nothing else on the line."""
    return marker[0] == fence[0] and len(marker) >= len(fence) and not line.strip(" " + fence[0])


def prose_line(line: str) -> str:
    """A prose line as plain text: no heading marks, no inline-code backticks."""
    if "#" in line:
        line = HEADING_MARK_RE.sub("", line)
    return line.replace("`", "") if "`" in line else line


def split_prose(text: str) -> tuple[str, int]:
    """(the prose of `text`, characters inside fenced code blocks, fences included)."""
    if not _MARKDOWN_HINT_RE.search(text):
        return text, 0
    prose: list[str] = []
    code_chars = 0
    for line, in_code in fenced_lines(text):
        if in_code:
            code_chars += len(line) + 1
            if prose and prose[-1]:
                prose.append("")  # a listing separates the paragraphs around it
        else:
            prose.append(prose_line(line))
    return "\n".join(prose).strip(), min(code_chars, len(text))


class TextView:
    """A text with its lines, paragraphs and tokens computed lazily, once.

    Filters share one view per text, so the text is split into words once for all of them.
    """

    __slots__ = ("text", "labels", "__dict__")

    def __init__(self, text: str, labels: dict[str, object] | None = None) -> None:
        self.text = text
        # what filters learn about the document on the way (its language): corpus columns
        self.labels: dict[str, object] = {} if labels is None else labels

    @cached_property
    def words(self) -> list[str]:
        """All tokens (words and punctuation), as the repetition rules count them."""
        return split_words(self.text)

    @cached_property
    def alnum_words(self) -> list[str]:
        """Tokens that are words, not punctuation or symbols."""
        return [w for w in self.words if is_word(w)]

    def more_words_than(self, limit: int) -> bool:
        """Whether the text has more than `limit` word tokens, without splitting all of it.

        Two words need at least one separator, so a text shorter than 2 * limit characters
        cannot; otherwise the scan stops at word `limit + 1`. This keeps a 15 MB one-line file
        from being tokenized only to learn that it is too long.
        """
        if "alnum_words" in self.__dict__:
            return len(self.alnum_words) > limit
        if len(self.text) < 2 * limit:
            return False
        return next(islice(WORD_RE.finditer(self.text), limit, None), None) is not None

    @cached_property
    def lines(self) -> list[str]:
        """`str.splitlines()` of the text."""
        return self.text.splitlines()

    @cached_property
    def _prose_split(self) -> tuple[TextView, int]:
        prose, code_chars = split_prose(self.text)
        return (self if prose == self.text else TextView(prose)), code_chars

    @property
    def prose(self) -> TextView:
        """The view of the text's prose (itself when the text has no Markdown code or marks)."""
        return self._prose_split[0]

    @property
    def code_fraction(self) -> float:
        """Share of the text's characters inside fenced code blocks."""
        return self._prose_split[1] / len(self.text) if self.text else 0.0
