"""S3 goes down for good during training: the run still ends on time, says which checkpoints
are only local and how to push them; `smelt push` or the same command again uploads them."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from smelt import storage
from smelt.cli.main import main
from smelt.training import checkpoint
from smelt.training.config import TrainConfig
from smelt.training.loop import TrainResult, train
from smelt.training.manager import UploadsPendingError
from tests.training.conftest import REPO, child_env, small_config, train_args

STEPS, DOWN_AT = 8, 4


def _train_through_outage(server, config: TrainConfig) -> BaseException | TrainResult:
    """Train in a thread, stopping S3 after step DOWN_AT; what `train` returned or raised."""
    outcome: list = []

    def stop_s3(record: dict) -> None:
        if record["step"] == DOWN_AT:
            server.stop()

    def run() -> None:
        try:
            outcome.append(train(config, on_step=stop_s3))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(120)  # without a bounded wait it retried forever
    assert not worker.is_alive(), "training did not end while S3 was down"
    return outcome[0]


def _outage_config(shards: str, output: str, cache: Path) -> TrainConfig:
    return small_config(
        shards,
        output,
        max_steps=STEPS,
        cache_dir=str(cache),
        upload_timeout=2,
        log_every=1,
    )


@pytest.fixture
def outage(shards: str, s3_server, s3_bucket: str, tmp_path: Path):
    """(config, error) of a run whose S3 went down after step DOWN_AT; S3 is back after."""
    config = _outage_config(shards, f"{s3_bucket}/runs/outage", tmp_path / "mirror")
    try:
        error = _train_through_outage(s3_server, config)
    finally:
        if s3_server._server is None:
            s3_server.start()
    return config, error


def test_outage_ends_the_run_naming_local_checkpoints_then_push_uploads_them(
    outage, capsys: pytest.CaptureFixture
) -> None:
    config, error = outage
    assert isinstance(error, UploadsPendingError), error
    message = str(error)
    assert "\n" not in message
    assert "step_00000006" in message and "step_00000008" in message
    assert f"smelt push --output {config.output} --cache-dir {config.cache_dir}" in message
    local = checkpoint.complete_steps(config.cache_dir)
    assert max(local) == STEPS
    assert max(checkpoint.complete_steps(config.output), default=0) < STEPS

    assert main(["push", "--output", config.output, "--cache-dir", config.cache_dir]) == 0
    assert "step 8" in capsys.readouterr().out
    assert set(checkpoint.complete_steps(config.output)) >= set(local)
    local_metrics = Path(config.cache_dir, "metrics.jsonl").read_bytes()
    assert storage.read_bytes(f"{config.output}/metrics.jsonl") == local_metrics


def test_rerun_after_outage_uploads_and_says_it_is_finished(outage) -> None:
    config, error = outage
    assert isinstance(error, UploadsPendingError), error
    # S3 is back: the rerun may wait for the uploads (2 s is too short on a busy machine)
    result = train(dataclasses.replace(config, upload_timeout=120))
    assert result.already_done and result.resumed_from == STEPS
    assert (result.step, result.tokens) == (STEPS, STEPS * config.batch_size * config.seq_len)
    assert result.loss is not None  # the last logged loss of the finished run
    local = checkpoint.complete_steps(config.cache_dir)
    assert list(checkpoint.complete_steps(config.output)) == list(local) == [4, 6, 8]  # keep 3


@pytest.mark.slow
def test_sigterm_during_an_outage_exits_within_seconds(
    shards: str, s3_server, s3_bucket: str, tmp_path: Path
) -> None:
    output, cache = f"{s3_bucket}/runs/sigterm", tmp_path / "mirror"
    args = train_args(
        shards, output, "--checkpoint-every", "5", "--cache-dir", str(cache), steps=400
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "smelt.training.loop", *args],
        cwd=REPO,
        env=child_env(**s3_server.env()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not checkpoint.complete_steps(output):
            time.sleep(0.05)
        s3_server.stop()
        newest = max(checkpoint.complete_steps(str(cache)))
        while time.monotonic() < deadline and max(checkpoint.complete_steps(str(cache))) == newest:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM  # before: waited for S3 until SIGKILL
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        if s3_server._server is None:
            s3_server.start()
    assert f"smelt push --output {output}" in err
