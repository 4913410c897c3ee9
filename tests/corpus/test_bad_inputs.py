"""Every bad input ends quarantined or filtered with a readable reason, and nothing raises.

Each case runs through `process_file`, the same entry point the corpus build uses, and checks
the accounting identity: every input document counts once, in exactly one outcome.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from smelt.corpus.config import CorpusConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.pipeline import process_file
from smelt.corpus.readers import input_files
from smelt.corpus.stats import CorpusStats
from smelt.errors import InputError
from tests.corpus.conftest import GOOD_TEXT


def run(path: Path | str, config: CorpusConfig | None = None) -> tuple[CorpusStats, list]:
    stats = CorpusStats()
    items = list(process_file(str(path), config or CorpusConfig(), stats))
    stats.kept = sum(isinstance(i, Document) for i in items)
    assert stats.quarantined == sum(isinstance(i, Quarantined) for i in items)
    stats.check_identity()
    return stats, items


def reasons(items: list) -> list[str]:
    return [i.reason for i in items if isinstance(i, Quarantined)]


def test_random_binary_named_html(tmp_path) -> None:
    path = tmp_path / "binary.html"
    path.write_bytes(random.Random(0).randbytes(4096))
    stats, items = run(path)
    assert stats.input_docs == 1 and reasons(items) == ["binary content, not text"]


def test_binary_without_nul_bytes(tmp_path) -> None:
    path = tmp_path / "noisy.txt"
    path.write_bytes(bytes(b for b in random.Random(1).randbytes(8192) if b))
    _, items = run(path)
    assert reasons(items) == ["binary content, not text"]


def test_latin1_text_is_decoded_not_quarantined(tmp_path) -> None:
    text = GOOD_TEXT.replace("river valley", "rivière valley").replace("rice", "crème rice")
    path = tmp_path / "latin1.txt"
    path.write_bytes(text.encode("latin-1"))
    stats, items = run(path)
    assert stats.kept == 1 and "rivière" in items[0].text and "crème" in items[0].text


def test_undeterminable_encoding_is_quarantined(tmp_path) -> None:
    path = tmp_path / "mystery.txt"
    path.write_bytes(bytes(range(0x80, 0x100)) * 8)
    stats, items = run(path)
    assert stats.quarantined == 1
    assert reasons(items) == ["not UTF-8 and encoding could not be determined"]


@pytest.mark.parametrize(
    "name", ["empty.txt", "empty.html", "empty.jsonl", "empty.json", "empty.txt.gz"]
)
def test_empty_file_is_filtered_as_empty(tmp_path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"") if name.endswith(".gz") else b"")
    stats, items = run(path)
    assert items == [] and stats.input_docs == 1 and stats.filtered == {"empty": 1}


# How fast these pathological inputs go through is measured by `make bench`
# (bench/limits_bench.py); here a generous timeout only turns a hang into a failure.
@pytest.mark.timeout(300)
def test_huge_single_line_file_is_filtered_by_its_word_count(tmp_path) -> None:
    words = " ".join(f"word{i % 5003} and more" for i in range(1_000_000))  # ~16 MB, one line
    path = tmp_path / "one-line.txt"
    path.write_text(words)
    assert path.stat().st_size > 15_000_000
    stats, items = run(path)
    assert stats.input_docs == 1 and items == []
    assert stats.filtered == {"gopher_quality:max_doc_words": 1}


@pytest.mark.timeout(300)
def test_huge_single_word_file_is_filtered(tmp_path) -> None:
    path = tmp_path / "one-word.txt"
    path.write_bytes(b"a" * 15_000_000)
    stats, items = run(path)
    assert stats.input_docs == 1 and items == [] and sum(stats.filtered.values()) == 1


def test_jsonl_with_malformed_and_textless_lines(tmp_path) -> None:
    good = [
        json.dumps({"text": GOOD_TEXT + f"\nLine number {i} closes the story here."})
        for i in range(4)
    ]
    lines = [
        good[0],
        good[1],
        '{"text": "unterminated',
        good[2],
        json.dumps({"body": "x"}),
        good[3],
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    stats, items = run(path)
    assert stats.input_docs == 6 and stats.kept == 4 and stats.quarantined == 2
    assert reasons(items)[0].startswith("line 3: invalid JSON (")
    assert reasons(items)[1] == "line 5: no 'text' field"


def test_html_nested_100000_levels(tmp_path) -> None:
    """lxml stops at its depth limit: the page counts once, filtered as empty (nothing could be
    read), and nothing raises; the same paragraphs 100 levels deep are kept."""
    paragraphs = "".join(f"<p>{line}</p>" for line in GOOD_TEXT.splitlines())
    path = tmp_path / "deep.html"
    path.write_text("<html><body>" + "<div>" * 100_000 + paragraphs + "</div>" * 100_000)
    stats, items = run(path)
    assert stats.input_docs == 1 and items == [] and stats.filtered == {"empty": 1}
    path.write_text("<html><body>" + "<div>" * 100 + paragraphs + "</div>" * 100)
    stats, items = run(path)
    assert stats.kept == 1 and "\n".join(GOOD_TEXT.splitlines()[:2]) in items[0].text


def test_html_with_only_a_script(tmp_path) -> None:
    path = tmp_path / "script.html"
    path.write_text(
        "<html><head><script>var x = 1; document.write('hello world');</script></head></html>"
    )
    stats, items = run(path)
    assert items == [] and stats.filtered == {"empty": 1}


def test_truncated_gzip_keeps_records_read_so_far(tmp_path) -> None:
    rows = [json.dumps({"text": f"document {i} " + "lorem words " * 50}) for i in range(2000)]
    data = gzip.compress("\n".join(rows).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    config = CorpusConfig()
    stats, items = run(path, config)
    assert stats.quarantined == 1
    (reason,) = reasons(items)
    assert reason.startswith("truncated gzip stream") and "after" in reason
    assert 0 < stats.input_docs - 1 < 2000  # the records before the cut were read


def test_truncated_gzip_text_file(tmp_path) -> None:
    data = gzip.compress(GOOD_TEXT.encode() * 200)
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    stats, items = run(path)
    assert stats.input_docs == 1 and reasons(items)[0].startswith("truncated gzip stream")


def test_missing_input_path(tmp_path) -> None:
    missing = tmp_path / "does-not-exist"
    with pytest.raises(InputError) as info:
        input_files(str(missing))
    assert str(missing) in str(info.value) and "\n" not in str(info.value)
    stats, items = run(missing / "gone.jsonl")
    assert stats.input_docs == 1 and reasons(items) == [
        "file not found (was it removed while the build ran?)"
    ]


def test_directory_of_bad_inputs_adds_up(tmp_path) -> None:
    (tmp_path / "bin.html").write_bytes(b"\x00\x01\x02" * 100)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "good.txt").write_text(GOOD_TEXT)
    (tmp_path / "mixed.jsonl").write_text('{"text": "short"}\nnot json\n{"id": 1}\n')
    (tmp_path / "script.htm").write_text("<script>alert(1)</script>")
    total = CorpusStats()
    for file_uri in input_files(str(tmp_path)):
        stats, _ = run(file_uri)
        total.merge(stats)
    total.check_identity()
    assert total.input_docs == 7 and total.kept == 1 and total.quarantined == 3
    assert total.input_bytes > 0
