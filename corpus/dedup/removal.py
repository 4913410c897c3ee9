"""Stage 3 of dedup: clusters -> one survivor each -> a removal list per partition.

Survivor rule (deterministic, independent of partitioning and task order): in each cluster of
documents linked by verified pairs, keep the document with the **longest text**; among equally
long ones, the **smallest id** (string order). When a cluster holds a document of an earlier
corpus (`--dedup-against`), that document is the survivor (already published) and every new
document of the cluster is removed. A removed document's `kind` is "exact" when its text equals
the survivor's (same exact key), else "near".
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa

from smelt import storage
from smelt.corpus import tables
from smelt.corpus.dedup.components import connected_components
from smelt.corpus.dedup.pairs import PAIR_SCHEMA, unpack_ref

log = logging.getLogger(__name__)

REMOVAL_SCHEMA = pa.schema([("row", pa.int64()), ("id", pa.string()), ("kind", pa.string())])


def node_table(pairs: pa.Table) -> dict[str, np.ndarray]:
    """Unique documents of the pair list with their id, length and exact key, sorted by ref."""
    refs = np.concatenate([pairs.column("a").to_numpy(), pairs.column("b").to_numpy()])
    ids = np.array(pairs.column("a_id").to_pylist() + pairs.column("b_id").to_pylist(), object)
    lengths = np.concatenate(
        [pairs.column("a_length").to_numpy(), pairs.column("b_length").to_numpy()]
    )
    exact = np.concatenate([pairs.column("a_exact").to_numpy(), pairs.column("b_exact").to_numpy()])
    refs, first = np.unique(refs, return_index=True)
    return {"ref": refs, "id": ids[first], "length": lengths[first], "exact": exact[first]}


def removals(pairs: pa.Table) -> dict[int, list[tuple[int, str, str]]]:
    """Per new partition index: (row, id, kind) of each document to remove.

    Documents are told apart by their reference (partition, row), never by id: two different
    documents that share an id are two documents.
    """
    if pairs.num_rows == 0:
        return {}
    nodes, labels = connected_components(pairs.column("a").to_numpy(), pairs.column("b").to_numpy())
    docs = node_table(pairs)
    assert np.array_equal(nodes, docs["ref"])
    sources, partitions, _ = unpack_ref(nodes)
    # survivor first within each cluster: earlier corpora, then longest, then smallest id
    # (then the smallest reference, for documents sharing an id)
    order = sorted(
        range(len(nodes)),
        key=lambda i: (labels[i], sources[i] == 0, -docs["length"][i], docs["id"][i], nodes[i]),
    )
    removed: dict[int, list[tuple[int, str, str]]] = {}
    survivor = -1
    for position, node in enumerate(order):
        if position == 0 or labels[node] != labels[order[position - 1]]:
            survivor = node
            continue
        if sources[node] != 0:
            continue  # an earlier corpus's document is never removed (nor written) here
        kind = "exact" if docs["exact"][node] == docs["exact"][survivor] else "near"
        row = int(nodes[node] & 0xFFFFFFFF)
        removed.setdefault(int(partitions[node]), []).append((row, docs["id"][node], kind))
    return removed


def write_removals(
    pair_uris: list[str], partition_names: list[str], removals_uri: str
) -> tuple[list[str | None], dict[str, Any]]:
    """Per partition (in order), the URI of its removal list, or None when nothing goes."""
    found = [tables.read_table(uri) for uri in pair_uris]
    pairs = pa.concat_tables(found) if found else PAIR_SCHEMA.empty_table()
    removed = removals(pairs.cast(PAIR_SCHEMA))
    uris: list[str | None] = []
    counts = {"exact": 0, "near": 0}
    for partition, name in enumerate(partition_names):
        rows = sorted(removed.get(partition, []))
        if not rows:
            uris.append(None)
            continue
        uri = storage.join(removals_uri, f"{name}.parquet")
        tables.write_table(
            uri,
            pa.table(
                {
                    "row": [r[0] for r in rows],
                    "id": [r[1] for r in rows],
                    "kind": [r[2] for r in rows],
                },
                schema=REMOVAL_SCHEMA,
            ),
        )
        for _, _, kind in rows:
            counts[kind] += 1
        uris.append(uri)
    log.info(
        "dedup: %d pairs -> remove %d exact + %d near duplicates",
        pairs.num_rows,
        counts["exact"],
        counts["near"],
    )
    return uris, {"pairs": pairs.num_rows, "removed": counts}
