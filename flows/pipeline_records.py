"""How `pretrain-pipeline` tells a finished stage from one to rerun, through the stages' files.

Each stage already writes a record of what it was built from; the pipeline computes the same
thing from its parameters and compares:

- corpus: `config.json` holds the build's fingerprint (input files and sizes, config, dedup
  references; `smelt.corpus.partition.fingerprint`), `stats.json` marks it finished. The
  pipeline lists the inputs and computes the fingerprint the build would have, so a new input
  file, a changed size or a changed threshold means a rebuild.
- tokenizer: `report.json` (written last) holds `tokenizer_sha256`; it does not say which corpus
  it was trained on, so the pipeline leaves `pipeline.json` beside it with a key over the
  corpus fingerprint and the tokenizer parameters.
- shards: `manifest.json` (written last) holds `tokenizer_sha256`, which must equal the
  tokenizer's; `pipeline.json` keys the corpus fingerprint, that checksum and the parameters.

Training is never skipped: a rerun on the same output resumes from its newest checkpoint and
stops at once when it already reached `max_steps`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from smelt import storage

log = logging.getLogger(__name__)

RECORD_NAME = "pipeline.json"


def stage_key(stage: str, **inputs: Any) -> str:
    """SHA-256 over the stage name and everything its output depends on (canonical JSON)."""
    blob = json.dumps({"stage": stage, **inputs}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def read_json(uri: str) -> dict[str, Any] | None:
    """The JSON object at `uri`, or None when absent or unreadable."""
    try:
        if not storage.exists(uri):
            return None
        return json.loads(storage.read_text(uri))
    except (OSError, ValueError):
        log.warning("unreadable record %s: treated as absent", uri)
        return None


def tokenizer_sha256(tokenizer_uri: str) -> str | None:
    """The checksum in a finished tokenizer's `report.json`, else None."""
    report = read_json(storage.join(tokenizer_uri, "report.json")) or {}
    return report.get("tokenizer_sha256")


def manifest_tokenizer_sha256(shards_uri: str) -> str | None:
    """The tokenizer checksum in a finished shard set's `manifest.json`, else None."""
    manifest = read_json(storage.join(shards_uri, "manifest.json")) or {}
    return manifest.get("tokenizer_sha256")


def record_matches(output_uri: str, key: str) -> bool:
    """Whether the pipeline record left in `output_uri` carries `key`."""
    record = read_json(storage.join(output_uri, RECORD_NAME)) or {}
    return record.get("key") == key


def write_record(output_uri: str, stage: str, key: str, **details: Any) -> None:
    """Leave the pipeline's record of a finished stage in its output (after the stage's own)."""
    storage.write_text(
        storage.join(output_uri, RECORD_NAME),
        json.dumps({"stage": stage, "key": key, **details}, indent=1, sort_keys=True, default=str),
    )


def tokenizer_is_current(tokenizer_uri: str, key: str) -> bool:
    return tokenizer_sha256(tokenizer_uri) is not None and record_matches(tokenizer_uri, key)


def shards_are_current(shards_uri: str, key: str, tokenizer_checksum: str | None) -> bool:
    manifest_checksum = manifest_tokenizer_sha256(shards_uri)
    return (
        manifest_checksum is not None
        and manifest_checksum == tokenizer_checksum
        and record_matches(shards_uri, key)
    )
