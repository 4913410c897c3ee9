"""Readers: any supported input file -> a stream of `Document`s (and `Quarantined` items).

`input_files(uri)` lists the files of an input (a file, a directory or an S3 prefix);
`read_documents(file_uri, config)` picks a reader by extension, after stripping `.gz`/`.zst`
(decompressed transparently while streaming):

    .html .htm .xhtml            trafilatura main-content extraction as Markdown, code listings
                                 in fenced blocks (`html_format = "text"`: plain text; size and
                                 time limits)
    .pdf                         the text layer of every page, one document per file (pypdfium2;
                                 size and time limits)
    .warc                        fastwarc; HTML responses through the same extractor
    .jsonl .ndjson / .json       one document per line / per object (text, id, url fields)
    .parquet .pq                 one document per row, streamed by row group
    anything else                plain text, one document per file

A reader never raises for a bad file: it yields `Quarantined(source, reason)`, after whatever
documents it could read (a truncated `.gz` keeps the records before the cut). A file that holds
no record at all (an empty file) yields one document with empty text, which the filters count
as `empty`, so every input file shows up in the statistics.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Iterator
from typing import IO

from smelt import storage
from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers.html import read_html
from smelt.corpus.readers.ids import derived_id
from smelt.corpus.readers.jsonl import read_json, read_jsonl
from smelt.corpus.readers.parquet import read_parquet
from smelt.corpus.readers.pdf import read_pdf
from smelt.corpus.readers.stream import TruncatedInput, open_stream, split_compression
from smelt.corpus.readers.text import read_text_file
from smelt.corpus.readers.warc import read_warc
from smelt.errors import InputError

log = logging.getLogger(__name__)

Reader = Callable[[str, IO[bytes], ReaderConfig], Iterator[Document | Quarantined]]

FORMATS: dict[str, str] = {
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".warc": "warc",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".pdf": "pdf",
}
READERS: dict[str, Reader] = {
    "html": read_html,
    "warc": read_warc,
    "jsonl": read_jsonl,
    "json": read_json,
    "parquet": read_parquet,
    "pdf": read_pdf,
    "text": read_text_file,
}

__all__ = ["detect_format", "input_files", "read_documents"]


def detect_format(file_uri: str) -> str:
    """Reader name for a file, from its extension once `.gz`/`.zst` is stripped."""
    name, _ = split_compression(file_uri)
    extension = posixpath.splitext(posixpath.basename(name))[1].lower()
    return FORMATS.get(extension, "text")


def input_files(uri: str) -> list[str]:
    """Every (non-hidden) file under a file, directory or S3 prefix, as sorted URIs.

    Raises `InputError` naming the input when it is missing, unreadable or holds no file.
    """
    storage.require_readable(uri)
    try:
        files = storage.list_files(uri)
    except PermissionError as exc:
        raise InputError(f"cannot list input {uri}: access denied ({exc})") from None
    except OSError as exc:
        raise InputError(f"cannot list input {uri}: {exc}") from None
    if not files:
        raise InputError(f"input {uri} holds no files (hidden files are skipped)")
    return files


def read_documents(
    file_uri: str, config: ReaderConfig, start: int = 0, end: int | None = None
) -> Iterator[Document | Quarantined]:
    """All documents of one file (or of one slice of a split JSONL/Parquet file), streaming;
    problems become `Quarantined` items, never errors."""
    fmt = detect_format(file_uri)
    produced = 0
    whole = start == 0 and end is None
    try:
        with open_stream(file_uri) as stream:
            reader = READERS[fmt]
            items = (
                reader(file_uri, stream, config)
                if whole
                else reader(file_uri, stream, config, start, end)  # type: ignore[call-arg]
            )
            for item in items:
                produced += 1
                yield item
    except TruncatedInput as exc:
        produced += 1
        suffix = f" after {produced - 1} record(s)" if produced > 1 else ""
        yield Quarantined(file_uri, f"{exc}{suffix}")
    except FileNotFoundError:
        produced += 1
        yield Quarantined(file_uri, "file not found (was it removed while the build ran?)")
    except PermissionError as exc:
        produced += 1
        yield Quarantined(file_uri, f"cannot read file: access denied ({exc})")
    except Exception as exc:  # noqa: BLE001 - one unreadable file must not stop a corpus build
        log.warning("unreadable %s file %s: %s", fmt, file_uri, exc)
        produced += 1
        yield Quarantined(file_uri, f"unreadable {fmt} file: {type(exc).__name__}: {exc}")
    if produced == 0 and whole:
        yield Document(
            id=derived_id(file_uri, "empty", b""),
            text="",
            source=file_uri,
            metadata={"format": fmt, "empty_file": True},
        )
