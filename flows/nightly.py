"""The `nightly-build` flow: tonight's new raw objects -> the night's corpus -> the night's shards.

    list inputs -> only the new or changed objects (nothing new: stop, nothing written)
      -> corpus-build into corpus/nightly/{date}, deduplicated against main and every night
      -> shards-build into shards/nightly/{date} with the main tokenizer
      -> an earlier night whose documents tonight superseded gets its shards rebuilt

The tokenizer is never trained here: every night is tokenized with the main corpus's
tokenizer, so token ids mean the same in every shard set and nights mix with the main data.
`{date}` is the UTC date of the run's scheduled start (a late run still builds its own night),
resolved once and passed on as concrete URIs. The stages are the `corpus-build` and
`shards-build` flows, run as subflows, so each keeps its own task runs and artifacts.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from smelt.corpus.build import BuildRequest
from smelt.corpus.supersede import Selection
from smelt.corpus.targets import date_of, expand_output
from smelt.flows.corpus_build import CorpusBuildParams, build_date, corpus_build, resolve_request
from smelt.flows.flow import flow
from smelt.flows.shards_build import shards_build
from smelt.prep.shards import DEFAULT_SHARD_TOKENS, DEFAULT_VAL_FRACTION
from smelt.prep.shards import recorded_fingerprint as shards_fingerprint
from smelt.prep.tokenizer_files import load_tokenizer


class NightlyParams(BaseModel):
    """What a nightly build is told: the form the Prefect UI shows for a run."""

    inputs: list[str] = Field(description="where new raw objects arrive (files or s3:// prefixes)")
    corpus: str = Field(
        description="the night's corpus; `{date}` becomes the run's UTC date, e.g. "
        "s3://lake/corpus/nightly/{date}"
    )
    dedup_against: list[str] = Field(
        default_factory=list,
        description="the main corpus and earlier nights (a glob means every finished corpus "
        "it matches): their documents do not come back, and objects they consumed in the "
        "same version are not read again",
    )
    tokenizer: str = Field(
        description="the main tokenizer (never trained at night: token ids stay comparable)"
    )
    shards: str = Field(
        description="the night's shards; `{date}` as in `corpus`, e.g. s3://lake/shards/nightly/{date}"
    )
    config_path: str | None = Field(None, description="corpus config: TOML/YAML file")
    config_overrides: dict[str, Any] = Field(
        default_factory=dict, description='corpus config overrides, e.g. {"pii": {"ner": false}}'
    )
    val_fraction: float = Field(DEFAULT_VAL_FRACTION, ge=0.0, lt=1.0)
    shard_tokens: int = Field(DEFAULT_SHARD_TOKENS, gt=0, description="tokens per shard")
    runner: Literal["process", "thread", "dask"] = "process"
    workers: int | None = Field(None, ge=1, description="parallel workers (default: every core)")
    dask_address: str | None = Field(None, description="scheduler of an existing Dask cluster")
    night: date | None = Field(
        None,
        description="the night to name the outputs after (default: the run's scheduled UTC "
        "date); set it to backfill a night that did not run",
    )

    def when(self) -> datetime:
        """The moment whose UTC date is `{date}`."""
        if self.night is None:
            return build_date()
        return datetime(self.night.year, self.night.month, self.night.day, tzinfo=UTC)

    def corpus_params(self, when: datetime) -> CorpusBuildParams:
        """The night's corpus build, its output concrete."""
        return CorpusBuildParams(
            inputs=self.inputs,
            output=expand_output(self.corpus, when),
            config_path=self.config_path,
            config_overrides=self.config_overrides,
            dedup_against=self.dedup_against,
            only_new=True,
            runner=self.runner,
            workers=self.workers,
            dask_address=self.dask_address,
        )

    def shards_of(self, corpus_uri: str) -> str | None:
        """The shards URI of the night whose corpus is at `corpus_uri` (None: not a night)."""
        night = date_of(self.corpus, corpus_uri)
        return expand_output(self.shards, night) if night else None


@flow(name="nightly-build")
def nightly_build(params: NightlyParams) -> dict[str, Any]:
    """Build tonight's corpus from new or changed objects, then its shards; with nothing new,
    return at once having written nothing."""
    logger = get_run_logger()
    when = params.when()
    load_tokenizer(params.tokenizer)  # a missing tokenizer fails before any corpus work
    corpus_params = params.corpus_params(when)
    request = resolve_request(corpus_params, when)
    selection = request.select()
    outcome: dict[str, Any] = {
        "date": when.strftime("%Y-%m-%d"),
        "corpus": request.output,
        "inputs": selection.counts(),
        "shards": None,
        "rebuilt_shards": [],
    }
    if not selection.files:
        logger.info("nothing new in %s: no corpus, no shards", ", ".join(params.inputs))
        outcome["status"] = "nothing new"
        publish_summary(outcome)
        return outcome
    summary = corpus_build(corpus_params)
    outcome["kept"] = summary["kept"]
    if summary["kept"] == 0:
        logger.info("no document of tonight's objects survived: no shards")
        outcome["status"] = "no documents"
    else:
        outcome["shards"] = build_night_shards(params, request.output, when)
        outcome["status"] = "built"
    outcome["rebuilt_shards"] = rebuild_superseded_nights(params, request, selection)
    publish_summary(outcome)
    return outcome


def build_night_shards(params: NightlyParams, corpus_uri: str, when: datetime) -> str:
    """Tonight's shards, tokenized with the main tokenizer; returns their URI."""
    output = expand_output(params.shards, when)
    tokenize(params, corpus_uri, output)
    return output


def tokenize(params: NightlyParams, corpus_uri: str, output: str) -> None:
    """The `shards-build` flow of one night's corpus with the main tokenizer and the night's
    shard settings (tonight's, or an earlier night's rebuilt)."""
    shards_build(
        corpus=corpus_uri,
        tokenizer=params.tokenizer,
        output=output,
        val_fraction=params.val_fraction,
        shard_tokens=params.shard_tokens,
        runner=params.runner,
        workers=params.workers,
        dask_address=params.dask_address,
    )


def rebuild_superseded_nights(
    params: NightlyParams, request: BuildRequest, selection: Selection
) -> list[str]:
    """Shards of earlier nights whose documents tonight superseded, built again without them.

    Only nights under this flow's own `{date}` templates whose shard set exists: the main
    corpus's shards (rarely touched, and large) are rebuilt by the next `shards-build` or
    `pretrain-pipeline` run, which sees them stale.
    """
    rebuilt = []
    for corpus_uri in sorted(selection.replaced_sources()):
        output = params.shards_of(corpus_uri)
        if output is None or corpus_uri == request.output or shards_fingerprint(output) is None:
            continue
        get_run_logger().info("rebuilding %s without the documents tonight superseded", output)
        tokenize(params, corpus_uri, output)
        rebuilt.append(output)
    return rebuilt


def publish_summary(outcome: dict[str, Any]) -> None:
    """The night at a glance, as the run's markdown artifact."""
    counts = outcome["inputs"]
    lines = [
        f"# Night {outcome['date']}: {outcome['status']}",
        "",
        "| | |",
        "|---|---|",
        f"| input objects new / changed / unchanged (skipped) | {counts['new']} / "
        f"{counts['changed']} / {counts['skipped']} |",
        f"| earlier documents superseded | {counts['superseded_docs']} |",
        f"| corpus | {outcome['corpus'] if outcome['status'] != 'nothing new' else '-'} |",
        f"| documents kept | {outcome.get('kept', 0)} |",
        f"| shards | {outcome['shards'] or '-'} |",
        f"| shard sets rebuilt | {', '.join(outcome['rebuilt_shards']) or '-'} |",
    ]
    create_markdown_artifact(
        key="nightly-build", markdown="\n".join(lines), description="The night's build"
    )
