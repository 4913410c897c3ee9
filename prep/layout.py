"""Where the data preparation stages put things: every file name of a tokenizer and a shard set.

    TOKENIZER/tokenizer.json               the Hugging Face tokenizer (ARCHITECTURE.md, "Tokenizer")
    TOKENIZER/tokenizer_config.json        transformers' config: specials, ChatML template
    TOKENIZER/special_tokens_map.json      transformers' special token names
    TOKENIZER/chat_template.jinja          the ChatML template on its own
    TOKENIZER/report.json                  the training report; written last, it is the marker

    SHARDS/{train,val}/shard_NNNNN.bin     uint32 token ids (ARCHITECTURE.md, "Shards")
    SHARDS/{train,val}/shard_NNNNN.idx     uint64 document end offsets
    SHARDS/build_report.json               counts and the build's fingerprint
    SHARDS/manifest.json                   written last: no manifest, no dataset
    SHARDS/_work/parts/part-NNNNN.*        tokenized partitions (.{split}.bin/.idx, .done)
    SHARDS/_work/shards/{split}_NNNNN.done one marker per packed shard

Nothing else in smelt spells these names: code asks a layout (`ShardsLayout.at(uri).manifest`).
"""

from __future__ import annotations

from dataclasses import dataclass

from smelt.chat.template import TEMPLATE_FILE
from smelt.corpus.layout import part_name
from smelt.storage import basename, join, normalize, parent


@dataclass(frozen=True)
class TokenizerLayout:
    """All URIs of one trained tokenizer, derived from its directory."""

    root: str

    TOKENIZER = "tokenizer.json"
    REPORT = "report.json"
    CONFIG = "tokenizer_config.json"
    SPECIAL_TOKENS_MAP = "special_tokens_map.json"
    CHAT_TEMPLATE = TEMPLATE_FILE

    @classmethod
    def at(cls, uri: str) -> TokenizerLayout:
        """The layout of the tokenizer at `uri`: its directory, or its tokenizer.json."""
        uri = normalize(uri)
        return cls(parent(uri) if uri.endswith(".json") else uri)

    @staticmethod
    def file_uri(uri: str) -> str:
        """`uri` itself when it names a .json file, else `uri/tokenizer.json`."""
        return uri if uri.endswith(".json") else join(uri, TokenizerLayout.TOKENIZER)

    @property
    def tokenizer(self) -> str:
        return join(self.root, self.TOKENIZER)

    @property
    def report(self) -> str:
        return join(self.root, self.REPORT)

    @property
    def config(self) -> str:
        return join(self.root, self.CONFIG)

    @property
    def special_tokens_map(self) -> str:
        return join(self.root, self.SPECIAL_TOKENS_MAP)

    @property
    def chat_template(self) -> str:
        return join(self.root, self.CHAT_TEMPLATE)


@dataclass(frozen=True)
class ShardsLayout:
    """All URIs of one shard set, derived from its root."""

    root: str

    MANIFEST = "manifest.json"
    BUILD_REPORT = "build_report.json"
    SPLITS = ("train", "val")
    TOKENS, OFFSETS = ".bin", ".idx"  # a shard's token ids, its documents' end offsets
    MARKER = ".done"

    @classmethod
    def at(cls, uri: str) -> ShardsLayout:
        """The layout of the shard set at `uri`: its root, or its manifest.json."""
        uri = normalize(uri)
        return cls(parent(uri) if basename(uri) == cls.MANIFEST else uri)

    # -- published shard set -----------------------------------------------------------------
    @property
    def manifest(self) -> str:
        return join(self.root, self.MANIFEST)

    @property
    def build_report(self) -> str:
        return join(self.root, self.BUILD_REPORT)

    def split_dir(self, split: str) -> str:
        return join(self.root, split)

    @staticmethod
    def shard_path(split: str, number: int) -> str:
        """Path of shard `number` of `split` relative to the root: `train/shard_00000.bin`."""
        return f"{split}/shard_{number:05d}{ShardsLayout.TOKENS}"

    @staticmethod
    def is_shard_path(path: str) -> bool:
        """Whether `path` names a shard's token file (a `.bin`)."""
        return path.endswith(ShardsLayout.TOKENS)

    @staticmethod
    def idx_path(shard_path: str) -> str:
        """The `.idx` beside a `.bin` (same stem), relative or absolute."""
        return shard_path[: -len(ShardsLayout.TOKENS)] + ShardsLayout.OFFSETS

    def uri(self, relative_path: str) -> str:
        """The URI of a path relative to the root (as the manifest lists shards)."""
        return join(self.root, relative_path)

    # -- working state (resume) --------------------------------------------------------------
    @property
    def work_dir(self) -> str:
        return join(self.root, "_work")

    @property
    def parts_dir(self) -> str:
        """Tokenized partitions and their markers."""
        return join(self.work_dir, "parts")

    @property
    def shard_markers_dir(self) -> str:
        """One marker per packed shard."""
        return join(self.work_dir, "shards")

    def part_tokens(self, index: int, split: str) -> str:
        """Token ids of partition `index` in one split: `_work/parts/part-NNNNN.{split}.bin`."""
        return join(self.parts_dir, f"{part_name(index)}.{split}{self.TOKENS}")

    def part_offsets(self, index: int, split: str) -> str:
        """Document end offsets of the same: `_work/parts/part-NNNNN.{split}.idx`."""
        return join(self.parts_dir, f"{part_name(index)}.{split}{self.OFFSETS}")

    def part_marker(self, index: int) -> str:
        return join(self.parts_dir, f"{part_name(index)}{self.MARKER}")

    def shard_marker(self, split: str, number: int) -> str:
        return join(self.shard_markers_dir, f"{split}_{number:05d}{self.MARKER}")
