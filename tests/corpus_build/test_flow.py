"""The `corpus-build` flow itself under a real Prefect server: its result, its table artifact,
its parameter form, and a rerun that skips every finished partition."""

from __future__ import annotations

import json
import os

import pytest

from smelt.corpus.layout import CorpusLayout
from tests.corpus_build.conftest import read_corpus, write_inputs


@pytest.fixture
def built(tmp_path, prefect_harness):
    """(params, summary, flow run id) of one build."""
    from smelt.flows.corpus_build import CorpusBuildParams, corpus_build

    inputs = str(tmp_path / "raw")
    write_inputs(inputs, files=4)
    params = CorpusBuildParams(
        inputs=[inputs],
        output=str(tmp_path / "corpus"),
        runner="thread",
        config_overrides={"partition_bytes": 8000, "pii": {"ner": False}},
    )
    state = corpus_build(params, return_state=True)
    return params, state.result(), state.state_details.flow_run_id


@pytest.mark.slow  # a corpus-build flow run on the Prefect test server
def test_flow_builds_and_publishes_a_stats_artifact(built):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    params, summary, flow_run_id = built
    with open(CorpusLayout.at(params.output).stats) as fh:
        on_disk = json.load(fh)
    rows = read_corpus(params.output)
    assert summary == on_disk and summary["kept"] == len(rows) > 0
    [mail] = [row["text"] for row in rows if row["id"] == "mail"]  # the planted address
    assert "jane.doe@example.com" not in mail and "<EMAIL>" in mail
    assert summary["pii"]["EMAIL_ADDRESS"] == 1
    wanted = ArtifactFilter(
        key=ArtifactFilterKey(any_=["corpus-stats"]),
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),  # this build's, no other's
    )
    with get_client(sync_client=True) as client:
        [table] = client.read_artifacts(artifact_filter=wanted)
    assert table.type == "table"
    cells = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert {"count": "input_docs", "value": summary["input_docs"]} in cells
    assert {"count": "pii.EMAIL_ADDRESS", "value": 1} in cells


@pytest.mark.slow  # a corpus-build flow run on the Prefect test server
def test_flow_publishes_filtered_examples_per_reason(built):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    _, summary, flow_run_id = built
    wanted = ArtifactFilter(
        key=ArtifactFilterKey(any_=["corpus-filtered"]),
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),  # this build's, no other's
    )
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(artifact_filter=wanted)
    assert artifact.type == "markdown"
    shown = artifact.data
    assert summary["filtered"]
    for reason, count in summary["filtered"].items():
        assert f"| {reason} | {count:,} | `" in shown  # its count, then excerpts
    assert "Too short." in shown


@pytest.mark.slow  # a corpus-build flow run on the Prefect test server
def test_rerun_skips_finished_partitions(built):
    from smelt.flows.corpus_build import corpus_build

    params, summary, _ = built
    layout = CorpusLayout.at(params.output)
    marker = layout.final_done(0)
    stamp = os.stat(marker).st_mtime_ns
    assert corpus_build(params) == summary
    assert os.stat(marker).st_mtime_ns == stamp  # not redone


def test_parameters_form_has_the_build_fields():
    from smelt.flows.corpus_build import corpus_build

    schema = corpus_build.parameters.model_dump()
    fields = schema["definitions"]["CorpusBuildParams"]["properties"]
    assert {
        "inputs",
        "output",
        "config_path",
        "config_overrides",
        "dedup_against",
        "runner",
        "workers",
        "dask_address",
    } <= set(fields)
    assert fields["runner"]["enum"] == ["process", "thread", "dask"]
