"""Resumable stages: the one way smelt decides that a piece of work is done.

Every unit of work that a rerun may skip (a corpus partition, a dedup step, a trained tokenizer,
a tokenized partition, a shard, a checkpoint) follows one contract:

1. its outputs are written first, each atomically (`storage.write_bytes`, `put_file`);
2. its *marker*, a small JSON manifest, is written last;
3. the marker records the *fingerprint* of everything the outputs depend on (input files and
   their identities, settings, upstream fingerprints).

A rerun trusts the outputs exactly when the marker is there and carries the same fingerprint:
a crash before the marker leaves none (the work is redone whole, never half-reused), and
changed inputs or settings give another fingerprint (the work is redone, never served stale).
`Marker` reads and writes markers; `run_once` wraps a stage function in that rule. Nothing
else in smelt writes `.done` files or compares fingerprints by hand.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smelt.storage.checksums import sha256_bytes
from smelt.storage.objects import delete, exists, read_text, write_text

log = logging.getLogger(__name__)

FINGERPRINT_KEY = "fingerprint"
SKIPPED_KEY = "skipped"


def fingerprint(*parts: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of `parts`: equal inputs give equal fingerprints.

    Dicts are key-sorted; objects JSON cannot encode are hashed by their `str` (paths, enums).
    """
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return sha256_bytes(blob.encode("utf-8"))


@dataclass(frozen=True)
class Marker:
    """The done-marker of one stage at `uri`, valid for inputs with `fingerprint`.

    `fingerprint=None` accepts any marker (stages whose identity is checked elsewhere, such as a
    checkpoint, whose run identity lives in `run.json`).
    """

    uri: str
    fingerprint: str | None = None

    def read(self) -> dict[str, Any] | None:
        """The recorded manifest when the stage is done for these inputs, else None.

        A marker of other inputs, or an unreadable one (a foreign file, a torn write on a
        filesystem without atomic rename), counts as absent: the stage runs again.
        """
        if not exists(self.uri):
            return None
        try:
            manifest = json.loads(read_text(self.uri))
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.warning("unreadable marker %s: the stage runs again", self.uri)
            return None
        if not isinstance(manifest, dict):
            return None
        if self.fingerprint is not None and manifest.get(FINGERPRINT_KEY) != self.fingerprint:
            return None
        return manifest

    def done(self) -> bool:
        """Whether the stage is done for these inputs."""
        return self.read() is not None

    def write(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Record the stage as done (call after every output is in place); returns the record."""
        record = dict(manifest)
        record.pop(SKIPPED_KEY, None)
        if self.fingerprint is not None:
            record[FINGERPRINT_KEY] = self.fingerprint
        write_text(self.uri, json.dumps(record, indent=1, sort_keys=True, default=str))
        return record

    def clear(self) -> None:
        """Forget the stage (first, before its outputs are replaced or deleted)."""
        delete(self.uri)


def run_once(marker: Marker, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`work()`'s manifest, recorded in `marker`; or the recorded one when already done.

    The result carries `skipped: True` when the stage was not run. `work` must write its
    outputs before returning (each atomically); the marker follows them.
    """
    done = marker.read()
    if done is not None:
        return {**done, SKIPPED_KEY: True}
    record = marker.write(work())
    return {**record, SKIPPED_KEY: False}
