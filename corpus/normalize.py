"""Text normalization before filtering: repair, canonicalize, clean up whitespace.

Steps, each switchable in `NormalizeConfig`:

1. mojibake repair with ftfy (`cafÃ©` -> `café`), restricted to encoding fixes: quotes,
   ligatures, full-width forms and HTML entities are left as written;
2. line breaks unified to `\n` (CR, CRLF, vertical tab, form feed, NEL, U+2028/U+2029);
3. control characters removed (C0 other than tab and newline, DEL, C1);
4. whitespace cleanup: exotic spaces (NBSP, thin, ideographic, ...) become a plain space,
   zero-width spaces and BOMs go, trailing spaces on each line go, runs of blank lines shrink
   to one blank line, and the text is stripped at both ends;
5. Unicode normalization (NFC by default), after every removal so that combining marks meet
   their final base character.

`normalize_text` is idempotent: applying it twice gives the same text as once (tested with
hypothesis). Pure-ASCII text skips ftfy, which is most of the cost.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata

import ftfy

from smelt.corpus.config import NormalizeConfig
from smelt.corpus.document import Document

_FTFY = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=True,
    fix_encoding=True,
    restore_byte_a0=True,
    replace_lossy_sequences=True,
    decode_inconsistent_utf8=True,
    fix_c1_controls=True,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=False,
    fix_surrogates=True,
    remove_control_chars=False,
    normalization=None,
    explain=False,
)

_LINE_BREAKS = re.compile("[\x0b\x0c\x85\u2028\u2029]")
# Regexes rather than str.translate: a scan that finds nothing is much faster than a
# per-character table lookup on non-ASCII text.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_ZERO_WIDTH = re.compile("[\u200b\ufeff]")
# Mojibake always involves a character from U+0080..U+00FF (UTF-8 lead and continuation bytes
# read as Latin-1/cp1252) or U+FFFD; text without any is left to ftfy's no-op, skipped here.
_MOJIBAKE_HINT = re.compile("[\u0080-\u00ff\ufffd]")
_BLANK_LINES = re.compile(r"\n{3,}")
_MAX_PASSES = 4


def repair_mojibake(text: str) -> str:
    """Undo text decoded with the wrong codec (ftfy's encoding fixes only)."""
    if text.isascii() or not _MOJIBAKE_HINT.search(text):
        return text
    return ftfy.fix_text(text, _FTFY)


def unify_line_breaks(text: str) -> str:
    """CR, CRLF and the Unicode line/paragraph separators -> `\\n`."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _LINE_BREAKS.sub("\n", text)


def strip_control_chars(text: str) -> str:
    """Remove C0 controls other than tab and newline, DEL and C1 controls."""
    return _CONTROLS.sub("", text)


def clean_whitespace(text: str) -> str:
    """Plain spaces, no trailing spaces, at most one blank line in a row, stripped ends."""
    if not text.isascii():
        text = _ZERO_WIDTH.sub("", _SPACES.sub(" ", text))
    text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))  # linear, unlike [ \t]+$
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _one_pass(text: str, config: NormalizeConfig) -> str:
    # Characters are removed before NFC, so that NFC sees the final neighbours of every mark.
    if config.fix_mojibake:
        text = repair_mojibake(text)
    text = unify_line_breaks(text)
    if config.strip_control_chars:
        text = strip_control_chars(text)
    if config.collapse_whitespace and not text.isascii():
        text = _ZERO_WIDTH.sub("", _SPACES.sub(" ", text))
    if config.unicode_form and not text.isascii():
        text = unicodedata.normalize(config.unicode_form, text)
    if config.collapse_whitespace:
        text = clean_whitespace(text)
    return text


def normalize_text(text: str, config: NormalizeConfig) -> str:
    """All enabled steps; repeated until the text stops changing when ftfy is involved.

    Without ftfy one pass is a fixed point. With it, a later step can expose new work for ftfy
    (removing a control character may join a mojibake sequence), so a changed non-ASCII text
    gets another pass, at most a few.
    """
    for _ in range(_MAX_PASSES):
        fixed = _one_pass(text, config)
        if fixed == text or not config.fix_mojibake or fixed.isascii():
            return fixed
        text = fixed
    return text


def normalize(doc: Document, config: NormalizeConfig) -> Document:
    """A copy of `doc` with normalized text (the same object when nothing changed)."""
    text = normalize_text(doc.text, config)
    if text == doc.text:
        return doc
    return dataclasses.replace(doc, text=text)
