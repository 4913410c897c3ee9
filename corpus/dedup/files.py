"""Parquet and JSON-marker I/O behind a URI (local or s3://), atomic, for the dedup stages."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from smelt import storage


def read_table(
    uri: str, columns: list[str] | None = None, filters: list[tuple[str, str, Any]] | None = None
) -> pa.Table:
    """A Parquet file (or the rows matching `filters`, skipping row groups by statistics)."""
    fs, path = storage.filesystem(uri)
    return pq.read_table(path, filesystem=fs, columns=columns, filters=filters)


def write_table(uri: str, table: pa.Table, row_group_size: int | None = None) -> None:
    """Atomically write `table` as zstd Parquet."""
    with storage.atomic_local_path(uri, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)


def read_marker(uri: str, fingerprint: str) -> dict[str, Any] | None:
    """The manifest of a finished step, or None when it is missing or for other inputs."""
    if not storage.exists(uri):
        return None
    manifest = json.loads(storage.read_text(uri))
    return manifest if manifest.get("fingerprint") == fingerprint else None


def write_marker(uri: str, manifest: dict[str, Any]) -> None:
    """Mark a step finished: written after its outputs, so a crash leaves no marker."""
    storage.write_text(uri, json.dumps(manifest, sort_keys=True))


def fingerprint(*parts: Any) -> str:
    """A short stable digest of the inputs and settings of a step."""
    return storage.sha256_bytes(json.dumps(parts, sort_keys=True, default=str).encode())[:16]
