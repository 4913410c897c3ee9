"""Partition planning: which input pieces each parallel unit of a corpus build reads.

The plan is computed once, from the sorted input files and their identities, and saved as
`OUTPUT/_work/plan.json`; a rerun into the same output reuses it, so partition N always means
the same pieces (which is what makes its done-marker safe to trust). A rerun whose inputs or
config differ from the saved plan's is refused with what changed: mixing two builds in one
output would be silent damage.

Three rules shape the partitions:

- *Identity*: a file is its URI, size and version (mtime in nanoseconds locally, the ETag on
  S3), so an input edited in place, even to the same size, is a changed input.
- *Balance by expected work*: a piece's cost is its raw bytes times the relative CPU cost of
  its format (`COST_PER_BYTE`: HTML extraction costs far more per byte than reading JSONL, and
  a compressed byte stands for several). Consecutive pieces are grouped into partitions of
  about equal cost, at least `MIN_PARTITIONS` of them, so every core has work to the end; the
  build submits the most expensive first.
- *Huge files are split*: an uncompressed JSONL file is cut into byte ranges (a line belongs
  to the range it starts in), a Parquet file into runs of row groups, so one 20 GB file is
  not one task.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from smelt import storage
from smelt.corpus.config import CorpusConfig
from smelt.corpus.layout import CorpusLayout
from smelt.corpus.readers import detect_format, input_files
from smelt.corpus.readers.stream import split_compression
from smelt.errors import InputError
from smelt.storage import normalize
from smelt.storage.stage import fingerprint as digest
from smelt.storage.uri import is_s3

log = logging.getLogger(__name__)

PLAN_FORMAT = "smelt-plan-v2"
MAX_FILES_PER_PARTITION = 2048  # bounds per-task bookkeeping for many tiny files
MIN_PARTITIONS = 16  # even small inputs spread over the cores, with slack for balance...
MIN_PARTITION_COST = 256 * 1024  # ...but not into slivers that cost more to schedule than run
# Relative CPU cost per raw byte, by reader (JSON/Parquet/text = 1; HTML extraction ~10x
# per byte in measurements on documentation pages); compressed bytes expand several-fold.
COST_PER_BYTE = {"html": 8, "warc": 8, "pdf": 8}
COMPRESSED_COST = 4
SPLITTABLE = ("jsonl", "parquet")


class PlanMismatchError(InputError):
    """The output already holds (part of) a build of other inputs or another config."""


@dataclass(frozen=True)
class InputFile:
    """An input file and what identifies its content: size and version (mtime or ETag)."""

    uri: str
    size: int
    version: str


@dataclass(frozen=True)
class Piece:
    """A whole file, or a slice of one: bytes [start, end) of JSONL, row groups of Parquet."""

    uri: str
    bytes: int  # raw bytes of the file this piece covers
    cost: int
    start: int = 0
    end: int | None = None  # None: to the end of the file

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end is None


@dataclass(frozen=True)
class Partition:
    """One unit of work: consecutive pieces of about `cost` expected work, `bytes` raw bytes."""

    index: int
    pieces: tuple[Piece, ...]
    bytes: int
    cost: int

    @property
    def files(self) -> tuple[str, ...]:
        """The distinct files this partition reads (a split file appears once)."""
        return tuple(dict.fromkeys(piece.uri for piece in self.pieces))


@dataclass
class Plan:
    """The saved partition plan of one build, with the fingerprint of what it was made from."""

    inputs: list[str]
    fingerprint: str
    partitions: list[Partition] = field(default_factory=list)
    files: list[InputFile] = field(default_factory=list)
    dedup_against: list[str] = field(default_factory=list)

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def readers(self) -> dict[str, list[int]]:
        """For each input file, the indices of the partitions that read (part of) it."""
        found: dict[str, list[int]] = {}
        for partition in self.partitions:
            for uri in partition.files:
                found.setdefault(uri, []).append(partition.index)
        return found

    def by_cost(self) -> list[int]:
        """Partition indices, most expensive first (the order to submit them in)."""
        return sorted(range(len(self.partitions)), key=lambda i: -self.partitions[i].cost)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "inputs": self.inputs,
            "fingerprint": self.fingerprint,
            "dedup_against": self.dedup_against,
            "files": [[f.uri, f.size, f.version] for f in self.files],
            "partitions": [
                {
                    "index": p.index,
                    "bytes": p.bytes,
                    "cost": p.cost,
                    "pieces": [[s.uri, s.bytes, s.cost, s.start, s.end] for s in p.pieces],
                }
                for p in self.partitions
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if data.get("format") != PLAN_FORMAT:
            raise PlanMismatchError(
                f"the saved plan is of format {data.get('format')!r}, not {PLAN_FORMAT!r} "
                "(an older smelt started this build); use a new --output or delete this one"
            )
        parts = [
            Partition(
                p["index"],
                tuple(Piece(*piece) for piece in p["pieces"]),
                p["bytes"],
                p["cost"],
            )
            for p in data["partitions"]
        ]
        return cls(
            inputs=data["inputs"],
            fingerprint=data["fingerprint"],
            partitions=parts,
            files=[InputFile(*entry) for entry in data["files"]],
            dedup_against=data.get("dedup_against", []),
        )


# ---- listing inputs ----------------------------------------------------------------------------


def _listing(uri: str) -> dict[str, dict[str, Any]]:
    """Every object under `uri` with its listing details, from one listing (no call per file)."""
    try:
        return storage.file_details(uri)
    except PermissionError as exc:
        raise InputError(
            f"cannot read {uri}: access denied ({exc}); check the credentials"
        ) from None
    except FileNotFoundError:
        raise InputError(f"input not found: {uri}") from None
    except OSError as exc:
        raise InputError(f"cannot list {uri}: {exc}") from None


def _version(info: dict[str, Any]) -> str:
    """What changes when an object's content does: its ETag on S3, else its mtime (ns)."""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return str(etag).strip('"')
    if info.get("mtime_ns") is not None:
        return str(info["mtime_ns"])
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return str(int(float(mtime) * 1e9))


def list_inputs(inputs: list[str]) -> list[InputFile]:
    """All input files of all `inputs` URIs with their identities, sorted, without duplicates.

    Raises `InputError` for a missing, unreadable or empty input before any work starts.
    """
    if not inputs:
        raise InputError("no --input given: name at least one file, directory or s3:// prefix")
    found: dict[str, InputFile] = {}
    for uri in inputs:
        details = _listing(uri)
        for file_uri in input_files(uri):
            info = details.get(file_uri, {})
            found[file_uri] = InputFile(file_uri, int(info.get("size") or 0), _version(info))
    if not found:
        raise InputError(
            f"no input files found under {', '.join(inputs)}; "
            "expected HTML, WARC, PDF, TXT, JSON/JSONL or Parquet files"
        )
    return sorted(found.values(), key=lambda f: f.uri)


# ---- costs and pieces --------------------------------------------------------------------------


def piece_cost(uri: str, size: int) -> int:
    """Expected work of reading `size` raw bytes of the file at `uri` (see `COST_PER_BYTE`)."""
    weight = COST_PER_BYTE.get(detect_format(uri), 1)
    if split_compression(uri)[1] is not None:
        weight *= COMPRESSED_COST
    return max(1, size * weight)


def split_file(item: InputFile, target_cost: int) -> list[Piece]:
    """The file as one piece, or as several when it is a large splittable file."""
    cost = piece_cost(item.uri, item.size)
    fmt = detect_format(item.uri)
    if cost <= 2 * target_cost or fmt not in SPLITTABLE or split_compression(item.uri)[1]:
        return [Piece(item.uri, item.size, cost)]
    count = math.ceil(cost / target_cost)
    if fmt == "jsonl":
        bounds = [item.size * i // count for i in range(count + 1)]
        return [
            Piece(item.uri, hi - lo, piece_cost(item.uri, hi - lo), lo, hi)
            for lo, hi in zip(bounds, bounds[1:], strict=False)
        ]
    return _row_group_pieces(item, count)


def _row_group_pieces(item: InputFile, count: int) -> list[Piece]:
    """A Parquet file cut into about `count` runs of row groups of similar size."""
    whole = [Piece(item.uri, item.size, piece_cost(item.uri, item.size))]
    try:
        with storage.open_read(item.uri) as fh:
            meta = pq.ParquetFile(fh).metadata
    except Exception:  # noqa: BLE001 - an unreadable file is the reader's to quarantine
        return whole
    sizes = [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)]
    if len(sizes) < 2:
        return whole
    total, target = max(1, sum(sizes)), sum(sizes) / min(count, len(sizes))
    pieces: list[Piece] = []
    start, filled = 0, 0
    for group, size in enumerate(sizes):
        filled += size
        last = group + 1 == len(sizes)
        if filled >= target or last:
            share = item.size * filled // total
            end = None if last else group + 1
            pieces.append(Piece(item.uri, share, piece_cost(item.uri, share), start, end))
            start, filled = group + 1, 0
    return pieces


def partition_files(
    files: list[InputFile], partition_bytes: int, max_files: int = MAX_FILES_PER_PARTITION
) -> list[Partition]:
    """Group sorted files (split where large) into consecutive partitions of similar cost.

    A partition holds at most `partition_bytes` raw bytes (a single larger piece excepted) and
    `max_files` pieces; its cost target makes at least `MIN_PARTITIONS` partitions when the
    input is large enough to be worth it.
    """
    total_cost = sum(piece_cost(f.uri, f.size) for f in files)
    target = max(MIN_PARTITION_COST, math.ceil(total_cost / MIN_PARTITIONS))
    partitions: list[Partition] = []
    current: list[Piece] = []
    current_bytes = current_cost = 0
    for item in files:
        for piece in split_file(item, target):
            raw = piece.bytes
            full = current_cost + piece.cost > target or current_bytes + raw > partition_bytes
            if current and (full or len(current) >= max_files):
                partitions.append(
                    Partition(len(partitions), tuple(current), current_bytes, current_cost)
                )
                current, current_bytes, current_cost = [], 0, 0
            current.append(piece)
            current_bytes += raw
            current_cost += piece.cost
    if current:
        partitions.append(Partition(len(partitions), tuple(current), current_bytes, current_cost))
    return partitions


# ---- the plan ----------------------------------------------------------------------------------


def fingerprint(files: list[InputFile], config: CorpusConfig, dedup_against: list[str]) -> str:
    """SHA-256 over the input files' identities, the config and the dedup references."""
    return digest(
        [[f.uri, f.size, f.version] for f in files],
        config.to_dict(),
        sorted(normalize(u) for u in dedup_against),
    )


def check_output(output_uri: str, inputs: list[str]) -> None:
    """Refuse an output that cannot hold a corpus, before anything is written: one inside an
    input (the build would read its own output), an existing file, a directory this process
    cannot write, an S3 bucket that is missing or refuses these credentials."""
    output = normalize(output_uri)
    for uri in inputs:
        source = normalize(uri)
        if is_s3(source) != is_s3(output):
            continue
        if _within(output, source):
            raise InputError(
                f"--output {output} is inside the input {source}: the build would read its own "
                "output; choose an output outside the input"
            )
    storage.require_writable(output)


def check_locations(inputs: list[str], output_uri: str, dedup_against: list[str]) -> None:
    """Every input and reference readable and the output usable, checked in seconds before
    any work (`smelt.storage.preflight`); an `InputError` naming the first URI at fault."""
    if not inputs:
        raise InputError("no --input given: name at least one file, directory or s3:// prefix")
    for uri in inputs:
        storage.require_readable(uri)
    for uri in dedup_against:
        if not any(char in uri for char in "*?["):  # a glob may match nothing yet
            storage.require_readable(uri)
    check_output(output_uri, inputs)


def _within(path: str, root: str) -> bool:
    """Whether `path` is `root` or below it (local paths compared with symlinks resolved)."""
    if not is_s3(path):
        path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def plan_build(
    inputs: list[str],
    output_uri: str,
    config: CorpusConfig,
    dedup_against: list[str] | None = None,
    files: list[InputFile] | None = None,
) -> Plan:
    """The plan for building `inputs` into `output_uri`: the saved one on rerun, else a new one.

    `files` are the input files to read when the caller already listed and chose them (an
    `--only-new` build reads only the new and changed ones); by default, every file listed.
    Raises `InputError` when an input is missing, or when the output already holds a build of
    other inputs or another config (naming what changed).
    """
    layout = CorpusLayout.at(output_uri)
    inputs = [normalize(u) for u in inputs]
    dedup_against = list(dedup_against or [])
    check_output(layout.root, inputs)
    files = list_inputs(inputs) if files is None else files
    key = fingerprint(files, config, dedup_against)
    saved = _saved_plan(layout, files, config, key)
    if saved is not None:
        log.info("reusing plan %s (%d partitions)", layout.plan, len(saved.partitions))
        return saved
    plan = Plan(
        inputs=inputs,
        fingerprint=key,
        partitions=partition_files(files, config.partition_bytes),
        files=files,
        dedup_against=dedup_against,
    )
    storage.write_text(layout.plan, json.dumps(plan.to_dict(), indent=1))
    log.info(
        "planned %d partitions over %d files (%d bytes)",
        len(plan.partitions),
        plan.file_count,
        plan.total_bytes,
    )
    return plan


def check_plan(
    inputs: list[str], output_uri: str, config: CorpusConfig, dedup_against: list[str]
) -> None:
    """Refuse now, before any work, what `plan_build` would: an output that holds (part of) a
    build of other inputs, changed inputs or another config."""
    layout = CorpusLayout.at(output_uri)
    files = list_inputs([normalize(u) for u in inputs])
    _saved_plan(layout, files, config, fingerprint(files, config, dedup_against))


def _saved_plan(
    layout: CorpusLayout, files: list[InputFile], config: CorpusConfig, key: str
) -> Plan | None:
    """The output's saved plan when it was made from these very inputs and config; None when
    there is none; `PlanMismatchError` naming what changed otherwise."""
    if not storage.exists(layout.plan):
        return None
    saved = Plan.from_dict(json.loads(storage.read_text(layout.plan)))
    if saved.fingerprint != key:
        raise PlanMismatchError(mismatch_message(layout.root, saved, files, config))
    return saved


def mismatch_message(root: str, saved: Plan, files: list[InputFile], config: CorpusConfig) -> str:
    """Why a saved plan does not fit this build: which inputs changed, or the config."""
    before = {f.uri: f for f in saved.files}
    now = {f.uri: f for f in files}
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    changed = sorted(u for u in set(now) & set(before) if now[u] != before[u])
    parts = []
    for label, uris in (("added", added), ("removed", removed), ("changed", changed)):
        if uris:
            parts.append(f"{len(uris)} input file(s) {label} (e.g. {uris[0]})")
    what = "; ".join(parts) or "another config or other --dedup-against references"
    return (
        f"{root} already holds a build of other inputs or another config: {what} since it "
        "was planned; use a new --output, or delete that output to rebuild it"
    )


def load_plan(output_uri: str) -> Plan:
    """The saved plan of a build (partition stages read their pieces from it)."""
    layout = CorpusLayout.at(output_uri)
    if not storage.exists(layout.plan):
        raise InputError(f"no plan at {layout.plan}: run `smelt corpus build` for this output")
    return Plan.from_dict(json.loads(storage.read_text(layout.plan)))
