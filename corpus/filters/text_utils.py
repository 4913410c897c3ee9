"""Shared text measurements for the quality filters, computed once per text and cached.

Word splitting is one precompiled regex (no NLTK data to download): a word is a run of word
characters, with inner apostrophes kept (`don't`); a run of other non-space characters is one
punctuation token (`,` `...` `::` `->`). This mirrors what NLTK's Treebank tokenizer gives the
reference filters (punctuation as separate tokens, `...` whole) closely enough for the
published thresholds, at a small fraction of the cost.
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


class TextView:
    """A text with its lines, paragraphs and tokens computed lazily, once.

    Filters share one view per text, so the text is split into words once for all of them.
    """

    __slots__ = ("text", "__dict__")

    def __init__(self, text: str) -> None:
        self.text = text

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
