"""The consumed-inputs record: which input objects a corpus was built from, one row each.

    OUTPUT/inputs.parquet   uri, size, version, sha256, documents, partitions

`version` is what the listing says changes with the content: the ETag on S3, the mtime (in
nanoseconds) on a local disk. `sha256` is the content hash where it is cheap: local files are
hashed by the partition that reads them (the bytes are in the page cache by then); S3 objects
are not downloaded twice, their ETag stands for the content. `documents` counts the documents
the corpus kept from the object, `partitions` the build partitions that read it (a later build
uses them to find that object's rows in this corpus's dedup state without reading it all).

A later `--only-new` build reads this record from every corpus it deduplicates against
(`smelt.corpus.supersede`). Corpora built before the record existed still answer: their saved
plan (`_work/plan.json`) lists the files with size and version, without hashes or counts.
The record is written after the data and before `stats.json`, so a finished corpus has it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from smelt import storage
from smelt.corpus import tables
from smelt.corpus.layout import CorpusLayout

if TYPE_CHECKING:  # the planner imports every reader; data preparation needs none of them
    from smelt.corpus.partition import InputFile, Partition, Plan

log = logging.getLogger(__name__)

INPUTS_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=True),
        pa.field("documents", pa.int64(), nullable=True),
        pa.field("partitions", pa.list_(pa.int32()), nullable=False),
    ]
)


@dataclass(frozen=True)
class ConsumedInput:
    """One input object as a corpus consumed it."""

    uri: str
    size: int
    version: str
    sha256: str | None = None
    documents: int | None = None  # None: not recorded (a corpus built before the record)
    partitions: tuple[int, ...] = ()

    def same_listing(self, item: InputFile) -> bool:
        """Whether the object's listing (size and version) is the one consumed."""
        return item.size == self.size and item.version == self.version


def hash_local_inputs(partition: Partition) -> dict[str, str]:
    """SHA-256 of the local files whose first piece this partition reads (S3 objects: none).

    Each file is hashed by exactly one partition, the one holding its first byte or row group.
    """
    return {
        piece.uri: storage.sha256_file(piece.uri)
        for piece in partition.pieces
        if piece.start == 0 and not storage.is_s3(piece.uri)
    }


def documents_per_source(layout: CorpusLayout, partitions: int) -> Counter[str]:
    """How many published documents each source contributed (reads only the `source` column)."""
    counts: Counter[str] = Counter()
    for index in range(partitions):
        column = tables.read_table(layout.data(index), columns=["source"]).column("source")
        counts.update(column.to_pylist())
    return counts


def consumed_inputs(
    plan: Plan, hashes: dict[str, str], documents: Counter[str]
) -> list[ConsumedInput]:
    """The record's rows for a finished build of `plan`."""
    readers = plan.readers()
    return [
        ConsumedInput(
            item.uri,
            item.size,
            item.version,
            hashes.get(item.uri),
            documents.get(item.uri, 0),
            tuple(readers.get(item.uri, ())),
        )
        for item in plan.files
    ]


def write_consumed(layout: CorpusLayout, rows: Iterable[ConsumedInput]) -> int:
    """Write `inputs.parquet` (atomically); returns the number of objects recorded."""
    rows = sorted(rows, key=lambda row: row.uri)
    table = pa.table(
        {
            "uri": [r.uri for r in rows],
            "size": [r.size for r in rows],
            "version": [r.version for r in rows],
            "sha256": [r.sha256 for r in rows],
            "documents": [r.documents for r in rows],
            "partitions": [list(r.partitions) for r in rows],
        },
        schema=INPUTS_SCHEMA,
    )
    tables.write_table(layout.inputs, table)
    return len(rows)


def read_consumed(corpus_uri: str) -> list[ConsumedInput]:
    """The objects the corpus at `corpus_uri` consumed (its record, else its saved plan)."""
    layout = CorpusLayout.at(corpus_uri)
    if storage.exists(layout.inputs):
        table = tables.read_table(layout.inputs)
        return [
            ConsumedInput(
                row["uri"],
                row["size"],
                row["version"],
                row["sha256"],
                row["documents"],
                tuple(row["partitions"]),
            )
            for row in table.to_pylist()
        ]
    if storage.exists(layout.plan):
        from smelt.corpus.partition import Plan

        log.info("%s has no %s: using its saved plan", layout.root, storage.basename(layout.inputs))
        plan = Plan.from_dict(json.loads(storage.read_text(layout.plan)))
        readers = plan.readers()
        return [
            ConsumedInput(f.uri, f.size, f.version, partitions=tuple(readers.get(f.uri, ())))
            for f in plan.files
        ]
    log.warning("%s records no consumed inputs: every object counts as new", layout.root)
    return []
