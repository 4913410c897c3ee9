"""Task files built from real text (Python's documentation topics), in every layout smelt reads.

Each item takes a real sentence: its opening is the context and its true continuation competes
with the continuations of other sentences, so a trained model has something to get right and
the items differ in length (which exercises batching, padding and acc_norm). Rows follow the
published layouts field for field, including the quirks the prompt code must handle: WikiHow
`[title]`/`[step]` artifacts in HellaSwag, numeric answer keys and 3 or 5 choices in ARC, a
context with trailing whitespace and an empty context in the generic layout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

WORDS_PER_SENTENCE = 14


def sentences(count: int) -> list[list[str]]:
    """`count` sentences of at least WORDS_PER_SENTENCE plain words, in a fixed order."""
    from pydoc_data.topics import topics

    found: list[list[str]] = []
    for key in sorted(topics):
        for sentence in re.split(r"(?<=[.!?])\s+", topics[key]):
            words = sentence.split()
            if len(words) >= WORDS_PER_SENTENCE and all(w.isascii() for w in words):
                found.append(words[:WORDS_PER_SENTENCE])
                if len(found) == count:
                    return found
    raise AssertionError("not enough sentences in pydoc_data.topics")


def _choices(
    pool: list[list[str]], i: int, count: int, start: int, stop: int
) -> tuple[list[str], int]:
    """The true continuation of sentence i among `count` others; gold position rotates."""
    options = [" ".join(pool[(i + k) % len(pool)][start:stop]) for k in range(count)]
    gold = i % count
    options[0], options[gold] = options[gold], options[0]
    return options, gold


def generic_rows(pool: list[list[str]], n: int) -> list[dict]:
    rows = []
    for i in range(n):
        choices, gold = _choices(pool, i, 3 + i % 2, 7, 12)
        context = " ".join(pool[i][:7])
        if i == 0:
            context = ""  # scored after the prefix token, as the harness does
        elif i == 1:
            context += "  "  # trailing whitespace moves into the continuation
        rows.append({"context": context, "choices": choices, "label": gold})
    return rows


def hellaswag_rows(pool: list[list[str]], n: int) -> list[dict]:
    rows = []
    for i in range(n):
        words = pool[i]
        endings, gold = _choices(pool, i, 4, 9, 14)
        if i % 5 == 0:
            endings[(gold + 1) % 4] = "[title] " + endings[(gold + 1) % 4] + " [step]"
        rows.append(
            {
                "ind": i,
                "activity_label": words[0].strip(".,:;").capitalize(),
                "ctx_a": " ".join(words[1:6]),
                "ctx_b": " ".join(words[6:9]).lower(),
                "ctx": " ".join(words[1:9]),
                "endings": endings,
                "source_id": f"pydoc-{i}",
                "split": "val",
                "split_type": "indomain",
                "label": str(gold),
            }
        )
    return rows


def arc_rows(pool: list[list[str]], n: int) -> list[dict]:
    rows = []
    for i in range(n):
        count = (3, 4, 5)[i % 3]
        texts, gold = _choices(pool, i, count, 8, 13)
        labels = [str(k + 1) for k in range(count)] if i % 4 == 0 else list("ABCDE"[:count])
        rows.append(
            {
                "id": f"pydoc/{i}",
                "question": " ".join(pool[i][:8]) + "?",
                "choices": {"text": texts, "label": labels},
                "answerKey": labels[gold],
            }
        )
    return rows


def piqa_rows(pool: list[list[str]], n: int) -> list[dict]:
    rows = []
    for i in range(n):
        (sol1, sol2), gold = _choices(pool, i, 2, 6, 14)
        rows.append({"goal": " ".join(pool[i][:6]), "sol1": sol1, "sol2": sol2, "label": gold})
    return rows


def winogrande_rows(pool: list[list[str]], n: int) -> list[dict]:
    rows = []
    for i in range(n):
        words = pool[i]
        other = pool[(i + 1) % len(pool)][6]
        options = [words[6], other] if i % 2 == 0 else [other, words[6]]
        rows.append(
            {
                "sentence": " ".join(words[:6] + ["_"] + words[7:]),
                "option1": options[0],
                "option2": options[1],
                "answer": "1" if i % 2 == 0 else "2",
            }
        )
    return rows


def boolq_rows(pool: list[list[str]], n: int) -> list[dict]:
    return [
        {
            "question": " ".join(pool[(i + 1) % len(pool)][:7]).lower(),
            "passage": " ".join(pool[i]),
            "idx": i,
            "label": i % 2,
        }
        for i in range(n)
    ]


def lambada_rows(pool: list[list[str]], n: int) -> list[dict]:
    return [{"text": " ".join(pool[i])} for i in range(n)]


def text_rows(pool: list[list[str]], n: int) -> list[dict]:
    """Documents of several sentences: some longer than a short model's window."""
    return [{"text": " ".join(" ".join(s) for s in pool[i : i + 1 + i % 7])} for i in range(n)]


BUILDERS = {
    "generic_mc": generic_rows,
    "hellaswag": hellaswag_rows,
    "arc_easy": arc_rows,
    "arc_challenge": arc_rows,
    "piqa": piqa_rows,
    "winogrande": winogrande_rows,
    "boolq": boolq_rows,
    "lambada": lambada_rows,
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_task_files(folder: Path, items: int = 24) -> tuple[dict[str, Path], dict[str, Path]]:
    """Every layout as a task file (ARC-Easy as Parquet, the rest JSONL) and one text file."""
    folder.mkdir(parents=True, exist_ok=True)
    pool = sentences(items + 8)
    tasks = {}
    for name, build in BUILDERS.items():
        rows = build(pool[4:] if name == "arc_challenge" else pool, items)
        if name == "arc_easy":
            tasks[name] = write_parquet(folder / f"{name}.parquet", rows)
        else:
            tasks[name] = write_jsonl(folder / f"{name}.jsonl", rows)
    texts = {"pydoc": write_jsonl(folder / "pydoc_text.jsonl", text_rows(pool, 12))}
    return tasks, texts
