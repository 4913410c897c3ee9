"""SHA-256 helpers: every file smelt writes for another stage to trust is checked by these."""

from __future__ import annotations

import hashlib

from smelt.storage import objects

CHUNK = 1 << 22


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(local_path: str) -> str:
    """Hex SHA-256 of a local file, streamed in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(local_path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_uri(uri: str) -> str:
    """Hex SHA-256 of the object at a URI, streamed (no full copy in memory)."""
    digest = hashlib.sha256()
    with objects.open_read(uri) as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
