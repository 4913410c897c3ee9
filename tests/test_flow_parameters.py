"""smelt's flows record their run parameters as Prefect would, without importing FastAPI."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import prefect
from pydantic import BaseModel

from smelt.flows.corpus_build import CorpusBuildParams, corpus_build, corpus_build_on_dask
from smelt.flows.flow import SmeltFlow
from smelt.flows.pipeline import pretrain_pipeline


class Odd:
    """Neither pydantic nor JSON: both encoders fall back to a placeholder or a repr."""


class Nested(BaseModel):
    when: datetime
    where: Path
    tags: set[str]


def test_parameters_are_recorded_as_prefect_records_them() -> None:
    params = CorpusBuildParams(
        inputs=["s3://lake/raw/", "/data/pages"],
        output="s3://lake/corpus/nightly/{date}",
        config_overrides={"dedup": {"near": False, "ngram": 5}, "pii": {"entities": ["EMAIL"]}},
        dedup_against=["s3://lake/corpus/nightly/*"],
        workers=2,
    )
    values = {
        "params": params,
        "nested": Nested(when=datetime(2026, 11, 30, 2, tzinfo=UTC), where=Path("/x"), tags={"a"}),
        "plain": {"n": 1, "f": 0.5, "none": None, "list": (1, "two")},
    }
    ours = corpus_build.serialize_parameters(values)
    assert ours == prefect.Flow.serialize_parameters(corpus_build, values)
    assert ours["params"]["output"] == "s3://lake/corpus/nightly/{date}"
    odd = {"odd": Odd()}  # pydantic cannot encode it: Prefect's own encoder decides
    assert corpus_build.serialize_parameters(odd) == prefect.Flow.serialize_parameters(
        corpus_build, odd
    )


def test_every_flow_and_its_copies_are_smelt_flows() -> None:
    assert isinstance(pretrain_pipeline, SmeltFlow)
    assert isinstance(corpus_build_on_dask.with_options(retries=1), SmeltFlow)


def test_recording_parameters_does_not_import_fastapi() -> None:
    script = (
        "import sys\n"
        "from smelt.flows.corpus_build import CorpusBuildParams, corpus_build\n"
        "corpus_build.serialize_parameters({'params': CorpusBuildParams(inputs=['a'], output='b')})\n"
        "print('fastapi' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.stdout.strip() == "False", proc.stderr[-2000:]
