"""Conversations of each form become training rows whose loss falls exactly on the assistant's
tokens: checked token by token against the source records, independently of how the masks are
computed; conversations too long are cut at a turn or dropped, and every drop is counted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smelt.chat import CHAT_TEMPLATE
from smelt.errors import InputError
from smelt.prep.conversation_build import build_conversation_shards, plan_conversations
from smelt.prep.conversation_shards import ConversationLayout, open_conversation_shards
from smelt.prep.shard_check import verify_shards
from smelt.training.conversations import ConversationLoader, eval_batches
from tests.sft.sft_data import alpaca, expected_assistant_turns, sharegpt

OPENAI = [
    {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "Seven."},
            {"role": "user", "content": "Another one, with ünïcödé: ≥ 🐍?"},
            {"role": "assistant", "content": "Eleven — and 13 too 🐍."},
        ]
    },
    {
        "messages": [
            {"role": "developer", "content": "Reply in one word."},
            {"role": "user", "content": "Colour of grass?"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "Say it."},
            {"role": "assistant", "content": [{"type": "text", "text": "Green."}]},
            {"role": "user", "content": "A question left unanswered."},
        ]
    },
]
SHAREGPT = [
    sharegpt(
        [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": "Hi! How can I help?"},
        ]
    ),
    sharegpt(
        [
            {"role": "user", "content": "2 + 2 = ?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "and 3 * 3"},
            {"role": "assistant", "content": "9, since 3 * 3 = 9."},
        ]
    ),
]
ALPACA = [
    alpaca("Translate to French.", "Bonjour le monde.", context="Hello world."),
    alpaca("List three colours.", "Red, green and blue."),
]


def _write_forms(folder: Path) -> dict[str, tuple[Path, list[dict]]]:
    folder.mkdir(parents=True, exist_ok=True)
    openai = folder / "openai.jsonl"
    openai.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in OPENAI))
    share = folder / "sharegpt.parquet"
    pq.write_table(pa.Table.from_pylist(SHAREGPT), share)
    alp = folder / "alpaca.json"
    alp.write_text(json.dumps(ALPACA))
    return {"openai": (openai, OPENAI), "sharegpt": (share, SHAREGPT), "alpaca": (alp, ALPACA)}


def _build(files, tokenizer_path, output, seq_len=256, **settings):
    plan = plan_conversations(
        [str(f) for f in files],
        str(tokenizer_path),
        str(output),
        seq_len=seq_len,
        template=CHAT_TEMPLATE,
        val_fraction=settings.pop("val_fraction", 0.0),
        **settings,
    )
    return build_conversation_shards(plan)


def _segments(batch, pad_id: int = 3):  # <pad> of smelt's tokenizer
    """(inputs, targets) of every conversation in a batch, row by row; the padding (a document
    of pad tokens after the last conversation) left out."""
    for row in range(batch.inputs.shape[0]):
        docs = batch.doc_ids[row].numpy()
        for doc in range(int(docs.max()) + 1):
            where = np.flatnonzero(docs == doc)
            inputs = batch.inputs[row, where].numpy()
            if not (inputs == pad_id).all():
                yield inputs, batch.targets[row, where].numpy()


def _loss_runs(inputs: np.ndarray, targets: np.ndarray) -> list[list[int]]:
    """The targets carrying loss, as runs of consecutive positions; each target is the next
    input token (position t predicts token t + 1 of the same conversation)."""
    positions = np.flatnonzero(targets != -100)
    assert all(targets[t] == inputs[t + 1] for t in positions)
    runs: list[list[int]] = []
    for t in positions:
        if runs and runs[-1][-1] == t - 1:
            runs[-1].append(int(t))
        else:
            runs.append([int(t)])
    return [[int(targets[t]) for t in run] for run in runs]


@pytest.mark.parametrize("form", ["openai", "sharegpt", "alpaca"])
def test_exactly_the_assistant_tokens_carry_loss(form, base_tokenizer, base_run, tmp_path):
    path, records = _write_forms(tmp_path / "data")[form]
    build = _build([path], base_run / "tokenizer.json", tmp_path / "sft_data")
    assert build.record["kept"] == {"train": len(records), "val": 0}
    assert build.record["inputs"][0]["form"] == form  # detected from the file
    batches = list(eval_batches(str(tmp_path / "sft_data"), "train", batch_size=2, seq_len=256))
    segments = [s for b in batches for s in _segments(b)]
    assert len(segments) == len(records)
    im_end = base_tokenizer.token_to_id("<|im_end|>")
    for (inputs, targets), record in zip(segments, records, strict=True):
        text = base_tokenizer.decode(inputs.tolist(), skip_special_tokens=False)
        assert text.startswith("<|im_start|>") and text.endswith("<|im_end|>\n")
        runs = _loss_runs(inputs, targets)
        answers = expected_assistant_turns(record)
        answers = ["".join(p["text"] for p in a) if isinstance(a, list) else a for a in answers]
        assert len(runs) == len(answers), text
        for run, answer in zip(runs, answers, strict=True):
            assert run[-1] == im_end  # each answer's loss ends on its end-of-turn token
            assert base_tokenizer.decode(run, skip_special_tokens=False) == answer + "<|im_end|>"
        # everything else (system, user, role headers, the newline after <|im_end|>) has none
        assert sum(len(r) for r in runs) == int((targets != -100).sum())


def test_files_of_three_forms_in_one_set_with_weights_on_the_end_of_turn(
    base_tokenizer, base_run, tmp_path
):
    forms = _write_forms(tmp_path / "data")
    files = [path for path, _ in forms.values()]
    build = _build(files, base_run / "tokenizer.json", tmp_path / "sft_data")
    record = build.record
    detected = {Path(i["uri"]).name: i["form"] for i in record["inputs"]}
    assert detected == {
        "openai.jsonl": "openai",
        "sharegpt.parquet": "sharegpt",
        "alpaca.json": "alpaca",
    }
    assert record["records"] == 6 and record["kept"]["train"] == 6 and record["dropped"] == {}
    assert verify_shards(str(tmp_path / "sft_data")).docs == 6  # an ordinary shard set too
    loader = ConversationLoader(
        str(tmp_path / "sft_data"), batch_size=2, seq_len=256, seed=0, end_of_turn_weight=3.0
    )
    batch = loader.next_batch()
    im_end = base_tokenizer.token_to_id("<|im_end|>")
    boosted = batch.targets == im_end
    assert boosted.any()
    assert (batch.weights[boosted] == 3.0).all() and (batch.weights[~boosted] == 1.0).all()
    loader.close()


def test_long_conversations_are_cut_at_a_turn_or_dropped_and_counted(base_run, tmp_path):
    long_answer = "word " * 60
    records = [
        {
            "messages": [
                {"role": "user", "content": "short?"},
                {"role": "assistant", "content": "Yes."},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "first?"},
                {"role": "assistant", "content": "First answer."},
                {"role": "user", "content": "second?"},
                {"role": "assistant", "content": long_answer},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": long_answer},
            ]
        },
        {"messages": [{"role": "user", "content": "nobody answers"}]},
        {"prompt": "not a conversation"},
    ]
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records) + "{not json\n")
    tokenizer = base_run / "tokenizer.json"
    truncated = _build([data], tokenizer, tmp_path / "cut", seq_len=48, long="truncate").record
    assert truncated["kept"]["train"] == 2 and truncated["truncated"] == 1
    assert truncated["dropped"] == {
        "too_long": 1,
        "no_assistant_turn": 1,
        "malformed": 1,
        "invalid_json": 1,
    }
    assert truncated["records"] == sum(truncated["kept"].values()) + sum(
        truncated["dropped"].values()
    )
    assert any("line 6" in e for e in truncated["examples"]["invalid_json"])
    [batch] = eval_batches(str(tmp_path / "cut"), "train", batch_size=2, seq_len=48)
    segments = list(_segments(batch))
    from tokenizers import Tokenizer

    decode = Tokenizer.from_file(str(tokenizer)).decode
    cut = [decode(i.tolist(), skip_special_tokens=False) for i, _ in segments]
    assert any(t.endswith("First answer.<|im_end|>\n") and "second?" not in t for t in cut)
    dropped = _build([data], tokenizer, tmp_path / "drop", seq_len=48, long="drop").record
    assert dropped["kept"]["train"] == 1 and dropped["truncated"] == 0
    assert dropped["dropped"]["too_long"] == 2


def test_a_rerun_is_skipped_and_other_settings_rebuild(base_run, fact_files, tmp_path):
    tokenizer = base_run / "tokenizer.json"
    first = _build(fact_files, tokenizer, tmp_path / "set")
    again = _build(fact_files, tokenizer, tmp_path / "set")
    assert not first.skipped and again.skipped
    assert again.record["fingerprint"] == first.record["fingerprint"]
    other = _build(fact_files, tokenizer, tmp_path / "set", seq_len=200)
    assert not other.skipped and other.record["seq_len"] == 200
    assert open_conversation_shards(str(tmp_path / "set")).seq_len == 200
    with pytest.raises(InputError, match="no training conversation"):
        _build([fact_files[2]], tokenizer, tmp_path / "none", seq_len=8)
    assert not ConversationLayout(str(tmp_path / "none")).marker().done()


def test_a_damaged_mask_is_refused_naming_it(base_run, fact_files, tmp_path):
    from smelt.errors import IntegrityError

    _build(fact_files, base_run / "tokenizer.json", tmp_path / "set")
    mask = tmp_path / "set" / "train" / "shard_00000.mask"
    data = bytearray(mask.read_bytes())
    data[5] ^= 1
    mask.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"shard_00000\.mask.*SHA-256"):
        ConversationLoader(str(tmp_path / "set"), batch_size=2, seq_len=256)
