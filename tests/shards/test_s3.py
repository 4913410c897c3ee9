"""Corpus, tokenizer and shards on S3 (a real moto server over HTTP): build, verify, load."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from smelt import storage
from smelt.prep.shard_check import verify_shards
from smelt.prep.shards import build_shards
from smelt.training.loader import ShardLoader
from tests.shards.corpus_factory import tree_bytes, write_corpus
from tests.shards.fixtures import SHARD_TOKENS, VAL_FRACTION


@pytest.mark.slow
def test_build_verify_and_load_on_s3(s3_server, s3_bucket, tiny_tokenizer, tmp_path):
    corpus, tokenizer, shards = (f"{s3_bucket}/corpus", f"{s3_bucket}/tok", f"{s3_bucket}/shards")
    write_corpus(corpus, parts=2, limit=800)
    storage.put_file(os.path.join(tiny_tokenizer, "tokenizer.json"), f"{tokenizer}/tokenizer.json")
    build_shards(corpus, tokenizer, shards, val_fraction=VAL_FRACTION, shard_tokens=SHARD_TOKENS)

    # the same bytes as a local build of the same corpus, and no work files left behind
    local_corpus, local_shards = str(tmp_path / "corpus"), str(tmp_path / "shards")
    write_corpus(local_corpus, parts=2, limit=800)
    build_shards(
        local_corpus,
        tiny_tokenizer,
        local_shards,
        val_fraction=VAL_FRACTION,
        shard_tokens=SHARD_TOKENS,
    )
    remote = {uri[len(shards) + 1 :]: storage.read_bytes(uri) for uri in storage.list_files(shards)}
    local = tree_bytes(local_shards)
    assert remote.pop("build_report.json") and local.pop("build_report.json")  # names URIs
    assert remote == local

    assert verify_shards(shards).shards >= 3
    result = subprocess.run(
        [sys.executable, "-m", "smelt.cli.main", "shards", "verify", shards],
        capture_output=True,
        text=True,
        env={**os.environ, **s3_server.env()},
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.startswith(f"OK {shards}")

    cache = str(tmp_path / "cache")
    from_s3 = ShardLoader(
        shards, batch_size=4, seq_len=32, seed=5, cache_dir=cache, with_doc_ids=True
    )
    from_disk = ShardLoader(local_shards, batch_size=4, seq_len=32, seed=5, with_doc_ids=True)
    for _ in range(20):
        a, b = from_s3.next_batch(), from_disk.next_batch()
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.doc_ids, b.doc_ids)
    cached = os.path.join(cache, "train", "shard_00000.bin")
    assert os.path.exists(cached)
    with open(cached, "r+b") as fh:  # a damaged cache is replaced, not trusted
        fh.write(b"\xff\xff")
    again = ShardLoader(shards, batch_size=4, seq_len=32, seed=5, cache_dir=cache)
    reference = ShardLoader(local_shards, batch_size=4, seq_len=32, seed=5)
    for _ in range(again.steps_per_epoch):
        assert torch.equal(again.next_batch().inputs, reference.next_batch().inputs)
    assert storage.sha256_file(cached) == again.manifest.split("train")[0].sha256

    # one flipped byte on S3: verify names the shard
    key = f"{shards}/train/shard_00001.bin"
    data = bytearray(storage.read_bytes(key))
    data[77] ^= 0x10
    storage.write_bytes(key, bytes(data))
    result = subprocess.run(
        [sys.executable, "-m", "smelt.cli.main", "shards", "verify", shards],
        capture_output=True,
        text=True,
        env={**os.environ, **s3_server.env()},
        timeout=120,
    )
    assert result.returncode != 0 and "train/shard_00001.bin" in result.stderr


def test_small_build_on_s3_verifies(s3_bucket, tiny_tokenizer):
    corpus, shards = f"{s3_bucket}/corpus", f"{s3_bucket}/shards"
    write_corpus(corpus, parts=1, limit=120)
    build_shards(corpus, tiny_tokenizer, shards, val_fraction=0.1, shard_tokens=SHARD_TOKENS)
    report = verify_shards(shards)
    assert report.shards == 2 and report.docs == 120 - 2
    assert not storage.exists(f"{shards}/_work")
