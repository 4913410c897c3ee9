"""Plain text files (.txt, .md, .rst and anything not recognised): one document per file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers.encoding import DecodeError, decode_bytes
from smelt.corpus.readers.ids import derived_id
from smelt.corpus.readers.stream import TooLarge, read_limited


def read_text_file(
    file_uri: str, stream: IO[bytes], config: ReaderConfig
) -> Iterator[Document | Quarantined]:
    """The whole file as one document (quarantined when binary, undecodable or too large)."""
    try:
        raw = read_limited(stream, config.text_max_bytes)
    except TooLarge as exc:
        yield Quarantined(file_uri, f"text file too large: {exc}", derived_id(file_uri, 0, b""))
        return
    if not raw:
        return
    try:
        text = decode_bytes(raw)
    except DecodeError as exc:
        yield Quarantined(file_uri, str(exc), derived_id(file_uri, 0, raw))
        return
    yield Document(
        id=derived_id(file_uri, 0, text), text=text, source=file_uri, metadata={"format": "text"}
    )
