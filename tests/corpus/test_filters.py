"""Quality filters: a document that passes, and one that trips each rule."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smelt.corpus.config import FilterConfig
from smelt.corpus.document import Document
from smelt.corpus.filters import QualityFilters, TextView
from smelt.corpus.filters.c4 import count_sentences
from smelt.corpus.filters.gopher_repetition import (
    duplicated_ngram_chars,
    extend_keys,
    occurrences,
    top_ngram_chars,
    word_hashes,
)
from smelt.corpus.filters.text_utils import split_words
from tests.corpus.conftest import GOOD_TEXT, only

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
]


def doc(text: str) -> Document:
    return Document(id="d", text=text, source="test")


def check(text: str, config: FilterConfig | None = None) -> str | None:
    kept, reason = QualityFilters(config or FilterConfig()).check(doc(text))
    assert (kept is None) == (reason is not None)
    return reason


def prose(n_sentences: int, seed: int = 0) -> str:
    """Distinct sentences (no repeated 5-grams) with stop words, one per line."""
    lines = []
    for i in range(n_sentences):
        a, b, c = (WORDS[(seed + i * k) % len(WORDS)] for k in (1, 3, 7))
        lines.append(f"The {a} team went to the {b} field with {c} gear number {i}.")
    return "\n".join(lines)


def test_good_text_passes_every_filter() -> None:
    kept, reason = QualityFilters(FilterConfig()).check(doc(GOOD_TEXT))
    assert reason is None
    assert kept is not None and kept.text == GOOD_TEXT


@pytest.mark.parametrize("text", ["", "   \n\t  "])
def test_empty_text_is_filtered_as_empty(text: str) -> None:
    assert check(text) == "empty"


def test_min_chars() -> None:
    assert check("short text.", FilterConfig(min_chars=50)) == "min_chars"


def test_words_split_punctuation_runs_and_keep_apostrophes() -> None:
    assert split_words("Don't stop... it's fine, ok?") == [
        "Don't",
        "stop",
        "...",
        "it's",
        "fine",
        ",",
        "ok",
        "?",
    ]


# --- Gopher quality -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("The cat and the dog.", "min_doc_words"),
        (" ".join(f"the w{i} and" for i in range(40)), "max_doc_words"),
        ("the of and to be a an is it on at by " * 10, "min_avg_word_length"),
        ("the and " + " ".join("internationalization" for _ in range(60)), "max_avg_word_length"),
        (GOOD_TEXT + " #tag" * 20, "hash_word_ratio"),
        (GOOD_TEXT + " wait..." * 20, "ellipsis_word_ratio"),
        ("\n".join(f"• item {w} of the list with {w}" for w in WORDS), "bullet_lines_ratio"),
        (
            "\n".join(
                f"the {w} and the other things of {w} we saw in the old market..." for w in WORDS
            ),
            "ellipsis_lines_ratio",
        ),
        ("the and " + " ".join(str(1000 + i) for i in range(80)), "non_alpha_words_ratio"),
        (" ".join(f"{w} {v}" for w in WORDS for v in WORDS[:3]), "min_stop_words"),
    ],
)
def test_gopher_quality_rules(text: str, reason: str) -> None:
    config = only("gopher_quality", max_doc_words=100 if reason == "max_doc_words" else 100_000)
    assert check(text, config) == f"gopher_quality:{reason}"


def test_gopher_quality_rule_can_be_switched_off() -> None:
    assert check("The cat and the dog sat.", only("gopher_quality", min_doc_words=0)) is None


# --- Gopher repetition ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "\n\n".join(["A repeated paragraph of some length here."] * 3 + ["Other."]),
            "dup_para_frac",
        ),
        ("\n".join([prose(1, 5), "Same line.", "Same line.", "Same line."]), "dup_line_frac"),
        (prose(3) + " " + "buy now " * 40, "top_2_gram"),
    ],
)
def test_gopher_repetition_rules(text: str, reason: str) -> None:
    assert check(text, only("gopher_repetition")) == f"gopher_repetition:{reason}"


def test_gopher_repetition_duplicated_char_fractions() -> None:
    long_block = prose(4, 9).replace("\n", " ")
    paragraphs = [long_block, long_block] + [prose(1, s) for s in range(4)]
    no_ngrams = {"top_n_grams": (), "dup_n_grams": ()}
    config = only("gopher_repetition", dup_para_frac=0, **no_ngrams)
    assert check("\n\n".join(paragraphs), config) == "gopher_repetition:dup_para_char_frac"
    config = only("gopher_repetition", dup_line_frac=0, **no_ngrams)
    assert check("\n".join(paragraphs), config) == "gopher_repetition:dup_line_char_frac"


def test_gopher_repetition_top_ngram() -> None:
    text = " ".join(f"{w}{i}" for i, w in enumerate(WORDS * 2)) + " one two three" * 30
    config = only("gopher_repetition", top_n_grams=((3, 0.18),), dup_n_grams=())
    assert check(text, config) == "gopher_repetition:top_3_gram"


def test_gopher_repetition_duplicated_ngrams() -> None:
    block = " ".join(f"{w}x" for w in WORDS[:20])
    text = " ".join(f"{w}{i}" for i, w in enumerate(WORDS[:20])) + " " + block + " " + block
    config = only("gopher_repetition", top_n_grams=())
    assert check(text, config) == "gopher_repetition:dup_5_gram"
    config = only("gopher_repetition", top_n_grams=(), dup_n_grams=((5, 0.5), (6, 0.1)))
    assert check(text, config) == "gopher_repetition:dup_6_gram"


def ngram_stats(words: list[str], n: int) -> tuple[object, object, list[int]]:
    hashes = word_hashes(words)
    keys = hashes
    for size in range(2, n + 1):
        keys = extend_keys(keys, hashes, size)
    prefix = [0]
    for word in words:
        prefix.append(prefix[-1] + len(word))
    return keys, occurrences(keys), prefix


def test_duplicated_ngram_scan_jumps_past_repeats() -> None:
    words = ["a", "b", "a", "b", "a", "b", "c"]
    # 2-grams: ab ba ab(repeat: +2 chars, jump 2) ab(repeat: +2, jump 2) -> 4; bc occurs once
    keys, counts, prefix = ngram_stats(words, 2)
    assert counts.tolist() == [3, 2, 3, 2, 3, 1]
    assert duplicated_ngram_chars(keys, counts, prefix, 2) == 4
    assert top_ngram_chars(counts, prefix, 2) == 3 * 3  # "a b" three times


def reference_duplicated_chars(words: list[str], n: int) -> int:
    """The plain left-to-right scan over every position, as the published filter does it."""
    seen, repeated, index = set(), 0, 0
    while index < len(words) - n + 1:
        gram = tuple(words[index : index + n])
        if gram in seen:
            repeated += sum(map(len, gram))
            index += n
        else:
            seen.add(gram)
            index += 1
    return repeated


def reference_top_chars(words: list[str], n: int) -> int:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    gram, count = Counter(grams).most_common(1)[0]
    return len(" ".join(gram)) * count


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "bb", "c", "ddd", "e"]), min_size=6, max_size=60),
    st.integers(2, 6),
)
def test_hashed_ngram_counts_match_the_plain_implementation(words: list[str], n: int) -> None:
    keys, counts, prefix = ngram_stats(words, n)
    assert duplicated_ngram_chars(keys, counts, prefix, n) == reference_duplicated_chars(words, n)
    assert top_ngram_chars(counts, prefix, n) == reference_top_chars(words, n)


def test_good_text_has_no_repetition() -> None:
    assert check(GOOD_TEXT, only("gopher_repetition")) is None


# --- C4 -------------------------------------------------------------------------------------


def test_c4_removes_bad_lines_and_citations() -> None:
    text = "\n".join(
        [
            "Menu",
            "Please enable JavaScript to view the comments on this page.",
            "This site uses cookies to improve your experience with us.",
            "The river rose quickly after the storm in the hills.[1]",
            GOOD_TEXT,
            "Read more",
            "A line that ends without punctuation but has words",
            "It was the best of times, it was the worst of times...",
        ]
    )
    kept, reason = QualityFilters(only("c4")).check(doc(text))
    assert reason is None and kept is not None
    lines = kept.text.splitlines()
    assert lines[0] == "The river rose quickly after the storm in the hills."
    assert lines[1:] == GOOD_TEXT.splitlines()


def test_c4_drops_lines_with_very_long_words() -> None:
    text = GOOD_TEXT + "\n" + "A long " + "x" * 1200 + " word here."
    kept, _ = QualityFilters(only("c4")).check(doc(text))
    assert kept is not None and "xxx" not in kept.text


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "lorem_ipsum"),
        ("Use the function f(x) { return x; } in the code.", "curly_bracket"),
    ],
)
def test_c4_document_rules(extra: str, reason: str) -> None:
    assert check(GOOD_TEXT + "\n" + extra, only("c4")) == f"c4:{reason}"


def test_c4_min_num_sentences() -> None:
    assert check("\n".join(GOOD_TEXT.splitlines()[:4]), only("c4")) == "c4:min_num_sentences"
    assert check("\n".join(GOOD_TEXT.splitlines()[:4]), only("c4", min_num_sentences=4)) is None


def test_c4_counts_several_sentences_on_one_line() -> None:
    assert count_sentences('One. Two! Three? "Four."') == 4
    line = " ".join(GOOD_TEXT.splitlines())
    assert check(line, only("c4")) is None  # six sentences on a single line


def test_c4_switches() -> None:
    text = GOOD_TEXT + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit."
    assert check(text, only("c4", filter_lorem_ipsum=False)) is None


# --- FineWeb --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("\n".join(f"the {w} item of the list without an end" for w in WORDS), "line_punct_ratio"),
        ("\n".join(f"The {w} one." for w in WORDS), "short_line_ratio"),
        (GOOD_TEXT + "\n" + GOOD_TEXT.splitlines()[0], "char_dup_ratio"),
        ("\n".join(f"Item {w}, the {w} one.\n\n\n" for w in WORDS), "short_line_ratio"),
    ],
)
def test_fineweb_rules(text: str, reason: str) -> None:
    assert check(text, only("fineweb")) == f"fineweb:{reason}"


def test_fineweb_list_ratio() -> None:
    text = "\n".join(f"The {w} thing was long enough here." for w in WORDS)
    assert (
        check(text, only("fineweb", short_line_thr=2, new_line_ratio=0.1)) == "fineweb:list_ratio"
    )


def test_fineweb_exclude_zero_keeps_unpunctuated_text() -> None:
    text = " ".join(f"the {w} item of the list without an end" for w in WORDS)
    assert check(text, only("fineweb")) == "fineweb:line_punct_ratio"
    assert check(text, only("fineweb", line_punct_exclude_zero=True)) is None


# --- Pipeline -------------------------------------------------------------------------------


def test_order_repetition_before_quality() -> None:
    text = "Same line.\n" * 10  # too short for Gopher quality too: repetition reports first
    assert check(text) == "gopher_repetition:dup_line_frac"


def test_all_filters_disabled_keeps_anything_non_empty() -> None:
    config = only("c4", enabled=False)
    kept, reason = QualityFilters(config).check(doc("x"))
    assert reason is None and kept is not None and kept.text == "x"


def test_kept_doc_carries_c4_line_removal() -> None:
    original = doc(GOOD_TEXT + "\nMenu")
    kept, _ = QualityFilters(FilterConfig()).check(original)
    assert kept is not None and kept.text == GOOD_TEXT and original.text.endswith("Menu")


def test_text_view_caches_words() -> None:
    view = TextView("one two, three")
    assert view.words is view.words
    assert view.alnum_words == ["one", "two", "three"]


@pytest.mark.timeout(300)  # a hang guard; bench/limits_bench.py measures the speed
@pytest.mark.parametrize(
    ("name", "overrides", "expected"),
    [
        ("gopher_repetition", {}, "gopher_repetition:dup_5_gram"),
        ("gopher_quality", {"max_doc_words": 10_000_000}, "gopher_quality:min_stop_words"),
        ("c4", {}, "c4:min_num_sentences"),
        ("fineweb", {}, "fineweb:line_punct_ratio"),
    ],
)
def test_each_filter_runs_through_a_huge_single_line(name, overrides, expected) -> None:
    """Every rule of each filter gets the whole ~3 MB line (the word limit that would stop
    Gopher quality first is lifted) and returns its verdict."""
    text = " ".join(f"{WORDS[i % 26]}{i % 997}" for i in range(400_000))
    assert check(text, only(name, **overrides)) == expected
