"""The `nightly-build` flow on a real Prefect server with its data on S3 (moto over HTTP): a night
with new objects goes corpus -> shards with the main tokenizer, a night with nothing new writes
nothing and starts no stage, and a night that changes an earlier night's object rebuilds that
night's shards without the old documents."""

from __future__ import annotations

import json
import random

import pytest

from smelt import storage
from smelt.corpus.build import BuildRequest, build_corpus
from smelt.corpus.config import config_from_dict
from smelt.prep.tokenizer import train_tokenizer
from tests.corpus_build.conftest import prose, read_corpus, smelt_cli

FAST = {"pii": {"enabled": False}, "partition_bytes": 4000}


@pytest.fixture
def lake(s3_bucket):
    """Main corpus and its tokenizer built from raw/ (two incoming objects among it); then two
    more objects arrive in raw/incoming/."""
    rng = random.Random(21)
    for i in range(3):
        storage.write_text(f"{s3_bucket}/raw/crawl/page-{i}.txt", prose(rng))
    for i in range(2):
        storage.write_text(f"{s3_bucket}/raw/incoming/old-{i}.txt", prose(rng))
    config = config_from_dict(FAST)
    build_corpus(BuildRequest([f"{s3_bucket}/raw"], f"{s3_bucket}/corpus/main", config))
    train_tokenizer(f"{s3_bucket}/corpus/main", f"{s3_bucket}/tokenizer", vocab_size=512)
    new = [f"{s3_bucket}/raw/incoming/new-{i}.txt" for i in range(2)]
    for uri in new:
        storage.write_text(uri, prose(rng))
    return s3_bucket, new


def _night(bucket: str, day: str):
    from smelt.flows.nightly import NightlyParams, nightly_build

    return nightly_build(
        NightlyParams(
            inputs=[f"{bucket}/raw/incoming/"],
            corpus=f"{bucket}/corpus/nightly/{{date}}",
            dedup_against=[f"{bucket}/corpus/main", f"{bucket}/corpus/nightly/*"],
            tokenizer=f"{bucket}/tokenizer",
            shards=f"{bucket}/shards/nightly/{{date}}",
            config_overrides=FAST,
            val_fraction=0.0,
            runner="thread",
            workers=1,
            night=day,
        )
    )


def _flow_runs(name: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[name]))))


def _manifest(uri: str) -> dict:
    return json.loads(storage.read_text(f"{uri}/manifest.json"))


@pytest.mark.slow
def test_nights_go_corpus_to_shards_and_an_empty_night_does_nothing(prefect_harness, lake):
    bucket, new = lake
    first = _night(bucket, "2026-11-20")
    night1, shards1 = f"{bucket}/corpus/nightly/2026-11-20", f"{bucket}/shards/nightly/2026-11-20"
    assert first["status"] == "built" and first["shards"] == shards1
    assert first["inputs"] == {"new": 2, "changed": 0, "skipped": 2, "superseded_docs": 0}
    assert sorted(row["source"] for row in read_corpus(night1)) == new
    manifest = _manifest(shards1)
    tokenizer_sha = storage.sha256_bytes(storage.read_bytes(f"{bucket}/tokenizer/tokenizer.json"))
    assert manifest["tokenizer_sha256"] == tokenizer_sha  # the main tokenizer, not a new one
    assert sum(s["num_docs"] for s in manifest["shards"]) == 2

    stages = _flow_runs("corpus-build") + _flow_runs("shards-build")
    empty = _night(bucket, "2026-11-21")
    assert empty["status"] == "nothing new" and empty["shards"] is None
    assert empty["inputs"] == {"new": 0, "changed": 0, "skipped": 4, "superseded_docs": 0}
    for root in ("corpus/nightly/2026-11-21", "shards/nightly/2026-11-21"):
        assert not storage.exists(f"{bucket}/{root}")
    assert _flow_runs("corpus-build") + _flow_runs("shards-build") == stages

    storage.write_text(new[0], prose(random.Random(1)))  # an object of night 1 changes
    third = _night(bucket, "2026-11-22")
    assert third["status"] == "built"
    assert third["inputs"] == {"new": 0, "changed": 1, "skipped": 3, "superseded_docs": 1}
    assert [row["source"] for row in read_corpus(f"{bucket}/corpus/nightly/2026-11-22")] == [new[0]]
    assert third["rebuilt_shards"] == [shards1]
    assert sum(s["num_docs"] for s in _manifest(shards1)["shards"]) == 1


@pytest.mark.slow
def test_a_missing_tokenizer_fails_before_any_corpus_work(prefect_harness, lake):
    from smelt.errors import InputError

    bucket, _ = lake
    storage.delete(f"{bucket}/tokenizer", recursive=True)
    with pytest.raises(InputError, match="tokenizer not found"):
        _night(bucket, "2026-11-20")
    assert not storage.exists(f"{bucket}/corpus/nightly/2026-11-20")


def test_smelt_nightly_refuses_a_missing_tokenizer_in_one_line(tmp_path):
    raw = tmp_path / "incoming"
    raw.mkdir()
    (raw / "a.txt").write_text(prose(random.Random(2)))
    done = smelt_cli(
        [
            "nightly",
            "--input",
            str(raw),
            "--corpus",
            str(tmp_path / "corpus" / "{date}"),
            "--tokenizer",
            str(tmp_path / "no-tokenizer"),
            "--shards",
            str(tmp_path / "shards" / "{date}"),
        ],
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: tokenizer not found") and done.stderr.count("\n") == 1
    assert not (tmp_path / "corpus").exists()
