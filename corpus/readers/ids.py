"""Stable document ids: the same input gives the same id on every run.

An id given by the input (a JSON/Parquet `id` field, a WARC-Record-ID) is kept. Otherwise the
id hashes the file URI, the record's position in the file and its content: distinct within a
corpus (no two records share a file and a position) and unchanged across reruns.
"""

from __future__ import annotations

import hashlib
from typing import Any


def derived_id(file_uri: str, position: int | str, content: str | bytes) -> str:
    """128-bit hex id from (file URI, record position, content)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(file_uri.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(str(position).encode("ascii", "replace"))
    digest.update(b"\x00")
    digest.update(
        content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass")
    )
    return digest.hexdigest()


def given_id(value: Any) -> str | None:
    """An input-provided id as a string; None when absent or not a scalar."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int | float):
        return str(value)
    return None
