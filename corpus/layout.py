"""Where a corpus build puts things: the only place that spells a corpus's file names.

    OUTPUT/data/part-NNNNN.parquet            kept documents (the corpus)
    OUTPUT/quarantine/extract-NNNNN.parquet   inputs that could not be read or extracted
    OUTPUT/quarantine/pii-NNNNN.parquet       documents whose PII redaction failed
    OUTPUT/filtered/part-NNNNN.parquet        every filtered document with its reason
                                              (`[output] keep_filtered`, `--keep-filtered`)
    OUTPUT/samples/filtered-NNNNN.parquet     a few filtered documents per reason, always
    OUTPUT/stats.json                         counts; written last: no stats.json, no corpus
    OUTPUT/config.json                        config + inputs + their fingerprint
    OUTPUT/inputs.parquet                     every input object the build consumed (URI, size,
                                              version, content hash, documents kept from it)
    OUTPUT/supersedes.parquet                 sources of earlier corpora whose documents this
                                              build replaces (changed objects, `--only-new`)
    OUTPUT/superseded_by/NAME.json            written by a later build: sources of this corpus
                                              that it replaced (their documents are no longer live)
    OUTPUT/dedup/                             MinHash signatures, kept for later --dedup-against
    OUTPUT/_work/plan.json                    the partition plan, reused on rerun
    OUTPUT/_work/extracted/part-NNNNN.*       stage 1 output (.parquet, and .done with counts)
    OUTPUT/_work/dedup/                       stage 2 working space (pairs, removal lists,
                                              clusters.json: the largest clusters)
    OUTPUT/_work/final/part-NNNNN.done        stage 3 marker (holds the partition's counts)
    OUTPUT/_work/ids/                         renames of documents that share an input id

Every `.done` marker is a `smelt.storage.stage.Marker`, written after the files it vouches for,
so a partition with a marker is complete and one without is redone from scratch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from smelt.storage import exists, join, normalize, read_text

STATS_FILE = "stats.json"
CONFIG_FILE = "config.json"
INPUTS_FILE = "inputs.parquet"
SUPERSEDES_FILE = "supersedes.parquet"
MARKER_SUFFIX = ".done"


def part_name(index: int) -> str:
    """`part-00007` for partition 7."""
    return f"part-{index:05d}"


@dataclass(frozen=True)
class CorpusLayout:
    """All URIs of one corpus output, derived from its root URI."""

    root: str

    @classmethod
    def at(cls, output_uri: str) -> CorpusLayout:
        return cls(normalize(output_uri))

    # -- published corpus ------------------------------------------------------------------
    @property
    def data_dir(self) -> str:
        return join(self.root, "data")

    @property
    def quarantine_dir(self) -> str:
        return join(self.root, "quarantine")

    @property
    def filtered_dir(self) -> str:
        return join(self.root, "filtered")

    @property
    def samples_dir(self) -> str:
        """A few filtered documents per reason (not all: `filtered/` holds all, on request)."""
        return join(self.root, "samples")

    @property
    def stats(self) -> str:
        return join(self.root, STATS_FILE)

    @property
    def config(self) -> str:
        return join(self.root, CONFIG_FILE)

    @property
    def inputs(self) -> str:
        """The consumed-inputs record (`smelt.corpus.consumed`), written before stats.json."""
        return join(self.root, INPUTS_FILE)

    @property
    def supersedes(self) -> str:
        """What this build replaced in earlier corpora (`smelt.corpus.supersede`)."""
        return join(self.root, SUPERSEDES_FILE)

    @property
    def superseded_by_dir(self) -> str:
        """Notices left here by later builds that replaced some of this corpus's sources."""
        return join(self.root, "superseded_by")

    def superseded_by(self, name: str) -> str:
        return join(self.superseded_by_dir, f"{name}.json")

    @property
    def dedup_dir(self) -> str:
        """Persistent dedup state (signatures, band keys): reused by `--dedup-against`."""
        return join(self.root, "dedup")

    def data(self, index: int) -> str:
        return join(self.data_dir, f"{part_name(index)}.parquet")

    def extract_quarantine(self, index: int) -> str:
        return join(self.quarantine_dir, f"extract-{index:05d}.parquet")

    def pii_quarantine(self, index: int) -> str:
        return join(self.quarantine_dir, f"pii-{index:05d}.parquet")

    def filtered(self, index: int) -> str:
        return join(self.filtered_dir, f"{part_name(index)}.parquet")

    def samples(self, index: int) -> str:
        return join(self.samples_dir, f"filtered-{index:05d}.parquet")

    # -- working state (resume) ------------------------------------------------------------
    @property
    def work_dir(self) -> str:
        return join(self.root, "_work")

    @property
    def plan(self) -> str:
        return join(self.work_dir, "plan.json")

    @property
    def extracted_dir(self) -> str:
        return join(self.work_dir, "extracted")

    @property
    def final_dir(self) -> str:
        return join(self.work_dir, "final")

    @property
    def dedup_work_dir(self) -> str:
        """Per-build dedup state (pairs per key range, removal lists)."""
        return join(self.work_dir, "dedup")

    def extracted(self, index: int) -> str:
        return join(self.extracted_dir, f"{part_name(index)}.parquet")

    def extracted_done(self, index: int) -> str:
        return join(self.extracted_dir, f"{part_name(index)}{MARKER_SUFFIX}")

    def final_done(self, index: int) -> str:
        return join(self.final_dir, f"{part_name(index)}{MARKER_SUFFIX}")

    @property
    def dedup_clusters(self) -> str:
        """The largest near-duplicate clusters, for the build's report."""
        return join(self.dedup_work_dir, "clusters.json")

    @property
    def ids_dir(self) -> str:
        return join(self.work_dir, "ids")

    @property
    def ids_plan(self) -> str:
        """The renames that make ids unique, computed once (its presence: computed)."""
        return join(self.ids_dir, f"renames{MARKER_SUFFIX}")

    def ids_done(self, index: int) -> str:
        return join(self.ids_dir, f"{part_name(index)}{MARKER_SUFFIX}")


def is_finished_corpus(uri: str) -> bool:
    """Whether `uri` holds a finished corpus (its stats.json, written last, is there)."""
    return exists(CorpusLayout.at(uri).stats)


def corpus_fingerprint(output_uri: str) -> str | None:
    """The inputs+config fingerprint of a finished corpus, or None when it is unfinished."""
    layout = CorpusLayout.at(output_uri)
    if not exists(layout.stats) or not exists(layout.config):
        return None
    return json.loads(read_text(layout.config)).get("fingerprint")
