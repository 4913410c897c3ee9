"""Checkpoints to s3:// on the moto server: S3 goes down during training, training goes on, the
uploads catch up when it is back, and a fresh machine resumes from what is on S3."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from smelt import storage
from smelt.training.checkpoint import complete_steps
from smelt.training.metrics import read_metrics
from tests.training.conftest import REPO, child_env, run_loop, train_args
from tests.training.resumption import assert_resumed


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_s3_outage_during_upload_then_resume(
    shards: str, s3_server, s3_bucket: str, tmp_path: Path
) -> None:
    output = f"{s3_bucket}/runs/r1"
    cache = tmp_path / "cache"
    env = child_env(**s3_server.env(), SMELT_CACHE_DIR=str(cache))
    args = train_args(shards, output, "--checkpoint-every", "10", "--keep-last", "2", steps=40)
    proc = subprocess.Popen(
        [sys.executable, "-m", "smelt.training.loop", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err_lines: list[str] = []
    reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        local_runs = cache / "runs"
        _wait(lambda: list(local_runs.glob("*/step_00000010/COMPLETE")), 120, "first checkpoint")
        s3_server.stop()  # a real outage: listening socket and connections close
        metrics = next(local_runs.glob("*")) / "metrics.jsonl"
        down_at = read_metrics(str(metrics))[-1]["step"]
        _wait(lambda: any("failed" in line for line in err_lines), 120, "a failed upload")
        _wait(
            lambda: read_metrics(str(metrics))[-1]["step"] >= min(40, down_at + 5),
            120,
            "training to go on while S3 is down",
        )
        s3_server.start()
        out = proc.stdout.read()
        proc.wait(240)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if s3_server._server is None:
            s3_server.start()
    err = "".join(err_lines)
    assert proc.returncode == 0, err[-3000:]
    assert "trained to step 40" in out
    remote = complete_steps(output)
    assert list(remote) == [30, 40]  # keep-last 2, pruned remotely too
    assert storage.exists(f"{output}/step_00000040/COMPLETE")
    assert storage.exists(f"{output}/metrics.jsonl") and storage.exists(f"{output}/tokenizer.json")

    # a fresh machine: no local cache; resume from S3 and extend the run
    on_s3 = [json.loads(line) for line in storage.read_text(f"{output}/metrics.jsonl").splitlines()]
    shutil.rmtree(cache)
    proc = run_loop(
        train_args(
            shards, output, "--checkpoint-every", "10", "--keep-last", "2", "--debug", steps=50
        ),
        env=env,
    )
    assert list(complete_steps(output)) == [40, 50]
    local = next((cache / "runs").glob("*"))
    records = read_metrics(str(local / "metrics.jsonl"))
    assert [r["step"] for r in records] == list(range(1, 51))  # came back from S3, continued
    assert_resumed(40, proc.stderr, on_s3, records)  # from S3's step 40, not from scratch
