"""Conversation files as fine-tuning reads them: records out of JSONL, JSON and Parquet files.

`--data` names files, directories or s3:// prefixes; every `.jsonl`/`.ndjson`, `.json` and
`.parquet` file under them is read (`.gz`/`.zst` decompressed on the fly), other files are
skipped with a warning. Each file holds one form of conversation (`smelt.chat.FORMS`): named by
the caller, or detected from the first record of the file that looks like one. A record that
cannot be read (invalid JSON, not an object, not in the file's form) does not stop the build:
it comes out as a `BadRecord` with a reason, which the build counts as a drop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from smelt.chat import Message, detect_form, to_messages
from smelt.corpus.partition import InputFile, list_inputs
from smelt.corpus.readers import detect_format
from smelt.corpus.readers.stream import TruncatedInput, open_stream
from smelt.corpus.tables import iter_batches
from smelt.errors import InputError

log = logging.getLogger(__name__)

READABLE = ("jsonl", "json", "parquet")
AUTO = "auto"
PARQUET_BATCH_ROWS = 256


@dataclass(frozen=True)
class Conversation:
    """One readable record: where it came from and its messages."""

    label: str  # `FILE line N` / `FILE row N`, for messages
    messages: list[Message]
    form: str  # the form it was read in (smelt.chat.FORMS)


@dataclass(frozen=True)
class BadRecord:
    """A record that is no conversation, and why (`reason` is the category that is counted)."""

    label: str
    reason: str  # "invalid_json" or "malformed"
    detail: str


def list_data_files(uris: list[str]) -> list[InputFile]:
    """Every conversation file under `uris`, with its identity (size and version), sorted."""
    if not uris:
        raise InputError(
            "no --data given: name at least one JSONL or Parquet file of conversations"
        )
    files = list_inputs(uris)
    readable = [f for f in files if detect_format(f.uri) in READABLE]
    for skipped in files:
        if detect_format(skipped.uri) not in READABLE:
            log.warning("skipping %s: not a JSONL, JSON or Parquet file", skipped.uri)
    if not readable:
        raise InputError(
            f"no JSONL, JSON or Parquet file under {', '.join(uris)}; conversations are read "
            "from .jsonl, .json and .parquet files (optionally .gz or .zst)"
        )
    return readable


def read_conversations(file_uri: str, form: str = AUTO) -> Iterator[Conversation | BadRecord]:
    """Every record of one file as a `Conversation` or a `BadRecord`, in file order."""
    file_form = None if form == AUTO else form
    for label, record in _records(file_uri):
        if isinstance(record, BadRecord):
            yield record
            continue
        if not isinstance(record, dict):
            yield BadRecord(
                label, "malformed", f"expected a JSON object, got {type(record).__name__}"
            )
            continue
        if file_form is None:
            try:
                file_form = detect_form(record)
            except InputError as exc:
                yield BadRecord(label, "malformed", str(exc))
                continue
            log.info("%s: conversations in %s form", file_uri, file_form)
        try:
            yield Conversation(label, to_messages(record, file_form), file_form)
        except InputError as exc:
            yield BadRecord(label, "malformed", f"not a conversation in {file_form} form: {exc}")


def _records(file_uri: str) -> Iterator[tuple[str, Any]]:
    """(label, parsed record or BadRecord) of every record of a file."""
    fmt = detect_format(file_uri)
    try:
        if fmt == "parquet":
            yield from _parquet_records(file_uri)
        elif fmt == "json":
            yield from _json_records(file_uri)
        else:
            yield from _jsonl_records(file_uri)
    except TruncatedInput as exc:
        yield f"{file_uri} (end)", BadRecord(f"{file_uri} (end)", "invalid_json", str(exc))


def _jsonl_records(file_uri: str) -> Iterator[tuple[str, Any]]:
    with open_stream(file_uri) as stream:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            label = f"{file_uri} line {number}"
            yield label, _parse(raw, label)


def _json_records(file_uri: str) -> Iterator[tuple[str, Any]]:
    """A JSON array of records, one object, or JSON Lines named .json."""
    with open_stream(file_uri) as stream:
        raw = stream.read()
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        lines = raw.splitlines()
        for number, line in enumerate(lines, start=1):
            if line.strip():
                label = f"{file_uri} line {number}"
                yield label, _parse(line, label)
        return
    records = data if isinstance(data, list) else [data]
    for index, record in enumerate(records):
        yield f"{file_uri} item {index}", record


def _parquet_records(file_uri: str) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    from smelt import storage

    with storage.open_read(file_uri) as fh:
        columns = pq.ParquetFile(fh).schema_arrow.names
    row = 0
    for batch in iter_batches(file_uri, columns, PARQUET_BATCH_ROWS):
        for record in batch.to_pylist():
            row += 1
            yield f"{file_uri} row {row}", record


def _parse(raw: bytes, label: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        return BadRecord(label, "invalid_json", f"not valid UTF-8 (byte {exc.start})")
    except (json.JSONDecodeError, RecursionError) as exc:
        return BadRecord(label, "invalid_json", f"invalid JSON ({exc})")
