"""Stage 3 of dedup: clusters -> one survivor each -> a removal list per partition.

The build's report lists the largest clusters (`largest_clusters`: size, the kept document and
two removed ones with their first words), so what dedup removed can be seen, not only counted.

Survivor rule (deterministic, independent of partitioning and task order): in each cluster of
documents linked by verified pairs, keep the document with the **longest text**; among equally
long ones, the **smallest id** (string order). When a cluster holds a document of an earlier
corpus (`--dedup-against`), that document is the survivor (already published) and every new
document of the cluster is removed. A removed document's `kind` is "exact" when its text equals
the survivor's (same exact key), else "near".
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from smelt import storage
from smelt.corpus import tables
from smelt.corpus.dedup.components import connected_components
from smelt.corpus.dedup.pairs import PAIR_SCHEMA, unpack_ref

log = logging.getLogger(__name__)

REMOVAL_SCHEMA = pa.schema([("row", pa.int64()), ("id", pa.string()), ("kind", pa.string())])
CLUSTERS_REPORTED = 10  # the build's report lists the largest clusters
FIRST_WORDS = 12


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


@dataclass(frozen=True)
class Clusters:
    """Documents linked by verified pairs, grouped: `order` lists node positions cluster by
    cluster, each cluster's survivor first."""

    nodes: np.ndarray  # packed refs, sorted
    labels: np.ndarray  # cluster of each node
    ids: np.ndarray  # document id of each node
    exact: np.ndarray  # exact-text key of each node
    order: list[int]

    def sources(self) -> np.ndarray:
        return unpack_ref(self.nodes)[0]

    def groups(self) -> list[list[int]]:
        """Node positions per cluster, survivor first."""
        found: list[list[int]] = []
        for position, node in enumerate(self.order):
            if position == 0 or self.labels[node] != self.labels[self.order[position - 1]]:
                found.append([])
            found[-1].append(node)
        return found


def cluster(pairs: pa.Table) -> Clusters:
    """Connected components of the pair list, each sorted survivor first: earlier corpora,
    then the longest text, then the smallest id (then the smallest reference)."""
    nodes, labels = connected_components(pairs.column("a").to_numpy(), pairs.column("b").to_numpy())
    docs = node_table(pairs)
    assert np.array_equal(nodes, docs["ref"])
    sources = unpack_ref(nodes)[0]
    order = sorted(
        range(len(nodes)),
        key=lambda i: (labels[i], sources[i] == 0, -docs["length"][i], docs["id"][i], nodes[i]),
    )
    return Clusters(nodes, labels, docs["id"], docs["exact"], order)


def removals(pairs: pa.Table) -> dict[int, list[tuple[int, str, str]]]:
    """Per new partition index: (row, id, kind) of each document to remove.

    Documents are told apart by their reference (partition, row), never by id: two different
    documents that share an id are two documents.
    """
    if pairs.num_rows == 0:
        return {}
    return removals_of(cluster(pairs))


def removals_of(found: Clusters) -> dict[int, list[tuple[int, str, str]]]:
    """Per new partition index: (row, id, kind) of each non-survivor of the corpus being built."""
    sources, partitions, rows = unpack_ref(found.nodes)
    removed: dict[int, list[tuple[int, str, str]]] = {}
    for group in found.groups():
        survivor = group[0]
        for node in group[1:]:
            if sources[node] != 0:
                continue  # an earlier corpus's document is never removed (nor written) here
            kind = "exact" if found.exact[node] == found.exact[survivor] else "near"
            removed.setdefault(int(partitions[node]), []).append(
                (int(rows[node]), found.ids[node], kind)
            )
    return removed


def largest_clusters(
    found: Clusters, partition_uris: list[str], limit: int = CLUSTERS_REPORTED
) -> list[dict[str, Any]]:
    """The `limit` largest clusters: size, the kept document and two removed ones, each with
    its id and first words (read back from the partitions being built)."""
    groups = sorted(found.groups(), key=lambda g: (-len(g), found.ids[g[0]]))[:limit]
    sources, partitions, rows = unpack_ref(found.nodes)
    wanted: dict[int, set[int]] = {}
    for group in groups:
        for node in group[:3]:
            if sources[node] == 0 and int(partitions[node]) < len(partition_uris):
                wanted.setdefault(int(partitions[node]), set()).add(int(rows[node]))
    texts = {
        (partition, row): text
        for partition, needed in wanted.items()
        for row, text in tables.read_cells(partition_uris[partition], "text", needed).items()
    }

    def described(node: int) -> dict[str, Any]:
        text = texts.get((int(partitions[node]), int(rows[node])))
        start = " ".join(text.split()[:FIRST_WORDS]) if text else "(in an earlier corpus)"
        return {"id": str(found.ids[node]), "start": start}

    return [
        {
            "size": len(group),
            "kept": described(group[0]),
            "removed": [described(node) for node in group[1:3]],
        }
        for group in groups
    ]


def write_removals(
    pair_uris: list[str],
    partition_names: list[str],
    removals_uri: str,
    partition_uris: list[str] | None = None,
    clusters_uri: str | None = None,
) -> tuple[list[str | None], dict[str, Any]]:
    """Per partition (in order), the URI of its removal list, or None when nothing goes; with
    `clusters_uri`, the largest clusters (first words read from `partition_uris`) as JSON."""
    tables_found = [tables.read_table(uri) for uri in pair_uris]
    pairs = (pa.concat_tables(tables_found) if tables_found else PAIR_SCHEMA.empty_table()).cast(
        PAIR_SCHEMA
    )
    found = cluster(pairs) if pairs.num_rows else None
    removed = removals_of(found) if found is not None else {}
    if clusters_uri is not None:
        report = largest_clusters(found, partition_uris or []) if found is not None else []
        storage.write_text(clusters_uri, json.dumps(report, indent=1, ensure_ascii=False))
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
