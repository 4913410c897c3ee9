"""Exact and MinHash near-duplicate removal over partitions, with no global in-memory index.

Stages (each a function over URIs, run as one Prefect task per partition or key range):

1. `sign_partition`: word n-gram MinHash signatures, exact-text keys and LSH band keys of one
   partition, persisted under `OUTPUT/dedup/` (reused by a later build's `--dedup-against`).
2. `find_pairs`: per range of band keys, documents sharing a key become candidate pairs,
   verified by estimated Jaccard (or text hash + signature equality for exact keys).
3. `write_removals`: union-find over all verified pairs, one survivor per cluster (longest
   text, then smallest id; an earlier corpus's document always survives), and a removal list
   (id, kind) per partition. Stage 3 of the corpus build drops those ids.

See `minhash.py` for the banding math and `layout.py` for the files.
"""

from smelt.corpus.dedup.layout import DedupLayout, partition_name, previous_corpus, write_meta
from smelt.corpus.dedup.minhash import candidate_probability, signatures
from smelt.corpus.dedup.pairs import Shard, find_pairs
from smelt.corpus.dedup.plan import deduplicate
from smelt.corpus.dedup.removal import write_removals
from smelt.corpus.dedup.signing import sign_partition

__all__ = [
    "DedupLayout",
    "Shard",
    "candidate_probability",
    "deduplicate",
    "find_pairs",
    "partition_name",
    "previous_corpus",
    "sign_partition",
    "signatures",
    "write_meta",
    "write_removals",
]
