"""WARC archives (.warc, .warc.gz, .warc.zst): one document per HTTP response record.

Records are parsed by fastwarc; HTML bodies go through the same extractor as HTML files,
`text/plain` bodies are kept as they are, and the URL comes from WARC-Target-URI. A response
with another content type (images, PDFs, ...) is quarantined with its type, so every response
record is accounted for. The WARC-Record-ID is the input's own stable id and is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from fastwarc.warc import ArchiveIterator, WarcRecordType

from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers.encoding import DecodeError, decode_bytes
from smelt.corpus.readers.html import html_to_document
from smelt.corpus.readers.ids import derived_id

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", ""})
TEXT_TYPES = frozenset({"text/plain"})


def parse_content_type(value: str | None) -> tuple[str, str | None]:
    """`text/html; charset=ISO-8859-1` -> (`text/html`, `ISO-8859-1`)."""
    if not value:
        return "", None
    mime, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip("\"'") or None
    return mime.strip().lower(), charset


def read_warc(
    file_uri: str, stream: IO[bytes], config: ReaderConfig
) -> Iterator[Document | Quarantined]:
    """Response records -> documents; other record types (request, metadata, ...) are skipped."""
    records = 0
    responses = 0
    for record in ArchiveIterator(stream, parse_http=True):
        records += 1
        if record.record_type != WarcRecordType.response:
            continue
        yield _response_to_document(record, responses, file_uri, config)
        responses += 1
    if records == 0:
        yield Quarantined(file_uri, "not a WARC file: no WARC records found")


def _response_to_document(
    record: object, index: int, file_uri: str, config: ReaderConfig
) -> Document | Quarantined:
    url = record.headers.get("WARC-Target-URI")  # type: ignore[attr-defined]
    record_id = (record.record_id or "").strip("<>") or None  # type: ignore[attr-defined]
    http_headers = record.http_headers  # type: ignore[attr-defined]
    mime, charset = parse_content_type(http_headers.get("Content-Type") if http_headers else None)
    where = f"record {index} ({url})"
    if mime not in HTML_TYPES and mime not in TEXT_TYPES:
        return Quarantined(file_uri, f"{where}: unsupported content type {mime}", record_id)
    limit = config.html_max_bytes if mime in HTML_TYPES else config.text_max_bytes
    body = record.reader.read(limit + 1)  # type: ignore[attr-defined]
    if len(body) > limit:
        kind = "html" if mime in HTML_TYPES else "text"
        return Quarantined(file_uri, f"{where}: {kind} too large (> {limit:,} bytes)", record_id)
    if mime in HTML_TYPES:
        result = html_to_document(
            body,
            config,
            source=file_uri,
            position=index,
            url=url,
            doc_id=record_id,
            charset=charset,
        )
        if isinstance(result, Quarantined):
            result.reason = f"{where}: {result.reason}"
        else:
            result.metadata["format"] = "warc"
        return result
    try:
        text = decode_bytes(body, charset)
    except DecodeError as exc:
        return Quarantined(file_uri, f"{where}: {exc}", record_id)
    return Document(
        id=record_id or derived_id(file_uri, index, text),
        text=text,
        source=file_uri,
        url=url,
        metadata={"format": "warc"},
    )
