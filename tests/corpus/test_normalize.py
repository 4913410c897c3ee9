"""Normalization: each step, its switch, and (with hypothesis) idempotence and robustness."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smelt.corpus.config import NormalizeConfig
from smelt.corpus.document import Document
from smelt.corpus.normalize import (
    clean_whitespace,
    normalize,
    normalize_text,
    repair_mojibake,
    strip_control_chars,
    unify_line_breaks,
)

DEFAULT = NormalizeConfig()


def test_mojibake_is_repaired() -> None:
    assert repair_mojibake("cafÃ© â€” naÃ¯ve") == "café — naïve"
    assert normalize_text("The Ã¼ber cafÃ© was open.", DEFAULT) == "The über café was open."


def test_mojibake_repair_leaves_quotes_and_ligatures_alone() -> None:
    text = "“Quoted” text with ﬁne ligatures and ＦＵＬＬ width"
    assert repair_mojibake(text) == text


def test_nfc_composes_combining_marks() -> None:
    decomposed = "cafe\u0301"
    assert normalize_text(decomposed, DEFAULT) == "caf\u00e9"
    assert normalize_text(decomposed, NormalizeConfig(unicode_form="")) == decomposed


def test_control_chars_removed_but_tab_and_newline_kept() -> None:
    assert strip_control_chars("a\x00b\x07c\td\ne\x7f\x85f\x1b") == "abc\td\nef"
    assert (
        normalize_text("a\x00b\x07c", NormalizeConfig(strip_control_chars=False)) == "a\x00b\x07c"
    )


def test_line_breaks_unified() -> None:
    assert unify_line_breaks("a\r\nb\rc\u2028d\x0ce") == "a\nb\nc\nd\ne"


def test_whitespace_cleanup() -> None:
    text = "  \n\nTitle\u00a0here  \nline\u200b two\t \n\n\n\n\nlast\u3000word \n\n"
    assert clean_whitespace(text) == "Title here\nline two\n\nlast word"


def test_indentation_is_kept() -> None:
    assert normalize_text("def f():\n    return 1", DEFAULT) == "def f():\n    return 1"


def test_whitespace_switch() -> None:
    config = NormalizeConfig(collapse_whitespace=False)
    assert normalize_text("a  \n\n\n\nb", config) == "a  \n\n\n\nb"


def test_mojibake_switch() -> None:
    assert normalize_text("cafÃ©", NormalizeConfig(fix_mojibake=False)) == "cafÃ©"


def test_normalize_returns_same_document_when_nothing_changes() -> None:
    doc = Document(id="x", text="Clean text.", source="s")
    assert normalize(doc, DEFAULT) is doc
    dirty = Document(id="x", text="Dirty text.  \r\n", source="s", url="u")
    fixed = normalize(dirty, DEFAULT)
    assert fixed == dataclasses.replace(dirty, text="Dirty text.")
    assert dirty.text == "Dirty text.  \r\n"


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", categories=None)
    | st.sampled_from(list("Ã©â€œ™\u00a0\u200b\u0301\r\n\t \x00\x85\u2028 ")),
    max_size=200,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXT)
def test_normalization_is_idempotent_and_never_raises(text: str) -> None:
    once = normalize_text(text, DEFAULT)
    assert normalize_text(once, DEFAULT) == once


@settings(max_examples=150, deadline=None)
@given(_TEXT)
def test_normalized_text_has_no_controls_or_trailing_space(text: str) -> None:
    out = normalize_text(text, DEFAULT)
    assert out == out.strip()
    assert not any(ord(c) < 32 and c not in "\t\n" for c in out)
    assert "\r" not in out and "\n\n\n" not in out
    assert all(line == line.rstrip(" \t") for line in out.split("\n"))
