"""The `pretrain-pipeline` flow: corpus-build -> tokenizer-train -> shards-build -> train.

Stages pass URIs only. A stage whose output is finished and was built from the same inputs and
config is skipped: each stage's done-marker records the fingerprint of its inputs
(`smelt.storage.stage`), and the corpus, tokenizer and shard flows compare it themselves, so
rerunning the pipeline after a failure, or nightly with unchanged inputs, redoes only what
changed. `force` rebuilds every stage.

Training goes through `run_deployment("train/<deployment>")` when `train_via_deployment` is set
(the deployed pipeline: CPU stages on the `process` pool, training on the GPU pool, e.g. a
RunPod pod); `smelt demo` and tests call the train flow directly as a subflow instead. The run
ends with a markdown artifact linking every stage's output.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from smelt import storage
from smelt.corpus.build import current_fingerprint
from smelt.flows.corpus_build import CorpusBuildParams, corpus_build, resolve_request
from smelt.flows.flow import flow
from smelt.flows.shards_build import shards_build
from smelt.flows.tokenizer_train import tokenizer_train
from smelt.flows.train import train_flow
from smelt.prep.shards import DEFAULT_SHARD_TOKENS
from smelt.prep.shards import recorded_fingerprint as shards_fingerprint
from smelt.prep.tokenizer import DEFAULT_SAMPLE_BYTES, DEFAULT_VOCAB_SIZE
from smelt.training.config import TrainConfig

try:  # a dropdown of the model presets where the model package is present
    from smelt.model.presets import PRESETS

    Preset = Literal[tuple(PRESETS)]  # type: ignore[valid-type]
except ImportError:  # pragma: no cover - the model package ships with smelt
    Preset = str  # type: ignore[misc,assignment]

# RunPod GPU type ids offered in the form (any other id works through the pool's job variables)
GpuType = Literal[
    "NVIDIA GeForce RTX 4090",
    "NVIDIA RTX A6000",
    "NVIDIA L40S",
    "NVIDIA A100 80GB PCIe",
    "NVIDIA H100 80GB HBM3",
    "NVIDIA H200",
]
Runner = Literal["process", "thread", "dask"]


class CorpusStage(BaseModel):
    """Stage 1, `corpus-build`: raw files to a clean Parquet corpus."""

    inputs: list[str] = Field(description="input files, directories or s3:// prefixes")
    config_path: str | None = Field(None, description="TOML/YAML file overriding defaults")
    config_overrides: dict[str, Any] = Field(
        default_factory=dict, description='inline overrides, e.g. {"pii": {"enabled": false}}'
    )
    dedup_against: list[str] = Field(
        default_factory=list, description="earlier corpora whose documents must not come back"
    )


class TokenizerStage(BaseModel):
    """Stage 2, `tokenizer-train`: byte-level BPE on a sample of the corpus."""

    vocab_size: int = Field(DEFAULT_VOCAB_SIZE, ge=512, le=2**20, description="vocabulary")
    sample_bytes: int = Field(DEFAULT_SAMPLE_BYTES, gt=0, description="training sample size")


class ShardsStage(BaseModel):
    """Stage 3, `shards-build`: uint32 token shards and their manifest."""

    val_fraction: float = Field(0.01, ge=0.0, lt=1.0, description="documents held out for val")
    shard_tokens: int = Field(DEFAULT_SHARD_TOKENS, gt=0, description="tokens per shard")


class TrainStage(BaseModel):
    """Stage 4, `train`: the model, the run length, and where it runs."""

    preset: Preset = Field("test", description="model size (smelt.model.presets)")
    max_steps: int = Field(1000, gt=0)
    batch_size: int = Field(8, gt=0, description="sequences per micro-batch per GPU")
    seq_len: int = Field(256, gt=0)
    checkpoint_every: int = Field(100, gt=0)
    seed: int = 1337
    mix: list[str] = Field(
        default_factory=list,
        description="other shard sets to train on with this pipeline's shards, each URI or "
        "URI=WEIGHT; a glob means every finished set it matches, so new nights join on the "
        "next run (e.g. s3://lake/shards/nightly/*=0.3); a changed set of sources is a new "
        "phase of the same run",
    )
    shards_weight: float | None = Field(
        None, gt=0, description="weight of this pipeline's shards when `mix` has weights"
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict, description='other TrainConfig fields, e.g. {"lr": 3e-4}'
    )
    deployment: str = Field("runpod", description="deployment of the `train` flow to run on")
    gpu_type: GpuType = Field("NVIDIA GeForce RTX 4090", description="RunPod GPU type")
    gpu_count: int = Field(1, ge=1, le=8, description="GPUs in the pod")

    def config(self, shards_uri: str, tokenizer_uri: str, output_uri: str) -> TrainConfig:
        own = shards_uri if self.shards_weight is None else f"{shards_uri}={self.shards_weight}"
        fields = {
            "shards": [own, *self.mix],
            "output": output_uri,
            "tokenizer": tokenizer_uri,
            "preset": self.preset,
            "max_steps": self.max_steps,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "checkpoint_every": self.checkpoint_every,
            "seed": self.seed,
        }
        return TrainConfig(**{**fields, **self.overrides})


def stage_uris(root: str) -> dict[str, str]:
    """Where the data stages write under `root`."""
    return {
        "corpus": storage.join(root, "corpus"),
        "tokenizer": storage.join(root, "tokenizer"),
        "shards": storage.join(root, "shards"),
    }


def run_uri(root: str, run_name: str, shards_key: str) -> str:
    """A run trains on one dataset: `ROOT/runs/<run_name>-<shards key>`, so rebuilt shards (a
    new tokenizer, another corpus) start a new run instead of colliding with the old run's
    checkpoints, while a rerun on the same data resumes it (with `train.mix`, sources that
    joined since, such as new nights, start a new phase of that run)."""
    return storage.join(root, "runs", f"{run_name}-{shards_key[:10]}")


@flow(name="pretrain-pipeline")
def pretrain_pipeline(
    root: str,
    corpus: CorpusStage,
    tokenizer: TokenizerStage = TokenizerStage(),  # noqa: B008 - a form default
    shards: ShardsStage = ShardsStage(),  # noqa: B008
    train: TrainStage = TrainStage(),  # noqa: B008
    run_name: str = "main",
    runner: Runner = "process",
    workers: int | None = None,
    train_via_deployment: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Build what is missing or stale under `root`, then train; returns each stage's outcome.

    Args:
        root: where everything goes, a local path or s3:// prefix: ROOT/corpus,
            ROOT/tokenizer, ROOT/shards, ROOT/runs/<run_name>-<data key>.
        corpus: stage 1 parameters (inputs, config, dedup references).
        tokenizer: stage 2 parameters.
        shards: stage 3 parameters.
        train: stage 4 parameters: model preset, run length, GPU type and count.
        run_name: name of the training run (its directory also names the data it trains on).
        runner: task runner of the corpus and shard stages.
        workers: parallel workers of those stages (default: every core).
        train_via_deployment: run training through the `train/<deployment>` deployment (a GPU
            pool) instead of in this flow run.
        force: rebuild every stage even when its output is current.
    """
    uris = stage_uris(root)
    outcome: dict[str, Any] = {"uris": uris}
    _corpus_stage(corpus, uris["corpus"], runner, workers, force, outcome)
    _tokenizer_stage(tokenizer, uris, force, outcome)
    shards_key = _shards_stage(shards, uris, runner, workers, force, outcome)
    uris["run"] = run_uri(root, run_name, shards_key)
    config = train.config(uris["shards"], uris["tokenizer"], uris["run"])
    if train_via_deployment:
        outcome["train"] = _train_by_deployment(train, config)
    else:
        outcome["train"] = {"status": "completed", "summary": train_flow(config=config)}
    create_markdown_artifact(
        key="pretrain-pipeline",
        markdown=summary_markdown(outcome),
        description=f"pretrain-pipeline under {root}",
    )
    return outcome


def _corpus_stage(
    stage: CorpusStage,
    output: str,
    runner: Runner,
    workers: int | None,
    force: bool,
    outcome: dict[str, Any],
) -> str:
    """Build the corpus unless current; returns its fingerprint."""
    params = CorpusBuildParams(
        inputs=stage.inputs,
        output=output,
        config_path=stage.config_path,
        config_overrides=stage.config_overrides,
        dedup_against=stage.dedup_against,
        runner=runner,
        workers=workers,
    )
    request = resolve_request(params)  # exactly as the build resolves it (globs, config)
    current = current_fingerprint(request)
    if current is not None and not force:
        _skipped(outcome, "corpus", output)
        return current
    if force:
        storage.delete(output, recursive=True)
    outcome["corpus"] = {"status": "built", "summary": corpus_build(params=params)}
    return current_fingerprint(request) or ""


def _tokenizer_stage(
    stage: TokenizerStage, uris: dict[str, str], force: bool, outcome: dict[str, Any]
) -> None:
    """Train the tokenizer unless current (the flow itself keeps a current one)."""
    summary = tokenizer_train(
        corpus=uris["corpus"],
        output=uris["tokenizer"],
        vocab_size=stage.vocab_size,
        sample_bytes=stage.sample_bytes,
        force=force,
    )
    _record(outcome, "tokenizer", uris["tokenizer"], summary)


def _shards_stage(
    stage: ShardsStage,
    uris: dict[str, str],
    runner: Runner,
    workers: int | None,
    force: bool,
    outcome: dict[str, Any],
) -> str:
    """Build the shards unless current; returns their fingerprint (it names the training run)."""
    summary = shards_build(
        corpus=uris["corpus"],
        tokenizer=uris["tokenizer"],
        output=uris["shards"],
        val_fraction=stage.val_fraction,
        shard_tokens=stage.shard_tokens,
        runner=runner,
        workers=workers,
        force=force,
    )
    _record(outcome, "shards", uris["shards"], summary)
    return shards_fingerprint(uris["shards"]) or ""


def _record(outcome: dict[str, Any], stage: str, output: str, summary: dict[str, Any]) -> None:
    if summary.get("skipped"):
        _skipped(outcome, stage, output)
    else:
        outcome[stage] = {"status": "built", "summary": summary}


def _skipped(outcome: dict[str, Any], stage: str, output: str) -> None:
    get_run_logger().info("%s at %s is current: skipped", stage, output)
    outcome[stage] = {"status": "skipped"}


def _train_by_deployment(stage: TrainStage, config: TrainConfig) -> dict[str, Any]:
    """Run `train/<deployment>` (e.g. in a RunPod pod) and wait for it; fail if it failed."""
    from prefect.deployments import run_deployment

    name = f"train/{stage.deployment}"
    get_run_logger().info(
        "dispatching training to deployment %s (%d x %s)", name, stage.gpu_count, stage.gpu_type
    )
    flow_run = run_deployment(
        name=name,
        parameters={"config": config.to_dict()},
        timeout=None,
        as_subflow=True,
        job_variables={"gpu_type": stage.gpu_type, "gpu_count": stage.gpu_count},
    )
    state = flow_run.state
    result = {
        "status": state.type.value.lower() if state else "unknown",
        "flow_run_id": str(flow_run.id),
        "deployment": name,
    }
    if state is None or not state.is_completed():
        raise RuntimeError(
            f"training run {flow_run.name} ({name}) ended "
            f"{result['status']}: {state.message if state else ''}"
        )
    return result


def summary_markdown(outcome: dict[str, Any]) -> str:
    """The run's summary artifact: each stage, whether it was built or skipped, its output."""
    uris = outcome["uris"]
    lines = ["# pretrain-pipeline", "", "| stage | status | output |", "|---|---|---|"]
    for stage, key in (
        ("corpus", "corpus"),
        ("tokenizer", "tokenizer"),
        ("shards", "shards"),
        ("train", "run"),
    ):
        status = (outcome.get(stage) or {}).get("status", "not run")
        lines.append(f"| {stage} | {status} | {_link(uris[key])} |")
    train = outcome.get("train") or {}
    if train.get("flow_run_id"):
        lines += ["", f"Training flow run: `{train['flow_run_id']}` ({train['deployment']})."]
    return "\n".join(lines) + "\n"


def _link(uri: str) -> str:
    """A clickable link for s3:// (the S3 console) and local paths (file://)."""
    if storage.is_s3(uri):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        return f"[{uri}](https://s3.console.aws.amazon.com/s3/buckets/{bucket}?prefix={prefix}/)"
    return f"[{uri}](file://{storage.normalize(uri)})"
