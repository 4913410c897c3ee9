"""Shard build: round trip, index alignment, packing, determinism, the manifest contract."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from smelt.errors import ConfigError, InputError
from smelt.prep.corpus_input import id_fraction
from smelt.prep.shards import build_shards
from smelt.prep.tokenizer_files import load_tokenizer
from tests.shards.corpus_factory import nonempty, tree_bytes, write_corpus
from tests.shards.fixtures import SHARD_TOKENS, VAL_FRACTION
from tests.shards.helpers import decoded_texts, read_manifest, shard_docs

MANIFEST_KEYS = {
    "format",
    "dtype",
    "endianness",
    "vocab_size",
    "eos_id",
    "tokenizer_sha256",
    "shards",
}
SHARD_KEYS = {"split", "path", "num_tokens", "num_docs", "bytes", "sha256"}


def test_decoding_shards_gives_back_the_corpus(tiny_corpus, tiny_tokenizer, tiny_shards):
    docs = nonempty(tiny_corpus[1])
    for split, wanted in (
        ("train", [t for i, t in docs if id_fraction(i) >= VAL_FRACTION]),
        ("val", [t for i, t in docs if id_fraction(i) < VAL_FRACTION]),
    ):
        assert decoded_texts(tiny_shards, tiny_tokenizer, split) == wanted
    assert 0 < len([1 for i, _ in docs if id_fraction(i) < VAL_FRACTION]) < len(docs) * 0.2


def test_manifest_is_exactly_the_design_contract(tiny_shards, tiny_tokenizer):
    manifest = read_manifest(tiny_shards)
    assert set(manifest) == MANIFEST_KEYS
    assert (manifest["format"], manifest["dtype"], manifest["endianness"]) == (
        "smelt-shards-v1",
        "uint32",
        "little",
    )
    tokenizer = load_tokenizer(tiny_tokenizer)
    assert manifest["vocab_size"] == tokenizer.get_vocab_size()
    assert manifest["eos_id"] == tokenizer.token_to_id("<|endoftext|>")
    with open(os.path.join(tiny_tokenizer, "tokenizer.json"), "rb") as fh:
        import hashlib

        assert manifest["tokenizer_sha256"] == hashlib.sha256(fh.read()).hexdigest()
    for split in ("train", "val"):
        paths = [s["path"] for s in manifest["shards"] if s["split"] == split]
        assert paths == [f"{split}/shard_{n:05d}.bin" for n in range(len(paths))]
    for entry in manifest["shards"]:
        assert set(entry) == SHARD_KEYS
        path = os.path.join(tiny_shards, entry["path"])
        assert os.path.getsize(path) == entry["bytes"] == 4 * entry["num_tokens"]
    assert not os.path.exists(os.path.join(tiny_shards, "_work"))


def test_idx_marks_each_document_end_with_eos(tiny_shards):
    manifest = read_manifest(tiny_shards)
    eos = manifest["eos_id"]
    for entry in manifest["shards"]:
        tokens = np.fromfile(os.path.join(tiny_shards, entry["path"]), dtype="<u4")
        ends = np.fromfile(os.path.join(tiny_shards, entry["path"][:-4] + ".idx"), dtype="<u8")
        assert len(ends) == entry["num_docs"] and ends[-1] == entry["num_tokens"] == len(tokens)
        assert np.all(np.diff(ends.astype(np.int64)) > 0)
        assert np.all(tokens[ends.astype(np.int64) - 1] == eos)
        assert int((tokens == eos).sum()) == len(ends)  # eos only at boundaries
        assert tokens.max() < manifest["vocab_size"]


def test_shards_respect_size_and_never_split_documents(tiny_shards):
    manifest = read_manifest(tiny_shards)
    assert len([s for s in manifest["shards"] if s["split"] == "train"]) >= 3
    for entry in manifest["shards"]:
        assert entry["num_tokens"] <= SHARD_TOKENS or entry["num_docs"] == 1


def test_build_report_counts_empty_documents(tiny_corpus, tiny_shards):
    with open(os.path.join(tiny_shards, "build_report.json")) as fh:
        report = json.load(fh)
    docs = tiny_corpus[1]
    assert report["empty_docs_skipped"] == len(docs) - len(nonempty(docs)) == 2
    assert report["train_docs"] + report["val_docs"] == report["docs"] == len(nonempty(docs))


def test_literal_eos_and_placeholders_round_trip(tiny_tokenizer, tiny_shards):
    texts = decoded_texts(tiny_shards, tiny_tokenizer, "train") + decoded_texts(
        tiny_shards, tiny_tokenizer, "val"
    )
    assert "A literal <|endoftext|> inside a document stays text." in texts
    assert any("<EMAIL>" in t and "<US_SSN>" in t for t in texts)


def test_oversized_document_gets_its_own_shard(tiny_tokenizer, tmp_path):
    corpus, out = str(tmp_path / "corpus"), str(tmp_path / "shards")
    write_corpus(corpus, parts=2, limit=150)
    build_shards(corpus, tiny_tokenizer, out, val_fraction=0.0, shard_tokens=100)
    manifest = read_manifest(out)
    assert {s["split"] for s in manifest["shards"]} == {"train"}
    lengths = [len(d) for s in manifest["shards"] for d in shard_docs(out, s)]
    assert max(lengths) > 100 and len(lengths) == 150 - 2
    for entry in manifest["shards"]:
        assert entry["num_tokens"] <= 100 or entry["num_docs"] == 1


def test_same_bytes_whatever_the_worker_count(tiny_corpus, tiny_tokenizer, tiny_shards, tmp_path):
    build_shards(
        tiny_corpus[0],
        tiny_tokenizer,
        str(tmp_path),
        val_fraction=VAL_FRACTION,
        shard_tokens=SHARD_TOKENS,
        workers=2,
    )
    assert tree_bytes(str(tmp_path)) == tree_bytes(tiny_shards)


def test_rebuild_with_other_size_removes_stale_shards(tiny_corpus, tiny_tokenizer, tmp_path):
    out = str(tmp_path)
    build_shards(tiny_corpus[0], tiny_tokenizer, out, val_fraction=0.0, shard_tokens=10_000)
    many = len(os.listdir(os.path.join(out, "train")))
    build_shards(tiny_corpus[0], tiny_tokenizer, out, val_fraction=0.0, shard_tokens=1_000_000)
    assert many > 2 and sorted(os.listdir(os.path.join(out, "train"))) == [
        "shard_00000.bin",
        "shard_00000.idx",
    ]


def test_unfinished_corpus_is_refused(tiny_tokenizer, tmp_path):
    write_corpus(str(tmp_path / "corpus"), parts=1, limit=20, with_stats=False)
    with pytest.raises(InputError, match="stats.json"):
        build_shards(str(tmp_path / "corpus"), tiny_tokenizer, str(tmp_path / "out"))
    with pytest.raises(InputError, match="not found"):
        build_shards(str(tmp_path / "nowhere"), tiny_tokenizer, str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "stats.json").write_text("{}")
    with pytest.raises(InputError, match="no Parquet partitions"):
        build_shards(str(tmp_path / "empty"), tiny_tokenizer, str(tmp_path / "out"))
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_bad_tokenizer_and_parameters_are_refused(tiny_corpus, tiny_tokenizer, tmp_path):
    with pytest.raises(InputError, match="tokenizer not found"):
        build_shards(tiny_corpus[0], str(tmp_path / "missing"), str(tmp_path / "out"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        build_shards(tiny_corpus[0], str(tmp_path / "bad.json"), str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="val-fraction"):
        build_shards(tiny_corpus[0], tiny_tokenizer, str(tmp_path / "out"), val_fraction=1.5)
