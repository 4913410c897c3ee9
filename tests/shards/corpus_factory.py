"""Small real corpora for tokenizer, shard and loader tests: the stdlib's pydoc topics.

`pydoc_data.topics.topics` is real English documentation text shipped with Python; split into
paragraphs it gives a few thousand documents of varied length, enough to train a small BPE and
fill several shards in well under a second.
"""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from smelt import storage
from smelt.corpus.config import CorpusConfig
from smelt.corpus.layout import CorpusLayout
from smelt.storage.stage import fingerprint

SPECIAL_DOCS = [
    (
        "special-pii",
        "Write to <EMAIL> or call <PHONE>; card <CREDIT_CARD>, IBAN <IBAN>, "
        "host <IP_ADDRESS>, SSN <US_SSN>, signed <PERSON>.",
    ),
    ("special-eos", "A literal <|endoftext|> inside a document stays text."),
    ("special-digits", "Version 3.11.4 shipped in 2023 with 12345 fixes."),
    ("special-empty", ""),
    ("special-blank", "   \n  "),
    ("special-unicode", "Ünïcödé — “quotes”, emoji 🐍 and CJK 文字."),
]


def documents(limit: int | None = None) -> list[tuple[str, str]]:
    """(id, text) pairs: every paragraph of every pydoc topic, in a fixed order."""
    from pydoc_data.topics import topics

    docs = list(SPECIAL_DOCS)
    for key in sorted(topics):
        for n, para in enumerate(p for p in topics[key].split("\n\n") if p.strip()):
            docs.append((f"{key}:{n}", para))
    return docs[:limit] if limit else docs


def stdlib_sources(max_bytes: int) -> list[tuple[str, str]]:
    """(id, text) of the standard library's own modules, up to `max_bytes`: more real text."""
    import glob
    import sysconfig

    lib = sysconfig.get_paths()["stdlib"]
    docs, total = [], 0
    for path in sorted(glob.glob(os.path.join(lib, "**", "*.py"), recursive=True)):
        if total >= max_bytes or "site-packages" in path or "/test" in path:
            continue
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        docs.append((os.path.relpath(path, lib), text))
        total += len(text)
    return docs


def write_corpus(
    root: str,
    parts: int = 3,
    limit: int | None = None,
    with_stats: bool = True,
    docs: list[tuple[str, str]] | None = None,
    with_config: bool = True,
    placeholders: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """A finished corpus at `root` (local path or s3://) in `parts` partitions; returns docs.

    Like `smelt corpus build`, it records its fingerprint and config in `config.json` (unless
    `with_config` is false: a corpus from elsewhere), with `placeholders` as its PII ones.
    """
    docs = docs if docs is not None else documents(limit)
    per_part = -(-len(docs) // parts)
    for p in range(parts):
        chunk = docs[p * per_part : (p + 1) * per_part]
        table = pa.table(
            {
                "id": [d for d, _ in chunk],
                "text": [t for _, t in chunk],
                "source": ["pydoc_data.topics"] * len(chunk),
                "url": [None] * len(chunk),
            }
        )
        uri = CorpusLayout.at(root).data(p)
        with storage.atomic_local_path(uri, suffix=".parquet") as tmp:
            pq.write_table(table, tmp)
    layout = CorpusLayout.at(root)
    if with_config:
        config = CorpusConfig().to_dict()
        if placeholders is not None:
            config["pii"]["placeholders"] = placeholders
        record = {"fingerprint": fingerprint("test-corpus", docs, parts, config), "config": config}
        storage.write_text(layout.config, json.dumps(record))
    if with_stats:
        stats = {
            "input_docs": len(docs),
            "kept": len(docs),
            "quarantined": 0,
            "filtered": {},
            "duplicates": {"exact": 0, "near": 0},
            "pii": {},
        }
        storage.write_text(layout.stats, json.dumps(stats))
    return docs


def nonempty(docs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(i, t) for i, t in docs if t.strip()]


def tree_bytes(root: str) -> dict[str, bytes]:
    """Relative path -> content of every file under a local directory (for equality checks)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out
