"""A finished corpus as data preparation sees it: partitions, identity, PII placeholders.

The corpus build writes `config.json` (its inputs+config fingerprint and the config itself) and
then `stats.json`, the mark of a finished corpus. The tokenizer and the shard build read both
through `CorpusLayout`: the fingerprint is the corpus's identity in their own fingerprints (a
rebuilt corpus with other inputs or settings makes them stale), and the recorded PII
placeholders are the strings the tokenizer must keep atomic. Sources whose documents a later
build replaced (`smelt.corpus.supersede`) are not live: a shard build leaves them out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from smelt import storage
from smelt.corpus.config import PiiConfig
from smelt.corpus.layout import CorpusLayout
from smelt.corpus.supersede import superseded_sources
from smelt.errors import InputError
from smelt.storage.stage import fingerprint

DOCUMENT_COLUMNS = ("id", "text")


@dataclass(frozen=True)
class FinishedCorpus:
    """What preparation needs of a corpus; small and picklable."""

    root: str
    partitions: tuple[str, ...]  # data partition URIs, in order
    identity: str  # the build's fingerprint (or, for a corpus without one, of its files)
    placeholders: tuple[str, ...]  # PII placeholders the corpus was redacted with
    superseded: tuple[str, ...] = ()  # sources whose documents later builds replaced, sorted


def open_corpus(uri: str) -> FinishedCorpus:
    """The finished corpus at `uri`; a clear error for a missing, unfinished or empty one."""
    layout = CorpusLayout.at(uri)
    storage.require_readable(layout.root)
    if not storage.exists(layout.stats):
        raise InputError(
            f"{layout.root} is not a finished corpus: {storage.basename(layout.stats)} is "
            f"missing (it is written last); run or finish `smelt corpus build --output "
            f"{layout.root}`"
        )
    partitions = (
        tuple(storage.list_files(layout.data_dir, suffixes=[".parquet"]))
        if storage.exists(layout.data_dir)
        else ()
    )
    if not partitions:
        raise InputError(
            f"{layout.root}: no Parquet partitions under {layout.data_dir}; the corpus is empty"
        )
    record = _build_record(layout)
    identity = record.get("fingerprint") or _files_identity(layout, partitions)
    return FinishedCorpus(
        layout.root,
        partitions,
        str(identity),
        _placeholders(record, layout),
        tuple(sorted(superseded_sources(layout.root))),
    )


def _build_record(layout: CorpusLayout) -> dict[str, Any]:
    """The corpus's `config.json`, or {} for a corpus written without one."""
    if not storage.exists(layout.config):
        return {}
    try:
        record = json.loads(storage.read_text(layout.config))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{layout.config}: not valid JSON ({exc}); rebuild the corpus") from None
    if not isinstance(record, dict):
        raise InputError(f"{layout.config}: not a JSON object; rebuild the corpus")
    return record


def _placeholders(record: dict[str, Any], layout: CorpusLayout) -> tuple[str, ...]:
    """The placeholders of the recorded PII config (its defaults when none is recorded)."""
    pii = (record.get("config") or {}).get("pii") or {}
    placeholders = pii.get("placeholders", PiiConfig().placeholders)
    if not isinstance(placeholders, dict) or not all(
        isinstance(p, str) and p for p in placeholders.values()
    ):
        raise InputError(
            f"{layout.config}: pii.placeholders must map entity types to non-empty strings, "
            f"got {placeholders!r}; rebuild the corpus"
        )
    return tuple(dict.fromkeys(placeholders.values()))


def _files_identity(layout: CorpusLayout, partitions: tuple[str, ...]) -> str:
    """For a corpus without a recorded fingerprint: its counts and partition sizes."""
    stats = storage.sha256_bytes(storage.read_bytes(layout.stats))
    sizes = [[storage.basename(p), storage.size(p)] for p in partitions]
    return fingerprint("corpus-files", stats, sizes)


def id_fraction(doc_id: str) -> float:
    """A stable number in [0, 1) from a document id: the basis of every held-out split."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64
