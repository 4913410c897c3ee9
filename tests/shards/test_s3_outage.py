"""S3 goes down in the middle of a shard build (a real outage: the moto server stops and its
connections close), right after the first tokenized partition is recorded.

A short outage is ridden out: the S3 calls are retried (by the client stack and by
`smelt.storage.retry`) and the build carries on once S3 is back. A long one fails the build,
naming the object it could not reach, and the rerun keeps the partitions already recorded.
Either way the shards are byte for byte those of an uninterrupted build.
"""

from __future__ import annotations

import time

import pytest

from smelt import storage
from smelt.prep.shards import build_shards
from smelt.storage import stage
from smelt.storage.uri import split_s3
from tests.shards.corpus_factory import tree_bytes, write_corpus
from tests.shards.fixtures import SHARD_TOKENS, VAL_FRACTION

DOCS = 600
SETTINGS = {"val_fraction": VAL_FRACTION, "shard_tokens": SHARD_TOKENS}


@pytest.fixture
def reference(tiny_tokenizer, tmp_path) -> dict[str, bytes]:
    """The files of an uninterrupted local build of the same corpus."""
    corpus, shards = str(tmp_path / "corpus"), str(tmp_path / "shards")
    write_corpus(corpus, parts=3, limit=DOCS)
    build_shards(corpus, tiny_tokenizer, shards, **SETTINGS)
    files = tree_bytes(shards)
    files.pop("build_report.json")  # it names the URIs
    return files


def record_markers(monkeypatch, after_first_partition) -> list[tuple[float, str]]:
    """(time, URI) of every marker the build writes; `after_first_partition()` runs once,
    right after the first `_work/parts/*.done` marker."""
    written: list[tuple[float, str]] = []
    write = stage.Marker.write

    def writing(marker, manifest):
        record = write(marker, manifest)
        first = "/_work/parts/" in marker.uri and not any("/_work/parts/" in u for _, u in written)
        written.append((time.monotonic(), marker.uri))
        if first:
            after_first_partition()
        return record

    monkeypatch.setattr(stage.Marker, "write", writing)
    return written


def remote_files(shards: str) -> dict[str, bytes]:
    files = {uri[len(shards) + 1 :]: storage.read_bytes(uri) for uri in storage.list_files(shards)}
    files.pop("build_report.json")
    return files


@pytest.mark.slow  # a shard build through an outage
def test_a_short_outage_is_ridden_out(s3_server, s3_bucket, tiny_tokenizer, reference, monkeypatch):
    corpus, shards = f"{s3_bucket}/corpus", f"{s3_bucket}/shards"
    write_corpus(corpus, parts=3, limit=DOCS)
    down: list[float] = []

    def outage() -> None:
        down.append(time.monotonic())
        s3_server.outage(1.0)

    written = record_markers(monkeypatch, outage)
    build_shards(corpus, tiny_tokenizer, shards, **SETTINGS)
    assert down, "S3 went down during the build"
    after = [at for at, _ in written if at > down[0]]
    assert after and min(after) > down[0] + 1.0  # the build waited for S3 instead of failing
    assert remote_files(shards) == reference


@pytest.mark.slow  # the retries give up after about a minute
def test_a_long_outage_fails_naming_the_object_and_the_rerun_resumes(
    s3_server, s3_bucket, tiny_tokenizer, reference, monkeypatch
):
    corpus, shards = f"{s3_bucket}/corpus", f"{s3_bucket}/shards"
    write_corpus(corpus, parts=3, limit=DOCS)
    written = record_markers(monkeypatch, s3_server.stop)
    try:
        with pytest.raises(Exception) as failure:  # noqa: PT011 - its message is checked
            build_shards(corpus, tiny_tokenizer, shards, **SETTINGS)
    finally:
        s3_server.start()
    first = next(uri for _, uri in written if "/_work/parts/" in uri)
    bucket, prefix = split_s3(shards)
    assert f"{s3_server.endpoint}/{bucket}/{prefix}/" in str(failure.value)

    build_shards(corpus, tiny_tokenizer, shards, **SETTINGS)
    assert [uri for _, uri in written].count(first) == 1  # the rerun kept that partition
    assert remote_files(shards) == reference
