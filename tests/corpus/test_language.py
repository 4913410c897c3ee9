"""Language identification: the label on every document, the `languages` filter, its place
first in the chain."""

from __future__ import annotations

import pytest

from smelt.corpus.config import config_from_dict
from smelt.corpus.document import Document
from smelt.corpus.filters import QualityFilters
from smelt.corpus.filters.language import identify
from smelt.errors import ConfigError
from tests.corpus.conftest import GOOD_TEXT

GERMAN = (
    "Die Geschichte des Flusstals zeigt, wie sich die Bauern über viele Jahrhunderte an die "
    "Hochwasser angepasst haben. Frühe Siedler bauten niedrige Mauern aus Stein und Erde, um "
    "ihre Felder vor dem Wasser im Frühling zu schützen. Spätere Generationen gruben Kanäle, "
    "die das überschüssige Wasser zu den trockenen Hügeln im Osten leiteten."
)
FRENCH = (
    "L'histoire de la vallée montre comment les paysans se sont adaptés aux crues pendant de "
    "nombreux siècles. Les premiers habitants construisirent des murets de pierre et de terre "
    "pour protéger leurs champs des eaux du printemps."
)
JAPANESE = "川の谷の歴史は、農民が何世紀にもわたって洪水にどのように適応してきたかを示しています。"


def judge(text: str, **language: object) -> tuple[Document, str | None]:
    config = config_from_dict({"filters": {"language": language}}).filters
    return QualityFilters(config).judge(Document(id="d", text=text, source="t"))


@pytest.mark.parametrize(
    ("text", "code"), [(GOOD_TEXT, "en"), (GERMAN, "de"), (FRENCH, "fr"), (JAPANESE, "ja")]
)
def test_identifies_the_language(text: str, code: str) -> None:
    language, score = identify(text)
    assert language == code and 0.5 < score <= 1.0


def test_every_document_is_labelled_kept_or_not() -> None:
    kept, reason = judge(GOOD_TEXT)
    assert reason is None and kept.metadata["language"] == "en"
    assert kept.metadata["language_score"] > 0.8
    dropped, reason = judge(GERMAN[:80])  # too short for the quality rules
    assert reason is not None and dropped.metadata["language"] == "de"


def test_languages_keeps_only_those_and_runs_first() -> None:
    assert judge(GOOD_TEXT, languages=["en"])[1] is None
    assert judge(GERMAN, languages=["en"])[1] == "language:de"  # not a Gopher/C4 reason
    assert judge(GERMAN, languages=["en", "de"])[1] != "language:de"


def test_min_score_filters_uncertain_documents() -> None:
    mixed = " ".join(a + " " + b for a, b in zip(GOOD_TEXT.split(), GERMAN.split(), strict=False))
    language, score = identify(mixed)
    assert score < 0.99
    assert judge(mixed, languages=[language], min_score=0.99)[1] == f"language:{language}"
    assert judge(mixed, languages=[language], min_score=0.0)[1] != f"language:{language}"


def test_code_is_not_read_as_english() -> None:
    code = "\n".join(["// the total size of all the items in the list", "let total = size;"] * 20)
    text = f"```\n{code}\n```\n{GERMAN}"
    assert identify(text)[0] == "en"  # the model alone reads the listing's comments
    labelled, _ = judge(text)
    assert labelled.metadata["language"] == "de"  # the filter reads the prose


def test_no_letters_is_unknown() -> None:
    assert identify("12 34 56 -- 78") == ("unknown", 0.0)
    assert judge("```\nx = 1\n```", languages=["en"])[1] == "language:unknown"


def test_switched_off_leaves_no_label() -> None:
    kept, reason = judge(GOOD_TEXT, enabled=False)
    assert reason is None and "language" not in kept.metadata


def test_language_codes_are_checked() -> None:
    with pytest.raises(ConfigError, match="filters.language.languages"):
        config_from_dict({"filters": {"language": {"languages": ["English"]}}})
