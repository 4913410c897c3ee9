"""Tokenizing conversations once: files of conversations -> conversation shards.

Every record is read in its file's form (`conversation_records`), rendered and encoded with the
tokenizer's chat template (`smelt.chat.ChatTemplate`: the ids `apply_chat_template` gives, and
which of them the assistant wrote), fitted to the training sequence length, routed to train or
val by a stable hash of its messages, and appended to that split's shards with its loss mask.

A conversation longer than `seq_len` tokens is cut after the last assistant turn that still fits
(`long="truncate"`: whole turns only, the system prompt and the first question stay) or dropped
(`long="drop"`). Nothing disappears silently: the record counts every conversation read as kept
(train or val) or dropped, by reason (`invalid_json`, `malformed`, `no_assistant_turn`,
`too_long`), with a few examples of each, so `records == kept + dropped`.

The build is one resumable stage (`smelt.storage.stage`): its record is the marker, written last
with the fingerprint of the inputs (each file's identity, the tokenizer, the template and the
settings). A rerun with the same inputs does nothing; other inputs rebuild it whole.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from smelt import storage
from smelt.chat import FORMS, ChatTemplate, EncodedConversation, Message
from smelt.corpus.partition import InputFile
from smelt.errors import ConfigError, InputError, SmeltError
from smelt.prep.conversation_records import (
    AUTO,
    BadRecord,
    list_data_files,
    read_conversations,
)
from smelt.prep.conversation_shards import (
    DEFAULT_SHARD_TOKENS,
    FORMAT,
    ConversationLayout,
    ShardWriter,
    open_conversation_shards,
    write_record,
)
from smelt.prep.corpus_input import id_fraction
from smelt.prep.defaults import CONVERSATION_VAL_FRACTION, LONG_POLICIES  # noqa: F401 - re-exported
from smelt.prep.shard_format import SPLITS, Manifest
from smelt.prep.specials import EOS, PAD
from smelt.storage.stage import fingerprint

log = logging.getLogger(__name__)

DEFAULT_VAL_FRACTION = CONVERSATION_VAL_FRACTION
EXAMPLES_PER_REASON = 3


@dataclass(frozen=True)
class ConversationPlan:
    """The checked inputs and settings of one build; small and picklable."""

    files: tuple[InputFile, ...]
    tokenizer: bytes  # the tokenizer.json file
    template: str
    output_uri: str
    form: str
    seq_len: int
    long: str
    val_fraction: float
    shard_tokens: int

    @property
    def tokenizer_sha256(self) -> str:
        return storage.sha256_bytes(self.tokenizer)

    @property
    def fingerprint(self) -> str:
        """Everything the shards depend on: files (by identity), tokenizer, template, settings."""
        return fingerprint(
            FORMAT,
            [asdict(f) for f in self.files],
            self.tokenizer_sha256,
            storage.sha256_bytes(self.template.encode("utf-8")),
            self.settings,
        )

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "seq_len": self.seq_len,
            "long": self.long,
            "val_fraction": self.val_fraction,
            "shard_tokens": self.shard_tokens,
        }


@dataclass(frozen=True)
class ConversationBuild:
    """A finished build: its record, and whether this call built it or found it current."""

    record: dict[str, Any]
    skipped: bool


def plan_conversations(
    data: list[str],
    tokenizer_uri: str,
    output_uri: str,
    *,
    seq_len: int,
    form: str = AUTO,
    long: str = "truncate",
    val_fraction: float = DEFAULT_VAL_FRACTION,
    template: str,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
) -> ConversationPlan:
    """Check the settings and list the inputs (errors before any work)."""
    if form not in (AUTO, *FORMS):
        raise ConfigError(f"conversation form {form!r} is not one of {AUTO}, {', '.join(FORMS)}")
    if long not in LONG_POLICIES:
        raise ConfigError(f"--long {long!r} is not one of {', '.join(LONG_POLICIES)}")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction {val_fraction} must be in [0, 1)")
    if seq_len < 2 or shard_tokens < seq_len + 1:
        raise ConfigError(f"seq_len {seq_len} (and shard_tokens {shard_tokens}) is too small")
    return ConversationPlan(
        files=tuple(list_data_files(data)),
        tokenizer=storage.read_bytes(tokenizer_uri),
        template=template,
        output_uri=storage.normalize(output_uri),
        form=form,
        seq_len=seq_len,
        long=long,
        val_fraction=val_fraction,
        shard_tokens=shard_tokens,
    )


def recorded_fingerprint(uri: str) -> str | None:
    """The fingerprint of the inputs the conversation shards at `uri` were built from."""
    record = ConversationLayout.at(uri).marker().read()
    return None if record is None else record.get("fingerprint")


def is_current(plan: ConversationPlan) -> bool:
    """Whether the set at the plan's output is finished, whole and built from these inputs."""
    layout = ConversationLayout(plan.output_uri)
    if not layout.marker(plan.fingerprint).done():
        return False
    try:
        open_conversation_shards(layout.root)
    except SmeltError as exc:
        log.warning("conversation shards at %s are not usable (%s): rebuilding", layout.root, exc)
        return False
    return True


def build_conversation_shards(plan: ConversationPlan) -> ConversationBuild:
    """Tokenize the plan's conversations into shards at its output, unless they are current."""
    layout = ConversationLayout(plan.output_uri)
    if is_current(plan):
        log.info("conversation shards at %s are current", layout.root)
        return ConversationBuild(layout.marker().read() or {}, skipped=True)
    layout.marker().clear()  # first: the set is about to change
    storage.delete(layout.manifest)
    for split in SPLITS:
        storage.delete(layout.split_dir(split), recursive=True)
    record = _build(plan, layout)
    return ConversationBuild(record, skipped=False)


def _build(plan: ConversationPlan, layout: ConversationLayout) -> dict[str, Any]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(plan.tokenizer.decode("utf-8"))
    template = ChatTemplate(tokenizer, plan.template)
    eos_id = tokenizer.token_to_id(EOS)
    if eos_id is None:
        raise ConfigError(
            f"the tokenizer has no {EOS} token; train it with `smelt tokenizer train`"
        )
    pad_id = tokenizer.token_to_id(PAD)
    tally = _Tally()
    writers = {s: ShardWriter(layout.root, s, eos_id, plan.shard_tokens) for s in SPLITS}
    try:
        for file in plan.files:
            _add_file(plan, file, template, writers, tally)
        finished = {split: writer.finish() for split, writer in writers.items()}
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    tally.require_training_data(plan)
    shards = [entry for split in SPLITS for entry in finished[split][0]]
    masks = {path: entry for split in SPLITS for path, entry in finished[split][1].items()}
    manifest = Manifest(
        tokenizer.get_vocab_size(with_added_tokens=True),
        eos_id,
        plan.tokenizer_sha256,
        tuple(shards),
        root=layout.root,
    )
    storage.write_bytes(layout.tokenizer, plan.tokenizer)
    storage.write_text(layout.manifest, manifest.to_json())
    record = {
        **tally.summary(),
        "seq_len": plan.seq_len,
        "eos_id": eos_id,
        "pad_id": eos_id if pad_id is None else pad_id,
        "end_of_turn_id": template.end_of_turn_id,
        "tokenizer_sha256": plan.tokenizer_sha256,
        "template_sha256": storage.sha256_bytes(plan.template.encode("utf-8")),
        "settings": plan.settings,
        "masks": masks,
    }
    return write_record(layout, plan.fingerprint, record)


def _add_file(
    plan: ConversationPlan,
    file: InputFile,
    template: ChatTemplate,
    writers: dict[str, ShardWriter],
    tally: _Tally,
) -> None:
    entry = {"uri": file.uri, "form": None, "records": 0, "kept": 0}
    tally.inputs.append(entry)
    for item in read_conversations(file.uri, plan.form):
        entry["records"] += 1
        tally.records += 1
        if isinstance(item, BadRecord):
            tally.drop(item.reason, f"{item.label}: {item.detail}")
            continue
        entry["form"] = item.form
        encoded, outcome = fit(template, item.messages, plan.seq_len, plan.long)
        if encoded is None:
            tally.drop(outcome, item.label)
            continue
        key = json.dumps([[m.role, m.content] for m in item.messages], ensure_ascii=False)
        split = "val" if id_fraction(key) < plan.val_fraction else "train"
        ids = np.asarray(encoded.ids, dtype=np.uint32)
        mask = np.asarray(encoded.assistant_mask, dtype=bool)
        writers[split].add(ids, mask)
        tally.keep(split, len(ids), int(np.count_nonzero(mask)), outcome == "truncated")
        entry["kept"] += 1


def fit(
    template: ChatTemplate, messages: list[Message], seq_len: int, long: str
) -> tuple[EncodedConversation | None, str]:
    """The encoded conversation (whole, or cut after an assistant turn) and what happened:
    `kept`, `truncated`, or the drop reason (`no_assistant_turn`, `too_long`)."""
    turns = [i for i, m in enumerate(messages) if m.role == "assistant"]
    if not turns:
        return None, "no_assistant_turn"
    encoded = template.encode_conversation(messages)
    if len(encoded.ids) <= seq_len:
        return encoded, "kept"
    if long == "drop":
        return None, "too_long"
    # the longest prefix ending with an assistant turn that fits: token counts grow with the
    # prefix, so a binary search over the assistant turns encodes O(log turns) prefixes
    best, lo, hi = None, 0, len(turns) - 1
    while lo <= hi:
        middle = (lo + hi) // 2
        candidate = template.encode_conversation(messages[: turns[middle] + 1])
        if len(candidate.ids) <= seq_len:
            best, lo = candidate, middle + 1
        else:
            hi = middle - 1
    return (best, "truncated") if best is not None else (None, "too_long")


class _Tally:
    """Counts of a build: what was read, kept per split, dropped per reason (with examples)."""

    def __init__(self) -> None:
        self.records = 0
        self.truncated = 0
        self.kept = dict.fromkeys(SPLITS, 0)
        self.tokens = dict.fromkeys(SPLITS, 0)
        self.loss_tokens = dict.fromkeys(SPLITS, 0)
        self.dropped: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self.inputs: list[dict[str, Any]] = []

    def keep(self, split: str, tokens: int, loss_tokens: int, truncated: bool) -> None:
        self.kept[split] += 1
        self.tokens[split] += tokens
        self.loss_tokens[split] += loss_tokens
        self.truncated += int(truncated)

    def drop(self, reason: str, example: str) -> None:
        self.dropped[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append(example[:300])

    def require_training_data(self, plan: ConversationPlan) -> None:
        if self.kept["train"]:
            return
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.dropped.items())) or "none dropped"
        raise InputError(
            f"no training conversation among the {self.records} records of "
            f"{', '.join(f.uri for f in plan.files)} ({self.kept['val']} went to val; dropped: "
            f"{reasons}); give more data, a larger --seq-len, or a lower --val-fraction"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "kept": self.kept,
            "truncated": self.truncated,
            "dropped": dict(self.dropped),
            "examples": self.examples,
            "tokens": self.tokens,
            "loss_tokens": self.loss_tokens,
            "inputs": self.inputs,
        }
