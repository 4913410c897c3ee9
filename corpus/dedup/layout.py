"""Where dedup state lives, and the `meta.json` that lets a later build reuse it.

Persistent, under the corpus (`OUTPUT/dedup/`), reused by `--dedup-against OUTPUT`:

    signatures/part-NNNNN.parquet   id, length, exact, shingles, sig, source (one row per
                                    document, in the partition's row order; small row groups
                                    for lookups)
    signatures/part-NNNNN.done      JSON manifest, written last (resume marker)
    bands/part-NNNNN.parquet        key, band, row: LSH band keys + exact keys, sorted by key
    meta.json                       parameters (bands, rows, ngram, seed, hash function) and
                                    the list of partitions

Per build, under the work directory (`WORK/dedup/`): candidate pairs per key range
(`pairs/range-NNNNN.parquet` + `.done`) and removal lists (`removals/part-NNNNN.parquet`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from smelt import storage
from smelt.corpus import tables
from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup.minhash import HASH_FUNCTION
from smelt.corpus.layout import CorpusLayout
from smelt.errors import ConfigError, InputError

log = logging.getLogger(__name__)

META_FORMAT = "smelt-dedup-v1"


def partition_name(partition_uri: str) -> str:
    """`part-00003` for `.../part-00003.parquet`."""
    name = storage.basename(partition_uri)
    return name[: -len(".parquet")] if name.endswith(".parquet") else name


@dataclass(frozen=True)
class PartitionState:
    """The persisted signature and band files of one partition."""

    name: str
    signatures_uri: str
    bands_uri: str


@dataclass(frozen=True)
class DedupLayout:
    """The only place dedup's file names are spelled.

    `root` is a corpus's persistent `OUTPUT/dedup/` (reused by later builds' --dedup-against),
    `work` the build's working space (`WORK/dedup/`).
    """

    root: str
    work: str

    @classmethod
    def of(cls, corpus_uri: str, work_uri: str | None = None) -> DedupLayout:
        """The dedup layout of the corpus at `corpus_uri` (work under `work_uri`, if given)."""
        corpus = CorpusLayout.at(corpus_uri)
        work = storage.join(work_uri, "dedup") if work_uri else corpus.dedup_work_dir
        return cls(corpus.dedup_dir, work)

    @property
    def meta(self) -> str:
        return storage.join(self.root, "meta.json")

    def partition(self, name: str) -> PartitionState:
        """The signature and band files of partition `name`."""
        return PartitionState(
            name,
            storage.join(self.root, "signatures", f"{name}.parquet"),
            storage.join(self.root, "bands", f"{name}.parquet"),
        )

    def signatures_done(self, name: str) -> str:
        return storage.join(self.root, "signatures", f"{name}.done")

    def pairs(self, index: int) -> str:
        """Where key range `index` writes its verified pairs."""
        return storage.join(self.work, "pairs", f"range-{index:05d}.parquet")

    def pairs_done(self, index: int) -> str:
        return storage.join(self.work, "pairs", f"range-{index:05d}.done")

    @property
    def removals(self) -> str:
        """The folder of per-partition removal lists."""
        return storage.join(self.work, "removals")

    @property
    def clusters(self) -> str:
        """The largest near-duplicate clusters (the build's report reads them)."""
        return storage.join(self.work, "clusters.json")


def signature_params(config: DedupConfig) -> dict[str, Any]:
    """Everything that must match for two corpora's signatures and keys to be comparable."""
    return {
        "num_bands": config.num_bands,
        "rows_per_band": config.rows_per_band,
        "num_perm": config.num_bands * config.rows_per_band,
        "ngram": config.ngram,
        "seed": config.seed,
        "hash_function": HASH_FUNCTION,
        "exact": config.exact,
        "near": config.near,
    }


def write_meta(layout: DedupLayout, config: DedupConfig, partitions: list[str], docs: int) -> None:
    """Record parameters and partitions; written after every partition is signed."""
    meta = {
        "format": META_FORMAT,
        **signature_params(config),
        "partitions": partitions,
        "docs": docs,
    }
    storage.write_text(layout.meta, json.dumps(meta, indent=2))


def superseded_rows(corpus_uri: str, state: PartitionState, sources: set[str]) -> tuple[int, ...]:
    """Rows of a stored partition whose documents come from `sources` (superseded objects).

    Signatures record each document's source; those of a corpus signed before they did are
    matched to the partition's stage-1 file (same rows, same order) when it is still there.
    """
    stage_one = CorpusLayout.at(corpus_uri).extracted(int(state.name.removeprefix("part-")))
    for uri in (state.signatures_uri, stage_one):
        if storage.exists(uri) and "source" in tables.read_schema(uri).names:
            column = tables.read_table(uri, columns=["source"]).column("source")
            found = pc.is_in(column, value_set=pa.array(sorted(sources), pa.string()))
            return tuple(np.flatnonzero(found.to_numpy(zero_copy_only=False)).tolist())
    log.warning(
        "%s: partition %s records no sources; superseded documents stay dedup references",
        corpus_uri,
        state.name,
    )
    return ()


def previous_corpus(corpus_uri: str, config: DedupConfig) -> list[PartitionState]:
    """The stored partitions of an earlier corpus, after checking its parameters match."""
    layout = DedupLayout.of(corpus_uri)
    meta_uri = layout.meta
    if not storage.exists(meta_uri):
        raise InputError(
            f"--dedup-against {corpus_uri}: no dedup state at {meta_uri}; "
            "pass the output of an earlier `smelt corpus build`"
        )
    meta = json.loads(storage.read_text(meta_uri))
    wanted = signature_params(config)
    for name in ("num_bands", "rows_per_band", "ngram", "seed", "hash_function"):
        if meta.get(name) != wanted[name]:
            raise ConfigError(
                f"--dedup-against {corpus_uri}: its signatures use {name}={meta.get(name)!r}, "
                f"this build {wanted[name]!r}; set dedup.{name} to match or rebuild that corpus"
            )
    if config.near and not meta.get("near", True):
        raise ConfigError(
            f"--dedup-against {corpus_uri}: it was built without near-dedup "
            "bands; rebuild it with dedup.near = true or disable near here"
        )
    return [layout.partition(name) for name in meta["partitions"]]
