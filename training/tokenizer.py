"""Byte-level BPE tokenizer training on a bounded, deterministic sample of a corpus.

The tokenizer is Hugging Face `tokenizers` byte-level BPE (GPT-2 style) with two twists that
small models benefit from: digits are split one by one before BPE (so numbers are never merged
into multi-digit tokens: Llama, DeepSeek), and the control and PII placeholder strings are
atomic special tokens that also match inside corpus text (the corpus stage writes `<EMAIL>`).

The sample is streamed: every partition contributes up to `sample_bytes / partitions` bytes of
documents, read in storage order, so memory stays bounded whatever the corpus size and the same
corpus always gives the same tokenizer. Documents whose id hashes into the held-out fraction are
kept out of the sample and measure bytes per token afterwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import pyarrow.parquet as pq

from smelt import storage
from smelt.chat.template import CHAT_TEMPLATE, TEMPLATE_FILE
from smelt.corpus.config import PiiConfig
from smelt.errors import ConfigError, InputError

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"
PAD = "<pad>"
CONTROL_TOKENS = (
    EOS,
    "<|im_start|>",
    "<|im_end|>",
    PAD,
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
)
DEFAULT_VOCAB_SIZE = 16384
DEFAULT_SAMPLE_BYTES = 256 * 1024 * 1024  # ~25 s of BPE training here; plenty for <= 64k vocab
MAX_VOCAB_SIZE = 2**32  # token ids are stored as uint32
TOKENIZER_FILE = "tokenizer.json"
REPORT_FILE = "report.json"


def special_tokens() -> tuple[str, ...]:
    """All atomic tokens, in id order: control tokens, then the corpus's PII placeholders."""
    placeholders = tuple(dict.fromkeys(PiiConfig().placeholders.values()))
    return CONTROL_TOKENS + tuple(p for p in placeholders if p not in CONTROL_TOKENS)


@dataclass(frozen=True)
class TokenizerReport:
    """What `report.json` records about a trained tokenizer."""

    vocab_size: int
    requested_vocab_size: int
    eos_id: int
    special_tokens: list[str]
    sample_docs: int
    sample_bytes: int
    heldout_docs: int
    heldout_bytes: int
    heldout_tokens: int
    bytes_per_token: float | None
    tokenizer_sha256: str

    def to_markdown(self) -> str:
        bpt = "n/a" if self.bytes_per_token is None else f"{self.bytes_per_token:.3f}"
        return "\n".join(
            [
                "# Tokenizer",
                "",
                "| metric | value |",
                "|---|---|",
                f"| vocabulary | {self.vocab_size:,} (requested {self.requested_vocab_size:,}) |",
                f"| training sample | {self.sample_docs:,} docs, {self.sample_bytes:,} bytes |",
                f"| held-out | {self.heldout_docs:,} docs, {self.heldout_bytes:,} bytes |",
                f"| bytes per token (held-out) | {bpt} |",
                f"| special tokens | {len(self.special_tokens)} |",
                f"| tokenizer.json SHA-256 | `{self.tokenizer_sha256[:16]}…` |",
            ]
        )


# -- corpus access ------------------------------------------------------------------------------


def corpus_partitions(corpus_uri: str) -> list[str]:
    """The data partitions of a finished corpus, in order; a clear error for anything else."""
    root = storage.normalize(corpus_uri)
    storage.require_readable(root)
    if not storage.exists(storage.join(root, "stats.json")):
        raise InputError(
            f"{root} is not a finished corpus: stats.json is missing (it is written "
            "last); run or finish `smelt corpus build --output " + root + "`"
        )
    data_dir = storage.join(root, "data")
    parts = (
        [
            u
            for u in storage.list_files(data_dir, suffixes=[".parquet"])
            if storage.basename(u).startswith("part-")
        ]
        if storage.exists(data_dir)
        else []
    )
    if not parts:
        raise InputError(f"{root}: no data/part-*.parquet partitions; the corpus is empty")
    return parts


def iter_documents(partition_uri: str, batch_rows: int = 1024) -> Iterator[tuple[str, str]]:
    """(id, text) of each row of one partition, streamed by row group."""
    with storage.open_read(partition_uri) as fh:
        parquet = pq.ParquetFile(fh)
        missing = {"id", "text"} - set(parquet.schema_arrow.names)
        if missing:
            raise InputError(f"{partition_uri}: corpus partition lacks column(s) {sorted(missing)}")
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=["id", "text"]):
            yield from zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True)


def id_fraction(doc_id: str) -> float:
    """A stable number in [0, 1) from a document id: the basis of every held-out split."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def _sample(
    parts: list[str],
    sample_bytes: int,
    heldout_fraction: float,
    heldout_max: int,
    heldout: list[str],
    counts: dict[str, int],
) -> Iterator[str]:
    """Texts for training; fills `heldout` (bounded) and `counts` as a side effect."""
    budget = max(1, sample_bytes // len(parts))
    for part in parts:
        taken = 0
        for doc_id, text in iter_documents(part):
            if not text:
                continue
            size = len(text.encode("utf-8"))
            if id_fraction(doc_id) < heldout_fraction:
                if counts["heldout_bytes"] < heldout_max:
                    heldout.append(text)
                    counts["heldout_bytes"] += size
                continue
            counts["docs"] += 1
            counts["bytes"] += size
            taken += size
            yield text
            if taken >= budget:
                break


# -- training -----------------------------------------------------------------------------------


def build_untrained(vocab_size: int):  # noqa: ANN201 - (Tokenizer, BpeTrainer)
    """An empty byte-level BPE tokenizer and the trainer for it."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = [AddedToken(t, special=True, normalized=False) for t in special_tokens()]
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tokenizer, trainer


def check_request(corpus_uri: str, vocab_size: int) -> list[str]:
    """Refuse a bad vocabulary size or an unfinished corpus before any work; the partitions."""
    low = 256 + len(special_tokens())
    if not low <= vocab_size <= MAX_VOCAB_SIZE:
        raise ConfigError(
            f"--vocab-size {vocab_size}: byte-level BPE needs at least {low} and uint32 "
            f"shards at most {MAX_VOCAB_SIZE}"
        )
    return corpus_partitions(corpus_uri)


def train_tokenizer(
    corpus_uri: str,
    output_uri: str,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    sample_bytes: int = DEFAULT_SAMPLE_BYTES,
    heldout_fraction: float = 0.01,
    heldout_max_bytes: int = 4 * 1024 * 1024,
) -> TokenizerReport:
    """Train on a sample of the corpus at `corpus_uri`; write tokenizer files to `output_uri`."""
    parts = check_request(corpus_uri, vocab_size)
    tokenizer, trainer = build_untrained(vocab_size)
    heldout: list[str] = []
    counts = {"docs": 0, "bytes": 0, "heldout_bytes": 0}
    sample = _sample(parts, sample_bytes, heldout_fraction, heldout_max_bytes, heldout, counts)
    tokenizer.train_from_iterator(sample, trainer)
    if counts["docs"] == 0:
        raise InputError(f"{corpus_uri}: no non-empty documents to train a tokenizer on")
    heldout_tokens = sum(len(e.ids) for e in tokenizer.encode_batch(heldout)) if heldout else 0
    report = TokenizerReport(
        vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
        requested_vocab_size=vocab_size,
        eos_id=tokenizer.token_to_id(EOS),
        special_tokens=list(special_tokens()),
        sample_docs=counts["docs"],
        sample_bytes=counts["bytes"],
        heldout_docs=len(heldout),
        heldout_bytes=counts["heldout_bytes"],
        heldout_tokens=heldout_tokens,
        bytes_per_token=counts["heldout_bytes"] / heldout_tokens if heldout_tokens else None,
        tokenizer_sha256=storage.sha256_bytes(tokenizer.to_str().encode("utf-8")),
    )
    save_tokenizer(tokenizer, output_uri, report)
    log.info(
        "tokenizer: %d tokens, %.3f bytes/token held-out",
        report.vocab_size,
        report.bytes_per_token or 0.0,
    )
    return report


def save_tokenizer(tokenizer, output_uri: str, report: TokenizerReport) -> None:  # noqa: ANN001
    """tokenizer.json (+ transformers' config files, chat template) and report.json.

    `tokenizer.json` is the exact string the report's SHA-256 covers; the other files let
    `AutoTokenizer`/`PreTrainedTokenizerFast` find the specials and the ChatML template.
    """
    files = {TOKENIZER_FILE: tokenizer.to_str().encode("utf-8")}
    specials = special_tokens()
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS,
        "pad_token": PAD,
        "bos_token": None,
        "unk_token": None,
        "additional_special_tokens": [t for t in specials if t not in (EOS, PAD)],
        "added_tokens_decoder": {
            str(tokenizer.token_to_id(t)): {
                "content": t,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for t in specials
        },
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1_000_000_000,
    }
    special_map = {
        "eos_token": EOS,
        "pad_token": PAD,
        "additional_special_tokens": config["additional_special_tokens"],
    }
    files["tokenizer_config.json"] = _json_bytes(config)
    files["special_tokens_map.json"] = _json_bytes(special_map)
    files[TEMPLATE_FILE] = CHAT_TEMPLATE.encode("utf-8")
    files[REPORT_FILE] = _json_bytes(asdict(report))
    for name, data in files.items():  # report.json last: it marks a finished tokenizer
        storage.write_bytes(storage.join(output_uri, name), data)


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# -- loading ------------------------------------------------------------------------------------


def tokenizer_file_uri(uri: str) -> str:
    """`uri` itself when it names a .json file, else `uri/tokenizer.json`."""
    return uri if uri.endswith(".json") else storage.join(uri, TOKENIZER_FILE)


def load_tokenizer(uri: str):  # noqa: ANN201 - tokenizers.Tokenizer
    """A trained tokenizer from a directory or tokenizer.json URI, with clear errors."""
    from tokenizers import Tokenizer

    file_uri = tokenizer_file_uri(uri)
    if not storage.exists(file_uri):
        raise InputError(f"tokenizer not found: {file_uri}; run `smelt tokenizer train` first")
    text = storage.read_text(file_uri)
    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as exc:  # noqa: BLE001 - the Rust side raises plain Exception
        raise InputError(f"{file_uri} is not a Hugging Face tokenizer file: {exc}") from None
    check_tokenizer(tokenizer, file_uri)
    return tokenizer


def check_tokenizer(tokenizer, where: str) -> None:  # noqa: ANN001
    """Refuse a tokenizer that uint32 shards cannot hold or that lacks the end-of-text token."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size > MAX_VOCAB_SIZE:
        raise ConfigError(
            f"{where}: vocabulary of {size:,} tokens exceeds uint32 ids "
            f"({MAX_VOCAB_SIZE:,}); train a smaller tokenizer"
        )
    if tokenizer.token_to_id(EOS) is None:
        raise ConfigError(f"{where}: no {EOS} token; train it with `smelt tokenizer train`")
