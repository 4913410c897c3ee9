"""Flows deployed to the `runpod` pool by the worker tests: a probe that proves it ran inside a
pod (and how often), and training paced so that a test can take its pod away mid-run."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from smelt.training.config import TrainConfig


@flow(name="pod-probe")
def pod_probe(marker_dir: str, seconds: float = 0.0, tag: str = "run", fail: bool = False) -> str:
    """Write `<marker_dir>/<tag>.json` with the pod's view and add a line to `<tag>.runs`,
    then sleep `seconds`; with `fail`, raise after that (the run ends FAILED)."""
    logger = get_run_logger()
    key_id = os.environ.get("AWS_ACCESS_KEY_ID", "")
    facts = {
        "flow_run_id": os.environ.get("PREFECT__FLOW_RUN_ID"),
        "has_aws_key": bool(key_id) and not key_id.startswith("{{"),
        "has_runpod_key": "RUNPOD_API_KEY" in os.environ,
        "has_worker_only_variable": "SMELT_WORKER_ONLY" in os.environ,
        "pod_id": os.environ.get("RUNPOD_POD_ID"),
        "home": os.environ.get("HOME"),
        "cwd": os.getcwd(),
    }
    Path(marker_dir).mkdir(parents=True, exist_ok=True)
    (Path(marker_dir) / f"{tag}.json").write_text(json.dumps(facts))
    with open(Path(marker_dir) / f"{tag}.runs", "a", encoding="utf-8") as runs:
        runs.write(f"{facts['pod_id']}\n")
    logger.info("pod probe %s started; sleeping %.1fs", tag, seconds)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
    if fail:
        raise RuntimeError(f"pod probe {tag} failed on purpose")
    logger.info("pod probe %s done", tag)
    return tag


@flow(name="paced-train")
def paced_train(config: TrainConfig, step_delay_s: float = 0.0) -> dict[str, Any]:
    """`smelt.training.loop.train`, sleeping `step_delay_s` after every reported step, and
    logging the first step this pod trained and the run's summary."""
    from smelt.training.loop import train

    logger = get_run_logger()
    first: list[int] = []

    def pace(record: dict[str, Any]) -> None:
        if not first:
            first.append(record["step"])
            logger.info("first step in this pod: %d", record["step"])
        time.sleep(step_delay_s)

    result = train(config, on_step=pace)
    summary = {"step": result.step, "resumed_from": result.resumed_from, "loss": result.loss}
    logger.info("summary: %s", json.dumps(summary))
    return summary


TINY_MODEL = {"d_model": 64, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "ffn_hidden": 128}


@flow(name="dispatch-train")
def dispatch_train(shards: str, output: str, gpu_type: str) -> dict:
    """The pipeline's training dispatch (`run_deployment("train/fake-pod")`), alone: the
    data stages are tested elsewhere; this proves the hand-over to the GPU pool."""
    from smelt.flows.pipeline import TrainStage, _train_by_deployment

    stage = TrainStage(
        preset="test",
        max_steps=2,
        batch_size=2,
        seq_len=32,
        checkpoint_every=2,
        deployment="fake-pod",
        gpu_type=gpu_type,
        overrides={"model_overrides": TINY_MODEL, "device": "cpu"},
    )
    return _train_by_deployment(stage, stage.config(shards, shards, output))
