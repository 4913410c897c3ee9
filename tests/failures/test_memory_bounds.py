"""Memory stays bounded whatever an input holds: every reader checks a document's size before
it becomes text (Arrow lengths, bounded reads), and decompression hands out bounded chunks.

A bomb here expands to 256 MiB under a 1 MiB document limit. What is measured is what the read
itself allocates: Python's allocations (tracemalloc, in a child process) and Arrow's (a proxy
memory pool), never the whole process's memory.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import pickle
import subprocess
import sys
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import zstandard

from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers import read_documents

LIMIT = 1 << 20  # readers.text_max_bytes (and html_max_bytes) in these tests
BOMB = 256 << 20  # what a bomb expands to
BOUND = 96 << 20  # the most a read may allocate at once
CONFIG = ReaderConfig(text_max_bytes=LIMIT, html_max_bytes=LIMIT)


_POOLS: list[pa.MemoryPool] = []  # a buffer frees into its pool: pools must outlive them


@contextlib.contextmanager
def arrow_peak() -> Iterator[dict[str, int]]:
    """The peak of Arrow's allocations inside the block (a proxy memory pool)."""
    arrow = pa.proxy_memory_pool(pa.default_memory_pool())
    _POOLS.append(arrow)
    previous = pa.default_memory_pool()
    pa.set_memory_pool(arrow)
    peak: dict[str, int] = {}
    try:
        yield peak
    finally:
        pa.set_memory_pool(previous)
        peak["arrow"] = arrow.max_memory()


def read(path) -> tuple[list, dict[str, int]]:
    """The items of `path` and the peak of Arrow's allocations while reading it."""
    with arrow_peak() as peak:
        items = list(read_documents(str(path), CONFIG))
    return items, peak


# Python's allocations are traced in a child process of one thread: CPython 3.11's tracemalloc
# can crash a process whose other threads (a test server's, Arrow's) allocate while it stops.
CHILD = """
import pickle, sys, tracemalloc
import pyarrow as pa
from smelt.corpus.readers import read_documents
config = pickle.loads(sys.stdin.buffer.read())
arrow = pa.proxy_memory_pool(pa.default_memory_pool())
pa.set_memory_pool(arrow)
tracemalloc.start()
items = list(read_documents(sys.argv[1], config))
peak = {"python": tracemalloc.get_traced_memory()[1], "arrow": arrow.max_memory()}
sys.stdout.buffer.write(pickle.dumps((items, peak)))
"""


def read_traced(path) -> tuple[list, dict[str, int]]:
    """The items of `path` and the peaks of Python's and Arrow's allocations while reading it."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        input=pickle.dumps(CONFIG),
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return pickle.loads(done.stdout)


def repeated(prefix: bytes, size: int, suffix: bytes) -> Iterator[bytes]:
    yield prefix
    chunk = b"a" * (1 << 20)
    for _ in range(size // len(chunk)):
        yield chunk
    yield suffix


def compress(kind: str, parts: Iterator[bytes]) -> bytes:
    if kind == "zst":
        compressor = zstandard.ZstdCompressor().compressobj()
        return b"".join(compressor.compress(p) for p in parts) + compressor.flush()
    out = []
    compressor = gzip.zlib.compressobj(1, gzip.zlib.DEFLATED, 31)
    out = [compressor.compress(p) for p in parts]
    return b"".join(out) + compressor.flush()


def warc_response(body_size: int) -> Iterator[bytes]:
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    head = (
        b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:bomb>\r\n"
        b"WARC-Date: 2024-01-01T00:00:00Z\r\nWARC-Target-URI: http://example.org/\r\n"
        b"Content-Type: application/http; msgtype=response\r\n"
        b"Content-Length: %d\r\n\r\n" % (len(http) + body_size)
    )
    return repeated(head + http, body_size, b"\r\n\r\n")


BOMBS = {
    "text.txt": (lambda: repeated(b"", BOMB, b""), "text file too large"),
    "doc.json": (lambda: repeated(b'{"text": "', BOMB, b'"}'), "json file too large"),
    "page.html": (
        lambda: repeated(b"<html><body><p>", BOMB, b"</p></body></html>"),
        "html too large",
    ),
    "crawl.warc": (lambda: warc_response(BOMB), "text too large"),
}


@pytest.mark.parametrize("kind", ["zst", "gz"])
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_decompression_bomb_is_quarantined_in_bounded_memory(tmp_path, name, kind):
    parts, reason = BOMBS[name]
    path = tmp_path / f"{name}.{kind}"
    path.write_bytes(compress(kind, parts()))
    items, peak = read_traced(path)
    assert [type(i) for i in items] == [Quarantined] and reason in items[0].reason
    assert peak["python"] < BOUND and peak["arrow"] < BOUND, peak


@pytest.mark.parametrize("kind", ["zst", "gz"])
def test_an_endless_jsonl_line_is_skipped_in_bounded_memory_and_the_next_line_read(tmp_path, kind):
    good = json.dumps({"id": "after", "text": "the line after the bomb"}).encode()
    path = tmp_path / f"rows.jsonl.{kind}"
    path.write_bytes(compress(kind, repeated(b'{"id": "bomb", "text": "', BOMB, b'"}\n' + good)))
    items, peak = read_traced(path)
    assert isinstance(items[0], Quarantined) and "longer than the limit" in items[0].reason
    assert [i.id for i in items[1:]] == ["after"]
    assert peak["python"] < BOUND and peak["arrow"] < BOUND, peak


def _parquet(path, table: pa.Table) -> None:
    """As other writers leave it: no Arrow schema stored, so a reader sees plain strings."""
    pq.write_table(table, path, compression="zstd", store_schema=False)


def test_a_tiny_parquet_file_holding_a_huge_string_is_not_read(tmp_path, monkeypatch):
    """The report: a 31 KB zstd Parquet file held one 1 GB string (here 64 MiB, limit 1 MiB)."""
    huge = pc.binary_repeat(pa.array(["a"], pa.string()), 64 << 20)
    path = tmp_path / "huge.parquet"
    _parquet(path, pa.table({"id": ["huge"], "text": huge}))
    assert path.stat().st_size < 100_000
    groups_read = []
    original = pq.ParquetFile.read_row_group
    monkeypatch.setattr(
        pq.ParquetFile,
        "read_row_group",
        lambda self, i, *a, **k: groups_read.append(i) or original(self, i, *a, **k),
    )
    items, peak = read(path)
    assert groups_read == []  # the footer said enough: the row group was never read
    assert len(items) == 1 and isinstance(items[0], Quarantined)
    assert "row group 0" in items[0].reason and "not read" in items[0].reason
    assert peak["arrow"] < 16 << 20, peak


def test_a_dictionary_of_one_string_repeated_in_every_row_is_not_expanded(tmp_path):
    """A 1 KB file whose every row points at the same 512 KiB dictionary entry: each cell is
    under the limit, the row group expands to 100 MiB."""
    cell = pc.binary_repeat(pa.array(["b"], pa.string()), 512 << 10)[0].as_py()
    path = tmp_path / "dictionary.parquet"
    _parquet(path, pa.table({"text": pa.array([cell] * 200).dictionary_encode()}))
    items, peak = read_traced(path)
    assert len(items) == 200 and all(isinstance(i, Quarantined) for i in items)
    assert "expand to 104,857,600 bytes" in items[0].reason
    assert peak["arrow"] < 32 << 20 and peak["python"] < 32 << 20, peak


def test_a_huge_id_cell_is_quarantined_like_a_huge_text(tmp_path):
    big_id = pc.binary_repeat(pa.array(["i"], pa.string()), 2 << 20)
    path = tmp_path / "ids.parquet"
    _parquet(
        path,
        pa.table(
            {
                "id": pa.concat_arrays([big_id, pa.array(["small"])]),
                "text": ["one document", "another document"],
            }
        ),
    )
    items, _ = read(path)
    assert isinstance(items[0], Quarantined) and "2,097,152 bytes" in items[0].reason
    assert isinstance(items[1], Document) and items[1].id == "small"


@pytest.mark.parametrize("kind", ["zst", "gz"])
def test_a_compressed_parquet_file_is_read_through_a_temporary_file(tmp_path, kind):
    plain = tmp_path / "rows.parquet"
    _parquet(plain, pa.table({"id": ["a", "b"], "text": ["first text", "second text"]}))
    path = tmp_path / f"rows.parquet.{kind}"
    path.write_bytes(compress(kind, iter([plain.read_bytes()])))
    items, _ = read(path)
    assert [(i.id, i.text) for i in items] == [("a", "first text"), ("b", "second text")]
