"""S3 goes down in the middle of a corpus build whose inputs and output are on S3 (a real
outage: the moto server stops and its connections close), right after the first partition is
extracted. The build waits for S3 instead of failing, and publishes exactly the corpus an
uninterrupted build publishes."""

from __future__ import annotations

import json
import time

import pytest

from smelt import storage
from smelt.corpus.build import BuildRequest, build_corpus
from smelt.corpus.config import config_from_dict
from smelt.parallel import LocalExecutor
from smelt.storage import stage
from tests.corpus_build.conftest import read_corpus, read_quarantine, write_inputs

CONFIG = {"partition_bytes": 3000, "pii": {"ner": False}}


def build(inputs: str, output: str) -> dict:
    request = BuildRequest(inputs=[inputs], output=output, config=config_from_dict(CONFIG))
    return build_corpus(request, LocalExecutor(1))


def published(output: str) -> tuple[list[dict], list[dict], dict]:
    stats = json.loads(storage.read_text(f"{output}/stats.json"))
    rows = sorted(read_corpus(output), key=lambda row: row["id"])
    return rows, read_quarantine(output), stats


@pytest.mark.slow  # two corpus builds on S3
def test_a_short_outage_during_the_build_changes_nothing(s3_server, s3_bucket, monkeypatch):
    inputs = f"{s3_bucket}/raw"
    write_inputs(inputs)
    build(inputs, f"{s3_bucket}/reference")

    down: list[float] = []
    written: list[float] = []
    write = stage.Marker.write

    def writing(marker, manifest):
        record = write(marker, manifest)
        written.append(time.monotonic())
        if "/_work/extracted/" in marker.uri and not down:
            down.append(time.monotonic())
            s3_server.outage(1.0)
        return record

    monkeypatch.setattr(stage.Marker, "write", writing)
    output = f"{s3_bucket}/interrupted"
    build(inputs, output)
    assert down, "S3 went down during the build"
    after = [at for at in written if at > down[0]]
    assert after and min(after) > down[0] + 1.0  # the build waited for S3 instead of failing
    assert published(output) == published(f"{s3_bucket}/reference")
    record = json.loads(storage.read_text(f"{output}/config.json"))
    assert record["partitions"] >= 3  # partitions were still to come when S3 went down
