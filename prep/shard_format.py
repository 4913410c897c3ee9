"""The on-disk contract of token shards (ARCHITECTURE.md, "Shards"), and its early validation.

A dataset is a manifest plus `{train,val}` shards (`ShardsLayout` names the files): `.bin` holds
little-endian uint32 token ids (each document = its tokens + the end-of-text id), `.idx` the
little-endian uint64 end offset (in tokens) of each document. The manifest is written last, so
a prefix without one holds no finished dataset. `open_manifest` is what training calls before
its first step: every error a user can fix (wrong path, old format, a shard missing or of the
wrong size) surfaces there, naming the object. The full check of a shard's content is
`smelt.prep.shard_check`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from smelt import storage
from smelt.errors import InputError, IntegrityError
from smelt.prep.layout import ShardsLayout

log = logging.getLogger(__name__)

FORMAT = "smelt-shards-v1"
SPLITS = ShardsLayout.SPLITS
TOKEN_DTYPE = np.dtype("<u4")
OFFSET_DTYPE = np.dtype("<u8")
MAX_VOCAB = 2**32
REBUILD = "rebuild with `smelt shards build`"


def shard_error(name: str, problem: str, fix: str = REBUILD) -> IntegrityError:
    """The one form of every shard integrity error: `shard NAME: PROBLEM; FIX`."""
    return IntegrityError(f"shard {name}: {problem}; {fix}")


@dataclass(frozen=True)
class ShardInfo:
    """One `.bin` shard as the manifest lists it; `path` is relative to the dataset root."""

    split: str
    path: str
    num_tokens: int
    num_docs: int
    bytes: int
    sha256: str

    @property
    def idx_path(self) -> str:
        """The `.idx` beside the `.bin` (same stem)."""
        return ShardsLayout.idx_path(self.path)


@dataclass(frozen=True)
class Manifest:
    """A finished shard dataset: tokenizer facts plus the list of its shards."""

    vocab_size: int
    eos_id: int
    tokenizer_sha256: str
    shards: tuple[ShardInfo, ...] = field(default_factory=tuple)
    root: str = ""  # where the manifest was read from (not serialized)

    def split(self, name: str) -> tuple[ShardInfo, ...]:
        """Shards of one split, in manifest order."""
        return tuple(s for s in self.shards if s.split == name)

    @property
    def layout(self) -> ShardsLayout:
        return ShardsLayout(self.root)

    def shard_uri(self, shard: ShardInfo) -> str:
        return self.layout.uri(shard.path)

    def idx_uri(self, shard: ShardInfo) -> str:
        return self.layout.uri(shard.idx_path)

    def num_tokens(self, split: str | None = None) -> int:
        return sum(s.num_tokens for s in self.shards if split is None or s.split == split)

    def to_dict(self) -> dict:
        """The JSON form, exactly the fields ARCHITECTURE.md fixes."""
        return {
            "format": FORMAT,
            "dtype": "uint32",
            "endianness": "little",
            "vocab_size": self.vocab_size,
            "eos_id": self.eos_id,
            "tokenizer_sha256": self.tokenizer_sha256,
            "shards": [asdict(s) for s in self.shards],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def parse_manifest(data: dict, where: str) -> Manifest:
    """Validate a manifest's JSON object; `where` names it in errors."""
    if not isinstance(data, dict):
        raise IntegrityError(f"{where}: not a JSON object; rebuild with `smelt shards build`")
    found = data.get("format")
    if found != FORMAT:
        raise IntegrityError(
            f"{where}: format {found!r} is not {FORMAT!r}; rebuild the shards "
            "with this version of `smelt shards build`"
        )
    if data.get("dtype") != "uint32" or data.get("endianness") != "little":
        raise IntegrityError(
            f"{where}: dtype/endianness must be uint32/little, got "
            f"{data.get('dtype')!r}/{data.get('endianness')!r}"
        )
    try:
        vocab_size, eos_id = int(data["vocab_size"]), int(data["eos_id"])
        shards = tuple(_parse_shard(s) for s in data["shards"])
        tokenizer_sha256 = str(data["tokenizer_sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(
            f"{where}: malformed field ({type(exc).__name__}: {exc}); rebuild "
            "with `smelt shards build`"
        ) from None
    if not 0 < vocab_size <= MAX_VOCAB:
        raise IntegrityError(f"{where}: vocab_size {vocab_size} does not fit uint32 token ids")
    if not 0 <= eos_id < vocab_size:
        raise IntegrityError(f"{where}: eos_id {eos_id} is outside the vocabulary ({vocab_size})")
    for shard in shards:
        if shard.split not in SPLITS or not ShardsLayout.is_shard_path(shard.path):
            raise IntegrityError(f"{where}: bad shard entry {shard.path!r} ({shard.split!r})")
        if shard.bytes != shard.num_tokens * TOKEN_DTYPE.itemsize:
            raise IntegrityError(
                f"{where}: shard {shard.path} lists {shard.bytes} bytes for "
                f"{shard.num_tokens} uint32 tokens"
            )
    return Manifest(vocab_size, eos_id, tokenizer_sha256, shards)


def _parse_shard(entry: dict) -> ShardInfo:
    return ShardInfo(
        split=str(entry["split"]),
        path=str(entry["path"]),
        num_tokens=int(entry["num_tokens"]),
        num_docs=int(entry["num_docs"]),
        bytes=int(entry["bytes"]),
        sha256=str(entry["sha256"]),
    )


def open_manifest(uri: str, check_files: bool = True) -> Manifest:
    """Read and validate a dataset's manifest; `uri` is the dataset root or its manifest.json.

    With `check_files`, every listed `.bin` and `.idx` must exist with the expected size (one
    listing, no data read): a dataset that would fail mid-training fails here instead.
    """
    layout = ShardsLayout.at(uri)
    root, where = layout.root, layout.manifest
    if not storage.exists(where):
        hint = (
            "no finished shard dataset there (the manifest is written last: an interrupted "
            "build leaves none); run `smelt shards build --output " + root + "`"
        )
        raise InputError(f"{where} not found: {hint}")
    try:
        data = json.loads(storage.read_text(where))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{where}: not valid JSON ({exc}); rebuild the shards") from None
    manifest = dataclasses.replace(parse_manifest(data, where), root=root)
    if check_files:
        check_shard_files(manifest)
    return manifest


def check_shard_files(manifest: Manifest) -> None:
    """Every listed shard and its `.idx` present with the size the manifest implies.

    The cheap check (one listing, no data read) that `open_manifest` runs; `shard_check`
    reads the content.
    """
    sizes = _file_sizes(manifest.root)
    for shard in manifest.shards:
        expected = {shard.path: shard.bytes, shard.idx_path: shard.num_docs * OFFSET_DTYPE.itemsize}
        for rel, want in expected.items():
            got = sizes.get(rel)
            if got is None:
                raise shard_error(manifest.layout.uri(rel), "listed in the manifest but absent")
            if got != want:
                raise shard_error(
                    manifest.layout.uri(rel),
                    f"{got} bytes, the manifest expects {want} (truncated or replaced)",
                )


def _file_sizes(root: str) -> dict[str, int]:
    """Relative path -> size of every file under `root` (one listing on S3)."""
    fs, path = storage.filesystem(root)
    found = fs.find(path, detail=True)
    prefix = path.rstrip("/") + "/"
    return {
        name[len(prefix) :]: int(info["size"])
        for name, info in found.items()
        if name.startswith(prefix)
    }
