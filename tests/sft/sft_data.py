"""A tiny base model that knows no facts, and made-up facts as conversation files of each form.

`build_base_run(root)` pretrains the 2 x 64 model (the chat tests' shape) for a few dozen steps on
pydoc paragraphs with smelt's own tokenizer (ChatML tokens and template included): a base run
like any `smelt train` leaves, which has never seen a conversation. `write_fact_files` writes
the made-up facts of `tests.chat.chat_run` as OpenAI `messages` JSONL, ShareGPT `conversations`
Parquet and Alpaca JSON, so fine-tuning reads all three forms at once. Both are idempotent, so
test modules of one session share them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.chat.chat_run import FACTS, conversations

BASE_STEPS = 40
MODEL = dict(d_model=64, n_layers=2, ffn_hidden=128, n_heads=2, n_kv_heads=1, max_seq_len=128)


def build_base_run(root: Path) -> Path:
    """Corpus (pydoc paragraphs) -> tokenizer -> shards -> a base run; returns the run."""
    run = root / "base"
    if (root / ".built").exists():
        return run
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    from smelt.prep.shards import build_shards
    from smelt.prep.tokenizer import train_tokenizer
    from smelt.training.config import TrainConfig
    from smelt.training.loop import train
    from tests.shards.corpus_factory import write_corpus

    write_corpus(str(root / "corpus"), parts=2, limit=800)
    train_tokenizer(str(root / "corpus"), str(root / "tokenizer"), vocab_size=400)
    build_shards(str(root / "corpus"), str(root / "tokenizer"), str(root / "shards"), 0.05)
    config = TrainConfig(
        shards=str(root / "shards"),
        output=str(run),
        tokenizer=str(root / "tokenizer" / "tokenizer.json"),
        model_overrides=dict(MODEL),
        max_steps=BASE_STEPS,
        batch_size=8,
        seq_len=64,
        warmup_steps=5,
        lr=1e-2,
        num_threads=1,
        checkpoint_every=BASE_STEPS,
        eval_every=0,
    )
    train(config)
    (root / ".built").write_text("ok")
    return run


def sharegpt(messages: list[dict[str, str]]) -> dict:
    names = {"system": "system", "user": "human", "assistant": "gpt"}
    return {"conversations": [{"from": names[m["role"]], "value": m["content"]} for m in messages]}


def alpaca(question: str, answer: str, context: str = "") -> dict:
    return {"instruction": question, "input": context, "output": answer}


def write_fact_files(folder: Path) -> list[Path]:
    """The facts' conversations in three files of three forms; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    convs = conversations()
    openai_file = folder / "facts.jsonl"
    openai_file.write_text(
        "".join(json.dumps({"messages": c}) + "\n" for c in convs[: len(convs) // 2])
    )
    sharegpt_file = folder / "facts-sharegpt.parquet"
    pq.write_table(
        pa.Table.from_pylist([sharegpt(c) for c in convs[len(convs) // 2 :]]), sharegpt_file
    )
    alpaca_file = folder / "facts-alpaca.json"
    alpaca_file.write_text(json.dumps([alpaca(q, a) for q, a in FACTS]))
    return [openai_file, sharegpt_file, alpaca_file]


def expected_assistant_turns(record: dict) -> list[str]:
    """The assistant contents a record holds, in order (the oracle of the mask tests)."""
    if "messages" in record:
        return [m["content"] for m in record["messages"] if m["role"] == "assistant"]
    if "conversations" in record:
        return [t["value"] for t in record["conversations"] if t["from"] == "gpt"]
    return [record["output"]]
