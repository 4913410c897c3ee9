"""Partition planning: which input files each parallel unit of a corpus build reads.

The plan is computed once, from the sorted list of input files and their sizes, and saved as
`OUTPUT/_work/plan.json`; a rerun into the same output reuses it so partition N always means the
same files (that is what makes `.done` markers safe to trust). A rerun whose inputs or config
differ from the saved plan's is refused: mixing two builds in one output would be silent damage.

Partitions are bounded by raw bytes (`CorpusConfig.partition_bytes`) and by a file count, so
200,000 tiny files make a few dozen partitions rather than one per file or one in all. Small
inputs are still cut into several partitions so every core has work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from smelt.corpus.config import CorpusConfig
from smelt.corpus.layout import CorpusLayout
from smelt.errors import InputError
from smelt.storage import exists, filesystem, normalize, read_text, write_text
from smelt.storage.uri import to_uri

log = logging.getLogger(__name__)

PLAN_FORMAT = "smelt-plan-v1"
MAX_FILES_PER_PARTITION = 2048  # bounds per-task bookkeeping for many tiny files
MIN_PARTITIONS = 8  # small inputs still spread over the cores...
MIN_PARTITION_BYTES = 1024 * 1024  # ...but not into slivers that cost more to schedule than run


class PlanMismatchError(InputError):
    """The output already holds (part of) a build of other inputs or another config."""


@dataclass(frozen=True)
class Partition:
    """One unit of work: a list of input file URIs and their total raw size."""

    index: int
    files: tuple[str, ...]
    bytes: int


@dataclass
class Plan:
    """The saved partition plan of one build, with the fingerprint of what it was made from."""

    inputs: list[str]
    fingerprint: str
    partitions: list[Partition] = field(default_factory=list)

    @property
    def file_count(self) -> int:
        return sum(len(p.files) for p in self.partitions)

    @property
    def total_bytes(self) -> int:
        return sum(p.bytes for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "inputs": self.inputs,
            "fingerprint": self.fingerprint,
            "partitions": [
                {"index": p.index, "bytes": p.bytes, "files": list(p.files)}
                for p in self.partitions
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        parts = [Partition(p["index"], tuple(p["files"]), p["bytes"]) for p in data["partitions"]]
        return cls(inputs=data["inputs"], fingerprint=data["fingerprint"], partitions=parts)


def _input_files(uri: str) -> list[str]:
    """The readable input files under `uri` (the readers decide which files are inputs)."""
    from smelt.corpus.readers import input_files

    return input_files(uri)


def _sizes_under(uri: str) -> dict[str, int]:
    """Sizes of every object under `uri` from one listing (no request per file on S3)."""
    fs, path = filesystem(uri)
    try:
        if fs.isfile(path):
            return {to_uri(fs, path): int(fs.size(path))}
        listing = fs.find(path, detail=True)
    except PermissionError as exc:
        raise InputError(
            f"cannot read {uri}: access denied ({exc}); check the credentials"
        ) from None
    except FileNotFoundError:
        raise InputError(f"input not found: {uri}") from None
    except OSError as exc:
        raise InputError(f"cannot list {uri}: {exc}") from None
    return {to_uri(fs, p): int(info.get("size") or 0) for p, info in listing.items()}


def list_inputs(inputs: list[str]) -> list[tuple[str, int]]:
    """All input files of all `inputs` URIs with their sizes, sorted, without duplicates.

    Raises `InputError` for a missing or unreadable input before any work starts.
    """
    if not inputs:
        raise InputError("no --input given: name at least one file, directory or s3:// prefix")
    sized: dict[str, int] = {}
    for uri in inputs:
        files = _input_files(uri)
        sizes = _sizes_under(uri)
        for file_uri in files:
            sized[file_uri] = sizes.get(file_uri, 0)
    if not sized:
        raise InputError(
            f"no input files found under {', '.join(inputs)}; "
            "expected HTML, WARC, TXT, JSON/JSONL or Parquet files"
        )
    return sorted(sized.items())


def fingerprint(
    files: list[tuple[str, int]], config: CorpusConfig, dedup_against: list[str]
) -> str:
    """SHA-256 over the input files (URI + size), the config and the dedup references."""
    payload = {
        "files": files,
        "config": config.to_dict(),
        "dedup_against": sorted(normalize(u) for u in dedup_against),
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def partition_files(
    files: list[tuple[str, int]], partition_bytes: int, max_files: int = MAX_FILES_PER_PARTITION
) -> list[Partition]:
    """Group sorted (uri, size) pairs into consecutive partitions of bounded bytes and count.

    A file larger than the bound is a partition of its own.
    """
    total = sum(size for _, size in files)
    target = min(partition_bytes, max(MIN_PARTITION_BYTES, math.ceil(total / MIN_PARTITIONS)))
    target = max(1, target)
    partitions: list[Partition] = []
    current: list[str] = []
    current_bytes = 0
    for uri, size in files:
        if current and (current_bytes + size > target or len(current) >= max_files):
            partitions.append(Partition(len(partitions), tuple(current), current_bytes))
            current, current_bytes = [], 0
        current.append(uri)
        current_bytes += size
    if current:
        partitions.append(Partition(len(partitions), tuple(current), current_bytes))
    return partitions


def plan_build(
    inputs: list[str], output_uri: str, config: CorpusConfig, dedup_against: list[str] | None = None
) -> Plan:
    """The plan for building `inputs` into `output_uri`: the saved one on rerun, else a new one.

    Raises `InputError` when an input is missing, or when the output already holds a build of
    other inputs or another config.
    """
    layout = CorpusLayout.at(output_uri)
    inputs = [normalize(u) for u in inputs]
    files = list_inputs(inputs)
    digest = fingerprint(files, config, dedup_against or [])
    if exists(layout.plan):
        saved = Plan.from_dict(json.loads(read_text(layout.plan)))
        if saved.fingerprint != digest:
            raise PlanMismatchError(
                f"{layout.root} already holds a build of other inputs or another config "
                f"(its plan lists {saved.file_count} file(s) from {', '.join(saved.inputs)}); "
                "use a new --output, or delete that output to rebuild it"
            )
        log.info("reusing plan %s (%d partitions)", layout.plan, len(saved.partitions))
        return saved
    plan = Plan(
        inputs=inputs, fingerprint=digest, partitions=partition_files(files, config.partition_bytes)
    )
    write_text(layout.plan, json.dumps(plan.to_dict(), indent=1))
    log.info(
        "planned %d partitions over %d files (%d bytes)",
        len(plan.partitions),
        plan.file_count,
        plan.total_bytes,
    )
    return plan


def load_plan(output_uri: str) -> Plan:
    """The saved plan of a build (tasks read their partition's files from it)."""
    layout = CorpusLayout.at(output_uri)
    if not exists(layout.plan):
        raise InputError(f"no plan at {layout.plan}: run `smelt corpus build` for this output")
    return Plan.from_dict(json.loads(read_text(layout.plan)))
