"""Shard packing as a property: whole documents, in order, greedy, within the size limit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from smelt.prep.packing import pack_documents

doc_lengths = st.lists(st.integers(min_value=1, max_value=300), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(doc_lengths, min_size=1, max_size=5),
    shard_tokens=st.integers(min_value=1, max_value=500),
)
def test_packing_keeps_whole_documents_in_order_within_the_limit(parts, shard_tokens):
    part_ends = {
        i: np.cumsum(lengths).astype(np.int64) for i, lengths in enumerate(parts) if lengths
    }
    shards = pack_documents(part_ends, shard_tokens)

    # concatenating the pieces gives every document of every partition, once, in order
    flat = [(p.part, p.start, p.end) for shard in shards for p in shard]
    covered = {i: 0 for i in part_ends}
    for part, start, end in flat:
        assert start == covered[part] and end > start
        assert end in set(part_ends[part].tolist())  # a piece ends on a document boundary
        covered[part] = end
    assert covered == {i: int(ends[-1]) for i, ends in part_ends.items()}
    assert [part for part, _, _ in flat] == sorted(part for part, _, _ in flat)

    sizes = [sum(p.end - p.start for p in shard) for shard in shards]
    docs = [sum(p.docs for p in shard) for shard in shards]
    assert sum(docs) == sum(len(lengths) for lengths in parts)
    for size, count in zip(sizes, docs, strict=True):
        assert size <= shard_tokens or count == 1
    # greedy: the next shard's first document would not have fit in the previous shard
    all_lengths = [n for lengths in parts for n in lengths]
    first_doc = np.cumsum([0, *docs])[:-1]
    for k in range(1, len(shards)):
        assert sizes[k - 1] + all_lengths[first_doc[k]] > shard_tokens
