"""Corpus-build fixtures: a small, varied input set (that passes the quality filters where it
should), and a runner for the real `smelt` CLI in a subprocess."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from smelt import storage

NOUNS = [
    "river",
    "mountain",
    "village",
    "teacher",
    "garden",
    "window",
    "market",
    "harbor",
    "bridge",
    "library",
    "kitchen",
    "forest",
    "engine",
    "signal",
    "letter",
    "doctor",
    "farmer",
    "painter",
    "station",
    "island",
    "valley",
    "shadow",
    "journey",
    "lantern",
    "meadow",
    "orchard",
    "pocket",
    "ribbon",
    "saddle",
    "blanket",
    "candle",
    "compass",
    "desert",
    "feather",
    "glacier",
    "hammer",
    "jacket",
    "kettle",
    "ladder",
    "mirror",
    "needle",
    "ocean",
    "pebble",
    "quarry",
    "rocket",
    "sailor",
    "tunnel",
    "umbrella",
    "wagon",
    "anchor",
    "basket",
    "cabin",
    "dolphin",
    "council",
    "museum",
    "festival",
    "bakery",
    "printer",
    "ferry",
    "chapel",
    "cellar",
]
VERBS = (
    "walked past",
    "carried",
    "opened",
    "noticed",
    "painted",
    "repaired",
    "visited",
    "watched",
    "gathered",
    "followed",
    "built",
    "described",
    "measured",
    "borrowed",
    "cleaned",
    "photographed",
    "explored",
    "sketched",
    "ordered",
    "moved",
)
ADJECTIVES = [
    "quiet",
    "bright",
    "narrow",
    "ancient",
    "gentle",
    "heavy",
    "silver",
    "wooden",
    "careful",
    "patient",
    "sudden",
    "distant",
    "crowded",
    "empty",
    "golden",
    "muddy",
    "polished",
    "rusty",
    "tiny",
    "enormous",
]
TEMPLATES = (
    "The {a} {n} {v} the {n2} near the {n3}.",
    "After lunch, a {a} {n} {v} an old {n2} with the {n3}.",
    "Every {n} in the {a} {n2} {v} a {n3} before winter.",
    "Nobody expected that the {n} would be so {a} when it {v} the {n2}.",
    "In the morning we {v} the {a} {n} and then the {n2} of the {n3}.",
    "She said the {n} was {a}, but the {n2} {v} it anyway.",
)


def sentence(rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(
        a=rng.choice(ADJECTIVES),
        n=rng.choice(NOUNS),
        n2=rng.choice(NOUNS),
        n3=rng.choice(NOUNS),
        v=rng.choice(VERBS),
    )


def prose(rng: random.Random, lines: int = 8) -> str:
    """Varied English-like text that the Gopher, C4 and FineWeb rules keep."""
    return "\n".join(" ".join(sentence(rng) for _ in range(3)) for _ in range(lines))


def html_page(rng: random.Random, title: str) -> str:
    paragraphs = "".join(f"<p>{' '.join(sentence(rng) for _ in range(3))}</p>" for _ in range(6))
    return (
        f"<html><head><title>{title}</title></head><body><nav>Home | About</nav>"
        f"<article><h1>{title}</h1>{paragraphs}</article><footer>(c) site</footer>"
        "</body></html>"
    )


def write_inputs(root: str, files: int = 12, seed: int = 7) -> dict[str, int]:
    """Inputs under `root` (local dir or s3:// prefix): HTML, JSONL and text, with one exact
    duplicate, one too-short document, one e-mail address and one corrupt gzip file."""
    rng = random.Random(seed)
    shared = prose(rng)
    for i in range(files):
        storage.write_text(storage.join(root, f"page-{i:03d}.html"), html_page(rng, f"Page {i}"))
    lines = [
        {"id": f"j{i}", "text": prose(rng), "url": f"https://example.org/{i}"} for i in range(6)
    ]
    lines.append({"id": "dup-a", "text": shared})
    lines.append({"id": "dup-b", "text": shared})
    lines.append({"id": "short", "text": "Too short."})
    lines.append({"id": "mail", "text": prose(rng) + "\nWrite to jane.doe@example.com today."})
    storage.write_text(storage.join(root, "rows.jsonl"), "\n".join(map(json.dumps, lines)) + "\n")
    storage.write_text(storage.join(root, "notes.txt"), prose(rng, lines=10))
    storage.write_bytes(
        storage.join(root, "broken.jsonl.gz"), b"\x1f\x8b\x08\x00" + rng.randbytes(64)
    )
    return {"html": files, "jsonl_rows": len(lines), "text": 1, "broken": 1}


def write_config(path, partition_bytes: int = 3000, **sections) -> str:
    """A TOML config with tiny partitions; PII runs its pattern recognizers only (no NER)."""
    body = [f"partition_bytes = {partition_bytes}", "[pii]", "ner = false"]
    for section, values in sections.items():
        body.append(f"[{section}]")
        body.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
    path.write_text("\n".join(body) + "\n")
    return str(path)


def smelt_cli(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 300, **popen
) -> subprocess.CompletedProcess:
    """Run `smelt ARGS` (the installed console entry point) in a subprocess."""
    full_env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(env or {})}
    command = [sys.executable, "-m", "smelt.cli.main", *args]
    return subprocess.run(
        command, env=full_env, capture_output=True, text=True, timeout=timeout, **popen
    )


def read_corpus(output: str) -> list[dict]:
    """All rows of a corpus's data/ partitions, in partition order."""
    rows = []
    for uri in storage.list_files(storage.join(output, "data"), suffixes=[".parquet"]):
        with storage.open_read(uri) as fh:
            rows.extend(pq.read_table(fh).to_pylist())
    return rows


def read_quarantine(output: str) -> list[dict]:
    rows = []
    quarantine = storage.join(output, "quarantine")
    if storage.exists(quarantine):
        for uri in storage.list_files(quarantine, suffixes=[".parquet"]):
            with storage.open_read(uri) as fh:
                rows.extend(pq.read_table(fh).to_pylist())
    return rows


@pytest.fixture
def cli():
    return smelt_cli
