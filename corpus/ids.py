"""Unique output ids: different documents that share an input id are both kept, renamed.

Inputs give ids (a JSON `id` field, a Parquet column, a WARC-Record-ID), and nothing stops two
files from using the same ones (per-file row numbers are common). Inside a build, documents are
told apart by position, never by id; only the published corpus needs its ids unique. After the
partitions are published, this step finds ids that occur more than once (64-bit hashes of
every id, then the strings of the few candidates) and renames every occurrence but the first,
in (partition, row) order: the second becomes `ID#2`, the third `ID#3`, skipping any name that
already exists. `stats.json` counts the renamed documents as `id_collisions`.

It is resumable like every stage: the renames are computed once and saved (a marker holding
them), then applied partition by partition (each rewrite keeps the row order, so applying it
twice is harmless), each with its own marker.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict

import numpy as np
import pyarrow as pa

from smelt.corpus import tables
from smelt.corpus.layout import CorpusLayout
from smelt.storage.stage import Marker, run_once

log = logging.getLogger(__name__)

Renames = dict[int, list[tuple[int, str]]]  # partition -> [(row, new id)]


def id_hash(doc_id: str) -> int:
    """A signed 64-bit hash of an id (collisions of hashes are checked on the strings)."""
    digest = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def make_ids_unique(layout: CorpusLayout, partitions: int) -> int:
    """Rename documents whose id is taken by an earlier one; returns how many were renamed."""
    plan = run_once(Marker(layout.ids_plan), lambda: {"renames": _find_renames(layout, partitions)})
    renames: Renames = {int(k): [(r, i) for r, i in v] for k, v in plan["renames"].items()}
    for index, rows in sorted(renames.items()):
        run_once(Marker(layout.ids_done(index)), lambda i=index, r=rows: _rename(layout, i, r))
    total = sum(len(rows) for rows in renames.values())
    if total:
        log.warning("%d document(s) shared an id with an earlier one and were renamed", total)
    return total


def _ids(layout: CorpusLayout, index: int) -> list[str]:
    return tables.read_table(layout.data(index), columns=["id"]).column("id").to_pylist()


def _find_renames(layout: CorpusLayout, partitions: int) -> dict[str, list[list]]:
    hashes = [
        np.fromiter((id_hash(i) for i in _ids(layout, p)), dtype=np.int64)
        for p in range(partitions)
    ]
    every = np.concatenate(hashes) if hashes else np.zeros(0, np.int64)
    values, counts = np.unique(every, return_counts=True)
    repeated = values[counts > 1]
    if len(repeated) == 0:
        return {}
    occurrences: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for partition, partition_hashes in enumerate(hashes):
        rows = np.flatnonzero(np.isin(partition_hashes, repeated))
        if len(rows):
            ids = _ids(layout, partition)
            for row in rows.tolist():
                occurrences[ids[row]].append((partition, row))
    taken = set(every.tolist())
    renames: dict[str, list[list]] = defaultdict(list)
    for doc_id, places in sorted(occurrences.items()):
        suffix = 2
        for partition, row in sorted(places)[1:]:
            while id_hash(new_id := f"{doc_id}#{suffix}") in taken:
                suffix += 1
            taken.add(id_hash(new_id))
            renames[str(partition)].append([row, new_id])
            suffix += 1
    return dict(renames)


def _rename(layout: CorpusLayout, index: int, rows: list[tuple[int, str]]) -> dict:
    table = tables.read_table(layout.data(index))
    ids = table.column("id").to_pylist()
    for row, new_id in rows:
        ids[row] = new_id
    position = table.schema.get_field_index("id")
    table = table.set_column(position, table.schema.field("id"), pa.array(ids, pa.string()))
    tables.write_table(layout.data(index), table)
    return {"partition": index, "renamed": len(rows)}
