"""Code is not prose: the prose rules skip fenced blocks, the code rule bounds them, the alpha
rule counts words as Gopher defines them, and the named filter profiles."""

from __future__ import annotations

import pytest

from smelt.corpus.config import (
    PROFILES,
    CorpusConfig,
    FilterConfig,
    config_from_dict,
    load_config,
    resolve_config,
)
from smelt.corpus.document import Document
from smelt.corpus.filters import QualityFilters
from smelt.corpus.filters.text_utils import TextView, fenced_lines, split_prose
from smelt.errors import ConfigError
from tests.corpus.conftest import GOOD_TEXT, only

# A listing whose lines repeat (`}`), hold curly brackets and have no terminal punctuation:
# judged as prose, it breaks Gopher's duplicate-line rule, C4's bracket rule and FineWeb's
# line rules.
LISTING = "\n".join(
    ["fn main() {", "    let x = 1;", "    if x > 0 {", "        go();", "    }", "    }", "}", "}"]
    * 3
)
# The language filter is off here: these tests are about the prose rules (test_language.py
# covers it), and it would only add its model to every case.
NO_LANGUAGE = {"language": {"enabled": False}}


def check(text: str, config: FilterConfig | None = None) -> str | None:
    config = config or config_from_dict({"filters": NO_LANGUAGE}).filters
    return QualityFilters(config).check(Document(id="d", text=text, source="t"))[1]


def fenced(code: str, fence: str = "```") -> str:
    return f"{fence}\n{code}\n{fence}"


def test_prose_rules_skip_fenced_code() -> None:
    listing_allowed = config_from_dict(
        {"filters": {**NO_LANGUAGE, "code": {"max_code_fraction": 0.9}}}
    ).filters
    assert check(f"{GOOD_TEXT}\n{fenced(LISTING)}", listing_allowed) is None
    assert check(f"{GOOD_TEXT}\n{LISTING}", listing_allowed) is not None  # unfenced: prose


@pytest.mark.parametrize("rule", ["gopher_repetition", "fineweb"])
def test_each_prose_rule_ignores_the_listing(rule: str) -> None:
    assert check(f"{GOOD_TEXT}\n{fenced(LISTING)}", only(rule)) is None
    assert check(f"{GOOD_TEXT}\n{LISTING}", only(rule)) is not None  # the same lines, unfenced


def test_c4_keeps_listings_as_written_and_judges_only_prose() -> None:
    text = f"# Control flow\n{GOOD_TEXT}\n\n{fenced(LISTING)}\nThe `if` line ends here."
    kept, reason = QualityFilters(only("c4")).check(Document(id="d", text=text, source="t"))
    assert reason is None and kept is not None
    assert fenced(LISTING) in kept.text  # untouched, blank lines and indentation included
    assert "# Control flow" not in kept.text  # a heading without punctuation: C4 drops it
    assert "The `if` line ends here." in kept.text  # judged without backticks, kept as written
    unfenced, _ = QualityFilters(only("c4")).check(
        Document(id="d", text=f"{GOOD_TEXT}\n{LISTING}", source="t")
    )
    assert unfenced is not None and "let x = 1;" not in unfenced.text  # judged as prose
    with_brackets = f"{GOOD_TEXT}\n{fenced('if x { y(); }')}\nCall f(x) {{ x }} when ready."
    assert check(with_brackets, only("c4")) == "c4:curly_bracket"  # prose brackets still count
    assert check(f"{GOOD_TEXT}\n{fenced('if x { y(); }')}", only("c4")) is None


def test_code_rule_bounds_the_share_of_listings() -> None:
    text = f"{GOOD_TEXT}\n{fenced(chr(10).join([LISTING] * 3))}"
    assert TextView(text).code_fraction > 0.5
    assert check(text, only("c4", enabled=False)) == "code:max_code_fraction"
    relaxed = config_from_dict({"filters": {**NO_LANGUAGE, "code": {"max_code_fraction": 0.9}}})
    assert check(text, relaxed.filters) is None
    off = config_from_dict({"filters": {**NO_LANGUAGE, "code": {"enabled": False}}})
    assert check(text, off.filters) is None


def test_fences_are_found_as_commonmark_writes_them() -> None:
    text = "a\n~~~~ python\nx\n~~~\n```\n~~~~\ny"
    assert [in_code for _, in_code in fenced_lines(text)] == [
        False,
        True,
        True,
        True,
        True,
        True,
        False,
    ]
    prose, code_chars = split_prose("intro\n```\nunclosed\ncode")
    assert prose == "intro" and code_chars == len("\n```\nunclosed\ncode")
    assert split_prose("## Title\nUse `len(x)` here.")[0] == "Title\nUse len(x) here."
    assert TextView(GOOD_TEXT).prose.text is GOOD_TEXT  # plain text is its own prose


def test_alpha_rule_counts_words_not_punctuation() -> None:
    # Clean technical prose: every word has letters, but a third of the tokens are punctuation.
    sentence = "Call os.path.join(a, b), then read() the file; e.g., open(path, 'r')."
    text = "\n".join(f"{sentence} The result is the {i}th path of the list." for i in range(12))
    assert check(text, only("gopher_quality")) is None
    numbers = "The values are " + " ".join(str(1000 + i) for i in range(80)) + " and the end."
    assert check(numbers, only("gopher_quality")) == "gopher_quality:non_alpha_words_ratio"


# ---- profiles ----------------------------------------------------------------------------------

DOC_PAGE = (
    "## Options\n"
    "- `--fast`: skip the checks\n"
    "- `--quiet`: print nothing\n"
    f"{GOOD_TEXT}\n"
    "Filename: src/main.rs\n"
    f"{fenced('fn main() {}')}\n"
    "Filename: src/main.rs\n"
    f"{fenced('fn other() {}')}\n"
    "Call `f(x) { x }` on the value when the input is ready."
)


def test_docs_profile_keeps_documentation_the_web_profile_drops() -> None:
    web = config_from_dict({"filters": {**NO_LANGUAGE, "profile": "web"}}).filters
    docs = config_from_dict({"filters": {**NO_LANGUAGE, "profile": "docs"}}).filters
    assert check(DOC_PAGE, web) is not None
    assert check(DOC_PAGE, docs) is None


def test_docs_profile_still_drops_repetition() -> None:
    docs = config_from_dict({"filters": {**NO_LANGUAGE, "profile": "docs"}}).filters
    spam = GOOD_TEXT + "\n" + "Buy cheap watches online today at the best price.\n" * 20
    assert check(spam, docs).startswith("gopher_repetition:")


def test_web_profile_is_the_published_defaults() -> None:
    assert PROFILES["web"] == {}
    assert FilterConfig(profile="web") == FilterConfig()


def test_config_file_picks_a_profile_and_overrides_it(tmp_path) -> None:
    path = tmp_path / "docs.toml"
    path.write_text('[filters]\nprofile = "docs"\n[filters.c4]\nmin_num_sentences = 2\n')
    config = load_config(str(path))
    assert config.filters.c4.min_num_sentences == 2  # the file's value
    assert config.filters.c4.require_terminal_punct is False  # the profile's
    assert config.filters.code.max_code_fraction == PROFILES["docs"]["code"]["max_code_fraction"]
    assert config.filters.gopher_quality == CorpusConfig().filters.gopher_quality  # published


def test_an_override_that_picks_a_profile_gets_its_defaults(tmp_path) -> None:
    path = tmp_path / "pii.toml"
    path.write_text("[pii]\nner = false\n")
    config = resolve_config(str(path), {"filters": {"profile": "docs"}})
    assert config.pii.ner is False
    assert config.filters == FilterConfig(profile="docs")


def test_unknown_profile_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="filters.profile = 'book'"):
        config_from_dict({"filters": {"profile": "book"}})
