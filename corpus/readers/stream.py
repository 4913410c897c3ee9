"""Opening inputs as byte streams: local or S3, with `.gz` / `.zst` decompressed on the fly.

Readers stream (they never need the whole compressed object in memory) and a truncated
compressed stream surfaces as `TruncatedInput`, so a reader can keep the records it already
yielded and quarantine the rest with a readable reason.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import zlib
from collections.abc import Iterator
from typing import IO

import zstandard

from smelt import storage

COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_CHUNK = 1 << 20
_ZSTD_FEED = 1 << 10  # compressed bytes per decompression call (see _ZstdReader)


class TruncatedInput(Exception):
    """The compressed stream ended early or is corrupt (the message says which and how)."""


def split_compression(uri: str) -> tuple[str, str | None]:
    """`a/b.jsonl.gz` -> (`a/b.jsonl`, `gzip`); names without a known suffix -> (uri, None)."""
    lowered = uri.lower()
    for suffix, kind in COMPRESSIONS.items():
        if lowered.endswith(suffix):
            return uri[: -len(suffix)], kind
    return uri, None


class _ZstdReader(io.RawIOBase):
    """Streaming zstd decompression that notices truncation, in bounded memory.

    `zstandard`'s own stream reader returns a short read, without an error, when the last
    frame is cut off; this one raises `TruncatedInput` instead. Concatenated frames are read.
    Compressed bytes go to the decompressor `_ZSTD_FEED` at a time: a zstd block can expand
    about 32,768-fold (a 4-byte run-length block is 128 KiB), so one call yields at most
    ~32 MiB whatever the input (a decompression bomb is read as slowly as any other file,
    and the readers' per-document limits stop it).
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._pending = b""
        self._offset = 0
        self._compressed = memoryview(b"")  # read from the file ...
        self._fed = 0  # ... and decompressed up to here
        self._seen_input = False
        self._finished = False
        self._position = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        """Decompressed bytes delivered so far (fastwarc asks for record offsets)."""
        return self._position

    def _fill(self) -> None:
        while self._offset >= len(self._pending) and not self._finished:
            if self._fed >= len(self._compressed):
                self._compressed, self._fed = memoryview(self._raw.read(_CHUNK)), 0
            if not self._compressed:
                self._finished = True
                if self._seen_input and not self._obj.eof:
                    raise TruncatedInput("truncated zstd stream (the last frame is incomplete)")
                return
            self._seen_input = True
            if self._obj.eof:  # a new frame follows a complete one
                self._obj = self._dctx.decompressobj()
            feed = self._compressed[self._fed : self._fed + _ZSTD_FEED]
            self._fed += len(feed)
            self._pending, self._offset = self._obj.decompress(feed), 0
            if self._obj.eof and self._obj.unused_data:  # the next frame starts in this feed
                self._fed -= len(self._obj.unused_data)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            self._fill()
        except zstandard.ZstdError as exc:
            raise TruncatedInput(f"corrupt zstd stream: {exc}") from None
        available = len(self._pending) - self._offset
        n = min(len(buffer), available)
        buffer[:n] = self._pending[self._offset : self._offset + n]
        self._offset += n
        self._position += n
        return n


class _GuardedGzip(io.RawIOBase):
    """gzip with its end-of-stream and CRC errors turned into `TruncatedInput`."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        """Decompressed bytes delivered so far (fastwarc asks for record offsets)."""
        return self._gzip.tell()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:  # read1: one step at a time, so the data before a cut is delivered before the error
            data = self._gzip.read1(len(buffer))
        except EOFError:
            raise TruncatedInput(
                "truncated gzip stream (the file ends before its end marker)"
            ) from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise TruncatedInput(f"corrupt gzip stream: {exc}") from None
        buffer[: len(data)] = data
        return len(data)


@contextlib.contextmanager
def open_stream(uri: str) -> Iterator[IO[bytes]]:
    """A buffered binary stream of the object's decompressed bytes."""
    _, kind = split_compression(uri)
    with _open_raw(uri) as raw:
        if kind == "gzip":
            yield io.BufferedReader(_GuardedGzip(raw), buffer_size=_CHUNK)
        elif kind == "zstd":
            yield io.BufferedReader(_ZstdReader(raw), buffer_size=_CHUNK)
        else:
            yield raw


def _open_raw(uri: str) -> IO[bytes]:
    """A buffered, seekable binary file: a plain `open` locally, fsspec's S3 file otherwise."""
    if storage.is_s3(uri):
        return io.BufferedReader(storage.open_read(uri), buffer_size=_CHUNK)  # type: ignore[arg-type]
    return open(storage.normalize(uri), "rb", buffering=_CHUNK)  # noqa: SIM115 - caller closes


class TooLarge(Exception):
    """The (decompressed) input exceeds a configured size limit."""


def read_limited(stream: IO[bytes], max_bytes: int) -> bytes:
    """All remaining bytes of `stream`, or `TooLarge` once more than `max_bytes` arrive."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(f"larger than the limit of {max_bytes:,} bytes")
    return data
