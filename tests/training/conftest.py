"""Training fixtures: a tiny real tokenizer and token shards in the exact ARCHITECTURE.md format.

The tokenizer is a byte-level BPE (512 tokens) trained on Python's own documentation topics
(`pydoc_data`, in the standard library); the shards are those documents encoded, written with
numpy as little-endian uint32 `.bin` + uint64 end-offset `.idx` + `manifest.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smelt.training.config import TrainConfig

VOCAB = 512
# A model small enough that 60 CPU steps take a few seconds (the `test` preset, narrowed).
TINY_MODEL = [
    "--preset",
    "test",
    "--model-override",
    "d_model=64",
    "--model-override",
    "n_layers=2",
    "--model-override",
    "ffn_hidden=128",
    "--model-override",
    "n_heads=2",
    "--model-override",
    "n_kv_heads=1",
]
REPO = Path(__file__).resolve().parents[2]
# An even smaller model for in-process runs of a few steps.
TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "ffn_hidden": 64}


def _texts() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


def build_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_texts(), trainer)
    tokenizer.save(str(path))


def write_shards(
    root: Path, tokenizer_path: Path, docs_per_shard: int = 30, texts: list[str] | None = None
) -> None:
    """Encode the documents (default: every pydoc topic); ~10% go to val; shards as ARCHITECTURE.md
    fixes them."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    eos = tokenizer.token_to_id("<|endoftext|>")
    texts = _texts() if texts is None else texts
    splits = {
        "train": [t for i, t in enumerate(texts) if i % 10],
        "val": [t for i, t in enumerate(texts) if i % 10 == 0],
    }
    entries = []
    for split, docs in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for number, start in enumerate(range(0, len(docs), docs_per_shard)):
            encoded = [
                np.array(tokenizer.encode(d).ids + [eos], dtype="<u4")
                for d in docs[start : start + docs_per_shard]
            ]
            tokens = np.concatenate(encoded)
            ends = np.cumsum([len(e) for e in encoded]).astype("<u8")
            rel = f"{split}/shard_{number:05d}.bin"
            (root / rel).write_bytes(tokens.tobytes())
            (root / rel.replace(".bin", ".idx")).write_bytes(ends.tobytes())
            entries.append(
                {
                    "split": split,
                    "path": rel,
                    "num_tokens": int(len(tokens)),
                    "num_docs": len(encoded),
                    "bytes": int(tokens.nbytes),
                    "sha256": hashlib.sha256(tokens.tobytes()).hexdigest(),
                }
            )
    manifest = {
        "format": "smelt-shards-v1",
        "dtype": "uint32",
        "endianness": "little",
        "vocab_size": tokenizer.get_vocab_size(with_added_tokens=True),
        "eos_id": eos,
        "tokenizer_sha256": hashlib.sha256(tokenizer_path.read_bytes()).hexdigest(),
        "shards": entries,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.fixture(scope="session")
def shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A shard dataset with `tokenizer.json` beside its manifest."""
    root = tmp_path_factory.mktemp("shards")
    build_tokenizer(root / "tokenizer.json")
    write_shards(root, root / "tokenizer.json")
    return str(root)


@pytest.fixture(scope="session")
def mixture_sets(shards: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Three shard sets of different text, sharing the `shards` tokenizer: "even" and "odd"
    pydoc topics, and "code" (standard-library modules); no window occurs in two of them."""
    from tests.shards.corpus_factory import stdlib_sources

    root = tmp_path_factory.mktemp("mixture")
    topics = _texts()
    texts = {
        "even": topics[0::2],
        "odd": topics[1::2],
        "code": [text for _, text in stdlib_sources(160_000)],
    }
    tokenizer = Path(shards, "tokenizer.json")
    for name, docs in texts.items():
        write_shards(root / name, tokenizer, texts=docs)
    return {name: str(root / name) for name in texts}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMELT_CACHE_DIR", str(tmp_path / "cache"))


def small_config(shards: str, output: str | Path, **changes: Any) -> TrainConfig:
    """A TrainConfig of a few steps of the TINY model (in-process tests)."""
    values: dict[str, Any] = dict(
        shards=shards,
        output=str(output),
        model_overrides=dict(TINY),
        max_steps=4,
        batch_size=2,
        seq_len=16,
        warmup_steps=1,
        checkpoint_every=2,
        num_threads=1,
    )
    values.update(changes)
    return TrainConfig(**values)


def train_args(shards: str, output: str, *extra: str, steps: int = 60) -> list[str]:
    return [
        "--shards",
        shards,
        "--output",
        output,
        *TINY_MODEL,
        "--max-steps",
        str(steps),
        "--batch-size",
        "4",
        "--seq-len",
        "32",
        "--warmup-steps",
        "5",
        "--lr",
        "3e-3",
        "--num-threads",
        "1",
        *extra,
    ]


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return env


def run_loop(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess:
    """`python -m smelt.training.loop ARGS` in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-m", "smelt.training.loop", *args],
        cwd=REPO,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"training failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc
