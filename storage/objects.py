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
from typing import IO, Any

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
def file_details(uri: str) -> dict[str, dict[str, Any]]:
    """Every file under `uri` (recursively; `uri` itself if it is a file) -> its listing
    details (`size`, and `mtime` locally or `ETag` on S3), from one listing.

    Names starting with `.` (hidden files, temporary files of atomic writes) are skipped.
    Local directories are walked following symbolic links, each directory once, so a link to a
    directory is read like the directory and a link loop ends instead of recursing.
    """
    fs, path = uris.filesystem(uri)
    if not uris.is_s3(uri):
        return _walk_local(path)
    if fs.isfile(path):
        return {uris.to_uri(fs, path): fs.info(path)}
    return {
        uris.to_uri(fs, p): info
        for p, info in fs.find(path, detail=True).items()
        if not any(part.startswith(".") for part in p[len(path) :].split("/"))
    }


def _walk_local(root: str) -> dict[str, dict[str, Any]]:
    if not os.path.isdir(root):
        status = os.stat(root)  # a missing root raises FileNotFoundError, as fsspec does
        return {root: _local_info(root, status)}
    found: dict[str, dict[str, Any]] = {}
    seen: set[tuple[int, int]] = set()
    for directory, subdirectories, names in os.walk(root, followlinks=True, onerror=_raise):
        status = os.stat(directory)
        if (status.st_dev, status.st_ino) in seen:  # a link back to a directory already read
            subdirectories.clear()
            continue
        seen.add((status.st_dev, status.st_ino))
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(directory, name)
            try:
                found[path] = _local_info(path, os.stat(path))
            except OSError:  # a broken link: listed, so the reader quarantines it by name
                found[path] = {"name": path, "size": 0, "type": "file"}
    return found


def _raise(error: OSError) -> None:
    raise error


def _local_info(path: str, status: os.stat_result) -> dict[str, Any]:
    return {
        "name": path,
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "type": "file",
    }


def list_files(uri: str, suffixes: Iterable[str] | None = None) -> list[str]:
    """All files under `uri` (see `file_details`), as sorted URIs, optionally by suffix."""
    wanted = tuple(suffixes) if suffixes else None
    return sorted(u for u in file_details(uri) if wanted is None or u.endswith(wanted))


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
        tmp = temporary_file(None, ".smelt-", suffix)
    else:
        target = uris.normalize(target_uri)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = temporary_file(os.path.dirname(target), f".{os.path.basename(target)}.", suffix)
    try:
        yield tmp
        put_file(tmp, target_uri)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def temporary_file(directory: str | None, prefix: str, suffix: str = "") -> str:
    """A new empty file (closed) for an atomic write, with the permissions any new file of
    this process gets (0666 less the umask): `mkstemp` makes it 0600, and a rename keeps the
    mode, so without this every corpus, shard and checkpoint file would be private."""
    fd, path = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~process_umask())
    finally:
        os.close(fd)
    return path


def process_umask() -> int:
    """The process's umask, read without changing it where Linux allows (/proc), since
    setting it to read it back races with threads creating files."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
