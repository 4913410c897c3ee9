"""The `tokenizer-train` and `shards-build` flows on a real Prefect server (test harness)."""

from __future__ import annotations

import asyncio
import json

import pytest

from smelt.errors import ConfigError
from smelt.flows.shards_build import shards_build
from smelt.flows.tokenizer_train import tokenizer_train
from tests.shards.corpus_factory import tree_bytes
from tests.shards.fixtures import SHARD_TOKENS, TINY_VOCAB, VAL_FRACTION


async def _artifacts(key: str, flow_run_id) -> list:  # noqa: ANN001
    """Artifacts named `key` of one flow run (other tests of the session publish theirs too)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    wanted = ArtifactFilter(
        key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
    )
    async with get_client() as client:
        return await client.read_artifacts(artifact_filter=wanted)


def test_tokenizer_flow_publishes_its_report(
    prefect_harness, tiny_corpus, tiny_tokenizer, tmp_path
):
    state = tokenizer_train(
        corpus=tiny_corpus[0], output=str(tmp_path), vocab_size=TINY_VOCAB, return_state=True
    )
    summary = state.result()
    assert summary["vocab_size"] == TINY_VOCAB and summary["output"] == str(tmp_path)
    with open(f"{tiny_tokenizer}/tokenizer.json", "rb") as fh:
        assert (tmp_path / "tokenizer.json").read_bytes() == fh.read()
    [artifact] = asyncio.run(_artifacts("tokenizer-report", state.state_details.flow_run_id))
    assert "bytes per token" in artifact.data
    report = json.loads((tmp_path / "report.json").read_text())
    assert f"{report['bytes_per_token']:.3f}" in artifact.data  # this run's own figure


@pytest.mark.parametrize(
    "runner",
    [
        pytest.param("process", marks=pytest.mark.slow),
        "thread",
        pytest.param("dask", marks=pytest.mark.slow),
    ],
)
def test_shards_flow_matches_the_library_build(
    runner, prefect_harness, tiny_corpus, tiny_tokenizer, tiny_shards, tmp_path
):
    summary = shards_build(
        corpus=tiny_corpus[0],
        tokenizer=tiny_tokenizer,
        output=str(tmp_path),
        val_fraction=VAL_FRACTION,
        shard_tokens=SHARD_TOKENS,
        runner=runner,
        workers=2,
    )
    assert summary["shards"] >= 4 and summary["empty_docs_skipped"] == 2
    built, reference = tree_bytes(str(tmp_path)), tree_bytes(tiny_shards)
    assert built.pop("build_report.json") and reference.pop("build_report.json")
    assert built == reference


@pytest.mark.slow  # four flow runs
def test_flows_keep_current_outputs(prefect_harness, tiny_corpus, tiny_tokenizer, tmp_path):
    tok = str(tmp_path / "tok")
    trained = tokenizer_train(corpus=tiny_corpus[0], output=tok, vocab_size=400)
    kept = tokenizer_train(corpus=tiny_corpus[0], output=tok, vocab_size=400)
    assert not trained["skipped"] and kept["skipped"]
    assert kept["tokenizer_sha256"] == trained["tokenizer_sha256"]
    out = str(tmp_path / "shards")
    settings = {"val_fraction": VAL_FRACTION, "runner": "thread", "workers": 2}
    built = shards_build(corpus=tiny_corpus[0], tokenizer=tok, output=out, **settings)
    again = shards_build(corpus=tiny_corpus[0], tokenizer=tok, output=out, **settings)
    assert not built["skipped"] and again["skipped"]
    assert {k: v for k, v in again.items() if k != "skipped"} == {
        k: v for k, v in built.items() if k != "skipped"
    }
    forced = shards_build(corpus=tiny_corpus[0], tokenizer=tok, output=out, force=True, **settings)
    assert not forced["skipped"]


def test_shards_flow_refuses_zero_workers(prefect_harness, tiny_corpus, tiny_tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="--workers"):
        shards_build(
            corpus=tiny_corpus[0], tokenizer=tiny_tokenizer, output=str(tmp_path), workers=0
        )
