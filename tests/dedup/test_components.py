"""Union-find clusters and the survivor rule."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from smelt.corpus.dedup.components import UnionFind, connected_components
from smelt.corpus.dedup.pairs import PAIR_SCHEMA, pack_ref
from smelt.corpus.dedup.removal import removals


def test_components_of_chains_and_stars():
    left = np.array([10, 11, 12, 50, 50, 70])
    right = np.array([11, 12, 13, 51, 52, 71])
    nodes, labels = connected_components(left, right)
    groups = {}
    for node, label in zip(nodes.tolist(), labels.tolist(), strict=True):
        groups.setdefault(label, set()).add(node)
    assert sorted(map(sorted, groups.values())) == [[10, 11, 12, 13], [50, 51, 52], [70, 71]]


def test_union_find_is_idempotent():
    sets = UnionFind(4)
    sets.union(0, 1)
    sets.union(1, 0)
    sets.union(2, 3)
    assert sets.find(0) == sets.find(1) != sets.find(2) == sets.find(3)


def _pairs(rows):
    """rows: (a_ref, b_ref, a_id, b_id, a_len, b_len, a_exact, b_exact)."""
    columns = list(zip(*rows, strict=True))
    data = dict(zip(PAIR_SCHEMA.names[:8], columns, strict=True))
    data["jaccard"] = [0.9] * len(rows)
    return pa.table(data, schema=PAIR_SCHEMA)


def test_survivor_is_longest_then_smallest_id():
    a, b, c = pack_ref(0, 0, 0), pack_ref(0, 1, 5), pack_ref(0, 2, 9)
    pairs = _pairs([(a, b, "z", "m", 100, 100, 1, 1), (b, c, "m", "k", 100, 90, 1, 2)])
    removed = removals(pairs)
    # a and b are equally long: "m" < "z" survives; c is shorter
    assert removed == {0: [(0, "z", "exact")], 2: [(9, "k", "near")]}


def test_documents_sharing_an_id_are_told_apart_by_position():
    """Two different documents with the same id: only the duplicate one goes, by its row."""
    a, b, c = pack_ref(0, 0, 3), pack_ref(0, 0, 4), pack_ref(0, 1, 0)
    pairs = _pairs([(a, c, "X", "Z", 100, 120, 1, 2)])  # row 3 ("X") duplicates Z; row 4 does not
    assert removals(pairs) == {0: [(3, "X", "near")]}
    assert b not in {ref for ref in (a, c)}


def test_earlier_corpus_document_always_survives():
    new, old = pack_ref(0, 3, 1), pack_ref(1, 0, 4)
    pairs = _pairs([(new, old, "new-long", "old-short", 500, 10, 7, 8)])
    assert removals(pairs) == {3: [(1, "new-long", "near")]}
