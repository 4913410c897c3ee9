"""Readers: every format, compressed or not, local and on S3, with stable ids."""

from __future__ import annotations

import gzip
import io
import json
import signal
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from smelt import storage
from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers import detect_format, input_files, read_documents
from smelt.corpus.readers.encoding import decode_bytes
from smelt.corpus.readers.jsonl import read_jsonl
from smelt.corpus.readers.timelimit import TimeLimitExceeded, call_with_time_limit
from smelt.errors import InputError
from tests.corpus.conftest import GOOD_HTML, GOOD_TEXT, warc_record

CONFIG = ReaderConfig()


def read_all(path: object, config: ReaderConfig = CONFIG) -> list[Document | Quarantined]:
    return list(read_documents(str(path), config))


def docs_of(items: list[Document | Quarantined]) -> list[Document]:
    return [i for i in items if isinstance(i, Document)]


def jsonl_bytes(rows: list[object]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


# --- listing ---------------------------------------------------------------------------------


def test_input_files_walks_directories_sorted_and_skips_hidden(tmp_path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("two")
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / ".hidden.txt").write_text("no")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.txt").write_text("no")
    assert input_files(str(tmp_path)) == [str(tmp_path / "a.txt"), str(tmp_path / "b" / "2.txt")]
    assert input_files(str(tmp_path / "a.txt")) == [str(tmp_path / "a.txt")]


def test_input_files_missing_path_is_a_clear_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match="not found: .*nowhere"):
        input_files(str(tmp_path / "nowhere"))


def test_input_files_empty_directory(tmp_path) -> None:
    with pytest.raises(InputError, match="holds no files"):
        input_files(str(tmp_path))


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.html", "html"),
        ("a.HTM", "html"),
        ("a.warc.gz", "warc"),
        ("a.jsonl.zst", "jsonl"),
        ("a.json", "json"),
        ("a.parquet", "parquet"),
        ("a.md", "text"),
        ("a.txt.gz", "text"),
        ("noext", "text"),
    ],
)
def test_detect_format(name: str, fmt: str) -> None:
    assert detect_format(f"s3://b/{name}") == fmt


# --- plain text ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["doc.txt", "doc.md", "doc.rst", "doc.unknown"])
def test_text_file_is_one_document_with_stable_id(tmp_path, name: str) -> None:
    path = tmp_path / name
    path.write_text(GOOD_TEXT)
    first, second = read_all(path), read_all(path)
    assert len(first) == 1 and isinstance(first[0], Document)
    assert first[0].text == GOOD_TEXT and first[0].source == str(path) and first[0].url is None
    assert first[0].id == second[0].id
    other = tmp_path / ("other-" + name)
    other.write_text(GOOD_TEXT)
    assert read_all(other)[0].id != first[0].id


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_text_is_read_transparently(tmp_path, suffix: str) -> None:
    raw = GOOD_TEXT.encode()
    data = gzip.compress(raw) if suffix == ".gz" else zstandard.ZstdCompressor().compress(raw)
    path = tmp_path / f"doc.txt{suffix}"
    path.write_bytes(data)
    assert [d.text for d in docs_of(read_all(path))] == [GOOD_TEXT]


def test_text_over_size_limit_is_quarantined(tmp_path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * 2000)
    items = read_all(path, ReaderConfig(text_max_bytes=1000))
    assert len(items) == 1 and isinstance(items[0], Quarantined)
    assert "too large" in items[0].reason


def test_latin1_is_decoded() -> None:
    text = "Café crème brûlée à la française, naïve façade, déjà vu."
    assert decode_bytes(text.encode("latin-1")) == text
    assert decode_bytes("Grüße aus Köln – “quoted”".encode("cp1252")) == "Grüße aus Köln – “quoted”"


def test_utf16_with_byte_order_mark_is_text() -> None:
    assert decode_bytes("Grüße, world".encode("utf-16")) == "Grüße, world"


def test_cyrillic_legacy_encoding_is_not_read_as_latin() -> None:
    text = "Привет, как дела? Это простой текст на русском языке для проверки кодировки."
    assert decode_bytes(text.encode("cp1251")) == text


# --- JSON / JSONL ----------------------------------------------------------------------------


def test_jsonl_fields_ids_and_urls(tmp_path) -> None:
    path = tmp_path / "data.jsonl"
    rows = [
        {"text": "first", "id": "given-1", "url": "http://a/"},
        {"text": "second"},
        {"text": "third", "id": 7, "url": None},
    ]
    path.write_bytes(jsonl_bytes(rows) + b"\n   \n")
    docs = docs_of(read_all(path))
    assert [d.text for d in docs] == ["first", "second", "third"]
    assert docs[0].id == "given-1" and docs[0].url == "http://a/"
    assert docs[2].id == "7" and docs[2].url is None
    assert docs[1].id == docs_of(read_all(path))[1].id  # derived ids are stable
    assert len({d.id for d in docs}) == 3


def test_jsonl_configurable_field_names(tmp_path) -> None:
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl_bytes([{"content": "body", "doc_id": "k", "link": "u"}])))
    config = ReaderConfig(text_field="content", id_field="doc_id", url_field="link")
    (doc,) = docs_of(read_all(path, config))
    assert (doc.text, doc.id, doc.url) == ("body", "k", "u")


def test_jsonl_bad_lines_are_quarantined_and_good_lines_kept(tmp_path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        jsonl_bytes([{"text": "good one"}])
        + b'{"text": "broken\n'
        + jsonl_bytes([{"title": "no text"}, {"text": 42}, [1, 2], {"text": "good two"}])
    )
    items = read_all(path)
    assert [d.text for d in docs_of(items)] == ["good one", "good two"]
    reasons = [i.reason for i in items if isinstance(i, Quarantined)]
    assert reasons[0].startswith("line 2: invalid JSON")
    assert reasons[1] == "line 3: no 'text' field"
    assert reasons[2] == "line 4: field 'text' is int, not a string"
    assert reasons[3] == "line 5: expected a JSON object, got list"


def test_json_list_object_and_jsonl_named_json(tmp_path) -> None:
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([{"text": "a"}, {"text": "b", "id": "x"}]))
    assert [(d.text, d.id == "x") for d in docs_of(read_all(listing))] == [
        ("a", False),
        ("b", True),
    ]
    single = tmp_path / "one.json"
    single.write_text(json.dumps({"text": "solo", "url": "http://s/"}))
    assert [(d.text, d.url) for d in docs_of(read_all(single))] == [("solo", "http://s/")]
    lines = tmp_path / "lines.json"
    lines.write_bytes(jsonl_bytes([{"text": "l1"}, {"text": "l2"}]))
    assert [d.text for d in docs_of(read_all(lines))] == ["l1", "l2"]
    broken = tmp_path / "broken.json"
    broken.write_text('{"text": ')
    (item,) = read_all(broken)
    assert isinstance(item, Quarantined) and item.reason.startswith("invalid JSON")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.binary(max_size=60)
        | st.builds(lambda t: json.dumps({"text": t}).encode(), st.text(max_size=30)),
        max_size=8,
    )
)
def test_jsonl_parser_never_raises_and_accounts_for_every_line(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    raw = b"\n".join(lines)
    items = list(read_jsonl("mem://x.jsonl", io.BufferedReader(io.BytesIO(raw)), CONFIG))
    expected = sum(
        1
        for i, line in enumerate(lines)
        if (line[3:] if i == 0 and line.startswith(b"\xef\xbb\xbf") else line).strip()
    )
    assert len(items) == expected
    for item in items:
        assert isinstance(item, Document | Quarantined)


# --- Parquet ---------------------------------------------------------------------------------


def test_parquet_rows_streamed_by_row_group(tmp_path) -> None:
    path = tmp_path / "rows.parquet"
    table = pa.table(
        {
            "text": [f"row {i}" for i in range(10)] + [None],
            "id": [f"id{i}" for i in range(10)] + ["id10"],
            "url": [None] * 11,
            "other": list(range(11)),
        }
    )
    pq.write_table(table, path, row_group_size=3)
    items = read_all(path)
    assert [d.text for d in docs_of(items)] == [f"row {i}" for i in range(10)]
    assert [d.id for d in docs_of(items)][:2] == ["id0", "id1"]
    assert (
        isinstance(items[-1], Quarantined)
        and items[-1].reason == "row 10: field 'text' is null, not a string"
    )


def test_parquet_without_text_column_is_quarantined(tmp_path) -> None:
    path = tmp_path / "notext.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    (item,) = read_all(path)
    assert isinstance(item, Quarantined) and "no 'text' column" in item.reason


def test_parquet_custom_columns(tmp_path) -> None:
    path = tmp_path / "custom.parquet"
    pq.write_table(pa.table({"content": ["x", "y"], "key": ["k1", "k2"]}), path)
    config = ReaderConfig(text_field="content", id_field="key")
    assert [(d.text, d.id) for d in docs_of(read_all(path, config))] == [("x", "k1"), ("y", "k2")]


# --- HTML ------------------------------------------------------------------------------------


def test_html_main_content_without_boilerplate(tmp_path) -> None:
    path = tmp_path / "page.html"
    path.write_text(GOOD_HTML)
    (doc,) = docs_of(read_all(path))
    assert "canals also made it possible" in doc.text
    assert "About us" not in doc.text and "All rights reserved" not in doc.text


def test_html_legacy_charset_from_meta(tmp_path) -> None:
    html = GOOD_HTML.replace('charset="utf-8"', 'charset="iso-8859-1"').replace(
        "river valley shows", "rivière valley shows"
    )
    path = tmp_path / "latin.htm"
    path.write_bytes(html.encode("latin-1"))
    (doc,) = docs_of(read_all(path))
    assert "rivière" in doc.text


def test_html_size_limit(tmp_path) -> None:
    path = tmp_path / "big.html"
    path.write_text(GOOD_HTML)
    (item,) = read_all(path, ReaderConfig(html_max_bytes=100))
    assert isinstance(item, Quarantined) and item.reason.startswith("html too large")


@pytest.mark.parametrize("html_format", ["markdown", "text"])
def test_html_time_limit_quarantines_a_slow_page(tmp_path, monkeypatch, html_format) -> None:
    finished: list[bool] = []

    def slow_extract(*args: object, **kwargs: object) -> str:
        end = time.monotonic() + 60
        while time.monotonic() < end:  # pure Python, like trafilatura's own loops
            pass
        finished.append(True)
        return "never"

    monkeypatch.setattr("trafilatura.extract", slow_extract)
    monkeypatch.setattr("trafilatura.bare_extraction", slow_extract)
    path = tmp_path / "slow.html"
    path.write_text(GOOD_HTML)
    (item,) = read_all(path, ReaderConfig(html_timeout_s=0.3, html_format=html_format))
    assert isinstance(item, Quarantined) and "timed out after 0.3 s" in item.reason
    assert finished == []  # the extraction was interrupted, not waited for


def _busy(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


def test_time_limit_rearms_an_outer_alarm() -> None:
    fired: list[bool] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        assert call_with_time_limit(lambda: _busy(0.05), 5.0) == "done"
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < left < 0.5
        time.sleep(0.6)
        assert fired == [True]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_time_limit_in_main_thread_and_in_worker_threads() -> None:
    assert call_with_time_limit(lambda: _busy(0.01), 1.0) == "done"
    with pytest.raises(TimeLimitExceeded):
        call_with_time_limit(lambda: _busy(10), 0.2)
    outcome: dict[str, object] = {}

    def worker() -> None:
        try:
            call_with_time_limit(lambda: _busy(10), 0.2)
        except TimeLimitExceeded:
            outcome["timed_out"] = True
        outcome["after"] = call_with_time_limit(lambda: _busy(0.01), 1.0)
        time.sleep(0.3)  # a cancelled watchdog must not fire later
        outcome["survived"] = True

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=120)  # a hang guard: the limit, not this wait, must end the busy loop
    assert not thread.is_alive()
    assert outcome == {"timed_out": True, "after": "done", "survived": True}


# --- WARC ------------------------------------------------------------------------------------


def _warc_bytes() -> bytes:
    return b"".join(
        [
            warc_record("warcinfo", body=b"software: test\r\n"),
            warc_record("request", uri="http://example.com/a", body=b"GET /a HTTP/1.1\r\n\r\n"),
            warc_record(
                uri="http://example.com/a", body=GOOD_HTML.encode(), record_id="<urn:uuid:aaaa>"
            ),
            warc_record(
                uri="http://example.com/b.txt",
                body=b"plain body text",
                content_type="text/plain",
                record_id="<urn:uuid:bbbb>",
            ),
            warc_record(
                uri="http://example.com/c.png",
                body=b"\x89PNG\r\n\x1a\n\x00\x00",
                content_type="image/png",
                record_id="<urn:uuid:cccc>",
            ),
        ]
    )


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_warc_response_records(tmp_path, suffix: str) -> None:
    raw = _warc_bytes()
    if suffix == ".gz":
        raw = gzip.compress(raw)
    elif suffix == ".zst":
        raw = zstandard.ZstdCompressor().compress(raw)
    path = tmp_path / f"crawl.warc{suffix}"
    path.write_bytes(raw)
    items = read_all(path)
    assert len(items) == 3
    html_doc, text_doc, image = items
    assert isinstance(html_doc, Document) and "canals also made it possible" in html_doc.text
    assert html_doc.url == "http://example.com/a" and html_doc.id == "urn:uuid:aaaa"
    assert isinstance(text_doc, Document) and text_doc.text == "plain body text"
    assert isinstance(image, Quarantined) and "unsupported content type image/png" in image.reason


def test_not_a_warc_file_is_quarantined(tmp_path) -> None:
    path = tmp_path / "fake.warc"
    path.write_text("this is not a web archive at all\n")
    (item,) = read_all(path)
    assert isinstance(item, Quarantined) and "WARC" in item.reason


# --- S3 --------------------------------------------------------------------------------------


def test_reading_from_s3(s3_bucket: str, monkeypatch) -> None:
    prefix = f"{s3_bucket}/raw"
    storage.write_bytes(f"{prefix}/a.jsonl.gz", gzip.compress(jsonl_bytes([{"text": "from s3"}])))
    storage.write_bytes(f"{prefix}/sub/b.txt", GOOD_TEXT.encode())
    storage.write_bytes(f"{prefix}/.hidden", b"skip me")
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": ["p0", "p1", "p2"]}), sink, row_group_size=1)
    storage.write_bytes(f"{prefix}/c.parquet", sink.getvalue().to_pybytes())
    files = input_files(prefix)
    assert files == [f"{prefix}/a.jsonl.gz", f"{prefix}/c.parquet", f"{prefix}/sub/b.txt"]
    texts = [d.text for f in files for d in docs_of(read_all(f))]
    assert texts == ["from s3", "p0", "p1", "p2", GOOD_TEXT]
    with pytest.raises(InputError):
        input_files(f"{s3_bucket}/missing")
