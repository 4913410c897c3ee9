"""Mixtures of shard sets on S3 (the moto server over HTTP): weights respected over a run, and
a glob that picks up a shard set added between two runs of the same output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smelt import storage
from smelt.training.checkpoint import RunLayout, StepLayout, complete_steps, read_document
from smelt.training.loop import train
from tests.training.conftest import small_config


def upload(local_root: str, uri: str) -> str:
    """Copy a shard set to S3, its manifest last (as a build publishes it)."""
    files = sorted(Path(local_root).rglob("*"), key=lambda p: p.name == "manifest.json")
    for path in files:
        if path.is_file():
            storage.put_file(str(path), f"{uri}/{path.relative_to(local_root)}")
    return uri


def mixture_config(sources: list[str], output: str, steps: int):
    return small_config(
        sources, output, max_steps=steps, batch_size=8, seq_len=16, checkpoint_every=10
    )


@pytest.mark.parametrize(
    "weights", [{"even": 0.7, "code": 0.3}, {"even": 0.5, "odd": 0.3, "code": 0.2}]
)
def test_sources_on_s3_are_drawn_by_weight(
    s3_server, s3_bucket: str, mixture_sets: dict[str, str], tmp_path: Path, weights
) -> None:
    uris = {name: upload(mixture_sets[name], f"{s3_bucket}/shards/{name}") for name in weights}
    sources = [f"{uris[name]}={weight}" for name, weight in weights.items()]
    output = f"{s3_bucket}/runs/mix"
    result = train(mixture_config(sources, output, steps=40))
    assert result.step == 40
    records = _remote_metrics(output)
    assert [r["step"] for r in records] == list(range(1, 41))
    for record in records:
        assert set(record["source_tokens"]) == set(uris.values())
        assert sum(record["source_tokens"].values()) == record["tokens"]
    final = records[-1]["source_tokens"]
    for name, weight in weights.items():
        assert abs(final[uris[name]] / records[-1]["tokens"] - weight) < 0.02
    assert result.data["source_tokens"] == final
    cached = list(Path(tmp_path, "cache", "shards").glob("*/train/shard_00000.bin"))
    assert len(cached) == len(weights)  # every set was read from S3 (downloaded, verified)


def _remote_metrics(output: str) -> list[dict]:
    text = storage.read_text(RunLayout(output).metrics)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_glob_picks_up_a_shard_set_added_between_two_runs(
    s3_server, s3_bucket: str, mixture_sets: dict[str, str]
) -> None:
    main = upload(mixture_sets["code"], f"{s3_bucket}/shards/main")
    first_night = upload(mixture_sets["even"], f"{s3_bucket}/shards/nightly/2026-11-01")
    sources = [f"{main}=0.5", f"{s3_bucket}/shards/nightly/*=0.5"]
    output = f"{s3_bucket}/runs/continued"
    assert train(mixture_config(sources, output, steps=10)).step == 10

    second_night = upload(mixture_sets["odd"], f"{s3_bucket}/shards/nightly/2026-11-02")
    result = train(mixture_config(sources, output, steps=20))
    assert result.resumed_from == 10 and result.step == 20

    records = _remote_metrics(output)
    assert [r["phase"] for r in records] == [0] * 10 + [1] * 10
    glob = f"{s3_bucket}/shards/nightly/*"
    tokens = [r["source_tokens"] for r in records]
    assert tokens[10][glob] > tokens[9][glob] and tokens[19][main] > tokens[9][main]
    # the run recorded which shard sets (and manifests) it has drawn from, phase by phase
    newest = StepLayout(complete_steps(output)[20])
    history = read_document(newest, StepLayout.RANKS)[0]["loader"]["history"]
    assert [p["reason"].split(":")[0] for p in history] == ["start", "sources changed"]
    assert [s["uri"] for s in history[0]["sets"]] == [main, first_night]
    assert [s["uri"] for s in history[1]["sets"]] == [main, first_night, second_night]
    manifest = storage.read_bytes(f"{second_night}/manifest.json")
    assert history[1]["sets"][2]["manifest_sha256"] == storage.sha256_bytes(manifest)
    assert history[1]["start_tokens"] == records[9]["tokens"]
