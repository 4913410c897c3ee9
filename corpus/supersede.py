"""Incremental builds: which input objects are new or changed, and what a changed one replaces.

With `--only-new`, a build compares every listed input object with the consumed-inputs records
(`smelt.corpus.consumed`) of the corpora it deduplicates against:

- *unchanged*: some earlier corpus consumed the object with the same size and version (or, for a
  local file whose mtime moved, the same SHA-256): skipped, counted, never read;
- *changed*: earlier corpora consumed the object, in another version: read again, and its
  documents in those corpora are *superseded*;
- *new*: no earlier corpus consumed it: read.

Superseded documents are replaced, not duplicated, in three places:

1. Dedup: an earlier corpus's documents from a superseded object are no references, so the new
   version of a page is never dropped as a near-duplicate of the version it replaces.
2. The new corpus records what it replaced in `supersedes.parquet` (earlier corpus, source,
   size, version, documents), and leaves a notice in each of those corpora,
   `superseded_by/NAME.json`, naming itself, its fingerprint and the sources. A notice counts
   only once the corpus that wrote it is finished with that fingerprint, so a crashed or
   deleted build never hides documents.
3. Data preparation reads a corpus's notices (`superseded_sources`): a shard build skips the
   superseded documents, and the notices are part of the shard set's fingerprint, so the shard
   set of a corpus that lost documents is no longer current and its next build drops them.
   Training reads shard sets, so superseded documents leave training with that rebuild.

A record of another corpus that a notice marks superseded is no evidence that an object is
unchanged: only the live version counts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from smelt import storage
from smelt.corpus import tables
from smelt.corpus.consumed import ConsumedInput, read_consumed
from smelt.corpus.layout import CorpusLayout, corpus_fingerprint
from smelt.storage.checksums import sha256_bytes

if TYPE_CHECKING:  # the planner imports every reader; data preparation needs none of them
    from smelt.corpus.partition import InputFile

log = logging.getLogger(__name__)

NOTICE_FORMAT = "smelt-superseded-v1"
SUPERSEDES_SCHEMA = pa.schema(
    [
        pa.field("corpus", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("documents", pa.int64(), nullable=True),
    ]
)


@dataclass(frozen=True)
class Replaced:
    """The documents of `source` in the earlier corpus `corpus`, as it consumed them."""

    corpus: str
    source: str
    size: int
    version: str
    documents: int | None = None


@dataclass(frozen=True)
class Selection:
    """What an `--only-new` build reads, skips and replaces."""

    files: list[InputFile]  # to read: new and changed objects, sorted
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[Replaced] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """What stats.json and the command line report."""
        return {
            "new": len(self.new),
            "changed": len(self.changed),
            "skipped": len(self.unchanged),
            "superseded_docs": sum(r.documents or 0 for r in self.replaced),
        }

    def replaced_sources(self) -> dict[str, set[str]]:
        """Earlier corpus -> the sources this build replaces there."""
        found: dict[str, set[str]] = {}
        for item in self.replaced:
            found.setdefault(item.corpus, set()).add(item.source)
        return found


# ---- selecting the objects to read -------------------------------------------------------------


def live_records(references: Iterable[str]) -> dict[str, list[tuple[str, ConsumedInput]]]:
    """URI -> (corpus, record) for every object consumed by a reference corpus and not since
    superseded there."""
    seen: dict[str, list[tuple[str, ConsumedInput]]] = {}
    for corpus in references:
        root = storage.normalize(corpus)
        dead = superseded_sources(root)
        for record in read_consumed(root):
            if record.uri not in dead:
                seen.setdefault(record.uri, []).append((root, record))
    return seen


def is_unchanged(item: InputFile, record: ConsumedInput, content: dict[str, str]) -> bool:
    """Whether `item` is the object `record` describes: same listing, or (a local file whose
    mtime alone moved) the same SHA-256. `content` caches hashes computed here."""
    if record.same_listing(item):
        return True
    if record.sha256 is None or item.size != record.size or storage.is_s3(item.uri):
        return False
    if item.uri not in content:
        content[item.uri] = storage.sha256_file(item.uri)
    return content[item.uri] == record.sha256


def select_inputs(files: list[InputFile], references: Iterable[str]) -> Selection:
    """Split `files` into new, changed and unchanged against the reference corpora."""
    seen = live_records(references)
    content: dict[str, str] = {}
    selection = Selection(files=[])
    for item in files:
        records = seen.get(item.uri, [])
        if not records:
            selection.new.append(item.uri)
            selection.files.append(item)
        elif any(is_unchanged(item, record, content) for _, record in records):
            selection.unchanged.append(item.uri)
        else:
            selection.changed.append(item.uri)
            selection.files.append(item)
            selection.replaced.extend(
                Replaced(corpus, r.uri, r.size, r.version, r.documents) for corpus, r in records
            )
    log.info(
        "only new inputs: %d new, %d changed, %d unchanged skipped",
        len(selection.new),
        len(selection.changed),
        len(selection.unchanged),
    )
    return selection


# ---- recording what was replaced ---------------------------------------------------------------


def write_supersedes(layout: CorpusLayout, replaced: list[Replaced]) -> None:
    """`supersedes.parquet` of the new corpus (written whether or not anything was replaced)."""
    rows = sorted(replaced, key=lambda r: (r.corpus, r.source))
    table = pa.table(
        {name: [getattr(r, name) for r in rows] for name in SUPERSEDES_SCHEMA.names},
        schema=SUPERSEDES_SCHEMA,
    )
    tables.write_table(layout.supersedes, table)


def read_supersedes(corpus_uri: str) -> list[Replaced]:
    """What the corpus at `corpus_uri` replaced in earlier corpora (none when not recorded)."""
    layout = CorpusLayout.at(corpus_uri)
    if not storage.exists(layout.supersedes):
        return []
    return [Replaced(**row) for row in tables.read_table(layout.supersedes).to_pylist()]


def notice_name(corpus_root: str) -> str:
    """The file name a corpus's notices get: one per superseding corpus, rewritten on rerun."""
    return sha256_bytes(storage.normalize(corpus_root).encode("utf-8"))[:16]


def leave_notices(layout: CorpusLayout, build_fingerprint: str, selection: Selection) -> None:
    """In each corpus whose documents this build replaces, a notice naming the sources."""
    for corpus, sources in sorted(selection.replaced_sources().items()):
        notice = {
            "format": NOTICE_FORMAT,
            "corpus": layout.root,
            "fingerprint": build_fingerprint,
            "sources": sorted(sources),
        }
        uri = CorpusLayout.at(corpus).superseded_by(notice_name(layout.root))
        storage.write_text(uri, json.dumps(notice, indent=1))
        log.info("%d source(s) of %s are superseded by %s", len(sources), corpus, layout.root)


def superseded_sources(corpus_uri: str) -> set[str]:
    """Sources of the corpus at `corpus_uri` whose documents a finished later build replaced."""
    layout = CorpusLayout.at(corpus_uri)
    if not storage.exists(layout.superseded_by_dir):
        return set()
    sources: set[str] = set()
    for uri in storage.list_files(layout.superseded_by_dir, suffixes=[".json"]):
        notice = json.loads(storage.read_text(uri))
        if notice.get("format") != NOTICE_FORMAT:
            continue
        if corpus_fingerprint(notice["corpus"]) != notice["fingerprint"]:
            log.debug("notice %s: %s is not finished with that build; ignored", uri, notice)
            continue
        sources.update(notice["sources"])
    return sources
