"""Where a corpus build puts things: every output path of `smelt corpus build` in one place.

    OUTPUT/data/part-NNNNN.parquet            kept documents (the corpus)
    OUTPUT/quarantine/extract-NNNNN.parquet   inputs that could not be read or extracted
    OUTPUT/quarantine/pii-NNNNN.parquet       documents whose PII redaction failed
    OUTPUT/stats.json                         counts; written last: no stats.json, no corpus
    OUTPUT/config.json                        config + inputs + their fingerprint
    OUTPUT/_work/plan.json                    the partition plan, reused on rerun
    OUTPUT/_work/extracted/part-NNNNN.*       stage 1 output (.parquet, .stats.json, .done)
    OUTPUT/_work/dedup/                       stage 2 working space (pairs, removal lists)
    OUTPUT/dedup/                             MinHash signatures, kept for later --dedup-against
    OUTPUT/_work/final/part-NNNNN.*           stage 3 bookkeeping (.stats.json, .done)

A `.done` marker is written after the files it vouches for, so a partition with a marker is
complete and one without is redone from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass

from smelt.storage import join, normalize


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
    def stats(self) -> str:
        return join(self.root, "stats.json")

    @property
    def config(self) -> str:
        return join(self.root, "config.json")

    def data(self, index: int) -> str:
        return join(self.data_dir, f"{part_name(index)}.parquet")

    def extract_quarantine(self, index: int) -> str:
        return join(self.quarantine_dir, f"extract-{index:05d}.parquet")

    def pii_quarantine(self, index: int) -> str:
        return join(self.quarantine_dir, f"pii-{index:05d}.parquet")

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

    def extracted(self, index: int) -> str:
        return join(self.extracted_dir, f"{part_name(index)}.parquet")

    def extracted_stats(self, index: int) -> str:
        return join(self.extracted_dir, f"{part_name(index)}.stats.json")

    def extracted_done(self, index: int) -> str:
        return join(self.extracted_dir, f"{part_name(index)}.done")

    def final_stats(self, index: int) -> str:
        return join(self.final_dir, f"{part_name(index)}.stats.json")

    def final_done(self, index: int) -> str:
        return join(self.final_dir, f"{part_name(index)}.done")
