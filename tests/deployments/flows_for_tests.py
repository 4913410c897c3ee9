"""A tiny flow deployed to the `runpod` pool by the worker tests: it proves it ran inside the
pod (writes the pod's environment facts to a file) and can be slowed down to be cancelled or to
outlive a killed worker, without depending on the training stack."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from prefect import flow, get_run_logger


@flow(name="pod-probe")
def pod_probe(marker_dir: str, seconds: float = 0.0, tag: str = "run") -> str:
    """Write `<marker_dir>/<tag>.json` with the pod's view, then sleep `seconds`."""
    logger = get_run_logger()
    facts = {
        "flow_run_id": os.environ.get("PREFECT__FLOW_RUN_ID"),
        "has_aws_key": bool(os.environ.get("AWS_ACCESS_KEY_ID")),
        "has_runpod_key": "RUNPOD_API_KEY" in os.environ,
        "cwd": os.getcwd(),
    }
    Path(marker_dir).mkdir(parents=True, exist_ok=True)
    (Path(marker_dir) / f"{tag}.json").write_text(json.dumps(facts))
    logger.info("pod probe %s started; sleeping %.1fs", tag, seconds)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
    logger.info("pod probe %s done", tag)
    return tag


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
