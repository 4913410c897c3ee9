"""Reading, writing and listing objects behind a URI, local or S3.

Writes are atomic: a reader sees either the old object or the whole new one, never a part.
Locally that is a temporary file in the same directory renamed over the target; on S3 a PUT (or
a completed multipart upload) is atomic by itself.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

from smelt.errors import InputError
from smelt.storage import uri as uris
from smelt.storage.retry import retry


@retry()
def exists(uri: str) -> bool:
    """Whether an object (or a non-empty prefix/directory) exists at `uri`."""
    fs, path = uris.filesystem(uri)
    return fs.exists(path)


@retry()
def is_dir(uri: str) -> bool:
    """Whether `uri` is a directory (local) or a prefix holding objects (S3)."""
    fs, path = uris.filesystem(uri)
    return fs.isdir(path)


@retry()
def list_files(uri: str, suffixes: Iterable[str] | None = None) -> list[str]:
    """All files under `uri` (recursively), as sorted URIs; `uri` itself if it is a file.

    Hidden files and temporary files of atomic writes (names starting with `.`) are skipped.
    """
    fs, path = uris.filesystem(uri)
    if fs.isfile(path):
        found = [path]
    else:
        found = [
            p
            for p in fs.find(path)
            if not any(part.startswith(".") for part in p[len(path) :].split("/"))
        ]
    wanted = tuple(suffixes) if suffixes else None
    result = [uris.to_uri(fs, p) for p in found if wanted is None or p.endswith(wanted)]
    return sorted(result)


@retry()
def size(uri: str) -> int:
    """Size of an object in bytes."""
    fs, path = uris.filesystem(uri)
    return int(fs.size(path))


@retry()
def read_bytes(uri: str) -> bytes:
    """Whole object as bytes."""
    fs, path = uris.filesystem(uri)
    return fs.cat_file(path)


def read_text(uri: str) -> str:
    """Whole object as UTF-8 text."""
    return read_bytes(uri).decode("utf-8")


@retry()
def read_range(uri: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of an object (an HTTP range read on S3)."""
    fs, path = uris.filesystem(uri)
    return fs.cat_file(path, start=start, end=end)


def open_read(uri: str) -> IO[bytes]:
    """A binary file object for streaming reads (seekable; ranged reads on S3)."""
    fs, path = uris.filesystem(uri)
    return fs.open(path, "rb")


@contextlib.contextmanager
def atomic_local_path(target_uri: str, suffix: str = "") -> Iterator[str]:
    """Yield a local temporary path; on success, move its content atomically to `target_uri`.

    On an exception the temporary file is removed and the target is left untouched.
    """
    if uris.is_s3(target_uri):
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=".smelt-")
    else:
        target = uris.normalize(target_uri)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            suffix=suffix, prefix=f".{os.path.basename(target)}.", dir=os.path.dirname(target)
        )
    os.close(fd)
    try:
        yield tmp
        put_file(tmp, target_uri)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def write_bytes(uri: str, data: bytes) -> None:
    """Atomically write `data` to `uri`."""
    with atomic_local_path(uri) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text(uri: str, text: str) -> None:
    """Atomically write UTF-8 text to `uri`."""
    write_bytes(uri, text.encode("utf-8"))


def put_file(local_path: str, uri: str) -> None:
    """Atomically place a local file at `uri` (rename locally, verified upload on S3)."""
    if uris.is_s3(uri):
        from smelt.storage.transfer import upload_file

        upload_file(local_path, uri)
        return
    target = uris.normalize(uri)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.dirname(os.path.abspath(local_path)) == os.path.dirname(target):
        os.replace(local_path, target)
    else:  # a different directory may be a different filesystem: copy next to it, then rename
        put_file_copy(local_path, target)
    _fsync_dir(os.path.dirname(target))


def get_file(uri: str, local_path: str) -> None:
    """Copy the object at `uri` to a local path (atomically)."""
    if uris.is_s3(uri):
        from smelt.storage.transfer import download_file

        download_file(uri, local_path)
        return
    put_file_copy(uris.normalize(uri), local_path)


def put_file_copy(src: str, dst: str) -> None:
    """Copy a local file to a local destination atomically (flushed to disk before the rename)."""
    with atomic_local_path(dst) as tmp, open(src, "rb") as fin, open(tmp, "wb") as fout:
        while chunk := fin.read(1 << 22):
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())


@retry()
def delete(uri: str, recursive: bool = False) -> None:
    """Remove an object, or everything under a prefix with `recursive=True`; missing is fine."""
    fs, path = uris.filesystem(uri)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)


def require_readable(uri: str) -> None:
    """Raise `InputError` (before any work starts) when `uri` is missing or unreachable."""
    try:
        found = exists(uri)
    except PermissionError as exc:
        raise InputError(f"cannot read {uri}: access denied ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - any failure here means: not readable
        raise InputError(f"cannot read {uri}: {type(exc).__name__}: {exc}") from None
    if not found:
        raise InputError(f"input not found: {uri}")


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@retry()
def glob(pattern: str) -> list[str]:
    """URIs matching a glob pattern (`*`, `?`, `[...]`), files or directories, sorted."""
    fs, path = uris.filesystem(pattern)
    return sorted(uris.to_uri(fs, p) for p in fs.glob(path))


GLOB_CHARS = ("*", "?", "[")


def has_glob(uri: str) -> bool:
    """Whether `uri` is a glob pattern rather than one path."""
    return any(char in uri for char in GLOB_CHARS)


def glob_finished(pattern: str, marker: str) -> list[str]:
    """The directories matching `pattern` that hold `marker` (the file a stage writes last:
    only finished outputs count), sorted. A pattern that names the marker files themselves
    matches their directories."""
    found: list[str] = []
    for match in glob(pattern.rstrip("/")):
        directory = uris.parent(match) if uris.basename(match) == marker else match
        if directory not in found and exists(uris.join(directory, marker)):
            found.append(directory)
    return sorted(found)
