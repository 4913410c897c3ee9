"""JSON Lines and JSON inputs: one document per line / per object.

Field names (`text`, `id`, `url`) come from `ReaderConfig`. A bad line (invalid JSON, not an
object, no text field, text not a string, not UTF-8) is quarantined with its line number and
the good lines around it are kept. Blank lines are not records.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import IO, Any

from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers.ids import derived_id, given_id
from smelt.corpus.readers.stream import TooLarge, read_limited

_BOM = b"\xef\xbb\xbf"


def record_to_document(
    record: Any, config: ReaderConfig, *, source: str, label: str, position: int, fmt: str
) -> Document | Quarantined:
    """One parsed record -> Document, or Quarantined naming the record (`label`) and the fault."""
    if not isinstance(record, dict):
        return Quarantined(source, f"{label}: expected a JSON object, got {type(record).__name__}")
    raw_id = given_id(record.get(config.id_field))
    if config.text_field not in record:
        return Quarantined(source, f"{label}: no '{config.text_field}' field", raw_id)
    text = record[config.text_field]
    if not isinstance(text, str):
        kind = "null" if text is None else type(text).__name__
        return Quarantined(
            source, f"{label}: field '{config.text_field}' is {kind}, not a string", raw_id
        )
    url = record.get(config.url_field)
    return Document(
        id=raw_id or derived_id(source, position, text),
        text=text,
        source=source,
        url=url if isinstance(url, str) else None,
        metadata={"format": fmt},
    )


def _parse_line(raw: bytes, label: str) -> tuple[Any, str | None]:
    try:
        return json.loads(raw.decode("utf-8")), None
    except UnicodeDecodeError as exc:
        return None, f"{label}: not valid UTF-8 (byte {exc.start})"
    except json.JSONDecodeError as exc:
        return None, f"{label}: invalid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, f"{label}: invalid JSON (nested too deeply)"


def _skip_rest_of_line(stream: IO[bytes], chunk: int) -> int:
    """Skip to the end of an over-long line; returns the bytes skipped."""
    skipped = 0
    while True:
        part = stream.readline(chunk)
        skipped += len(part)
        if not part or part.endswith(b"\n"):
            return skipped


def read_jsonl(
    file_uri: str,
    stream: IO[bytes],
    config: ReaderConfig,
    start: int = 0,
    end: int | None = None,
) -> Iterator[Document | Quarantined]:
    """One document per non-blank line; with `start`/`end`, the lines that start in that range.

    A line belongs to the byte range it starts in, so ranges that tile a file read every line
    exactly once. Derived ids use the line's byte offset: the same whether or not the file was
    split. Labels say `line N` when reading from the start, `line at byte B` otherwise.
    """
    limit = config.text_max_bytes
    offset = start
    if start > 0:
        stream.seek(start - 1)
        offset = start - 1 + len(stream.readline())  # the end of the line that began before
    line_no = 0
    while end is None or offset < end:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        line_no += 1
        here, offset = offset, offset + len(raw)
        label = f"line {line_no}" if start == 0 else f"line at byte {here}"
        if here == 0 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if len(raw) > limit and not raw.endswith(b"\n"):
            offset += _skip_rest_of_line(stream, limit)
            yield Quarantined(file_uri, f"{label}: longer than the limit of {limit:,} bytes")
            continue
        if not raw.strip():
            continue
        record, error = _parse_line(raw, label)
        if error:
            yield Quarantined(file_uri, error)
            continue
        yield record_to_document(
            record, config, source=file_uri, label=label, position=here, fmt="jsonl"
        )


def read_json(
    file_uri: str, stream: IO[bytes], config: ReaderConfig
) -> Iterator[Document | Quarantined]:
    """A JSON object (one document) or a list of objects (one each); JSON Lines is accepted too."""
    try:
        raw = read_limited(stream, config.text_max_bytes)
    except TooLarge as exc:
        yield Quarantined(file_uri, f"json file too large: {exc}")
        return
    if not raw.strip():
        return
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        yield Quarantined(file_uri, f"json file is not valid UTF-8 (byte {exc.start})")
        return
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # several values, one per line: JSON Lines named .json
            yield from read_jsonl(file_uri, io.BytesIO(raw), config)
            return
        yield Quarantined(
            file_uri, f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        )
        return
    except RecursionError:
        yield Quarantined(file_uri, "invalid JSON (nested too deeply)")
        return
    records = data if isinstance(data, list) else [data]
    for index, record in enumerate(records):
        label = f"item {index}" if isinstance(data, list) else "top level"
        yield record_to_document(
            record, config, source=file_uri, label=label, position=index, fmt="json"
        )
