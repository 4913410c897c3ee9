"""`smelt corpus build` end to end through the real CLI, inputs and output on S3 (moto server):
the published layout, the accounting identity, the quarantine, kill -9 and resume, Dask, and
the one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from smelt import storage
from smelt.storage.transfer import s3_client
from smelt.storage.uri import split_s3
from tests.corpus_build.conftest import read_corpus, read_quarantine, write_config, write_inputs

# Every test here runs the `smelt` CLI in a subprocess (a private Prefect server each, ~7 s),
# most of them against a reference build of ~30 s of CPU.
pytestmark = pytest.mark.slow

PARTITION_BYTES = 6000


@pytest.fixture(scope="module")
def bucket(s3_server):
    return s3_server.create_bucket("corpus-build-tests")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("config") / "build.toml", PARTITION_BYTES)


@pytest.fixture(scope="module")
def inputs(bucket):
    uri = f"{bucket}/raw"
    write_inputs(uri)
    return uri


@pytest.fixture(scope="module")
def reference(s3_server, bucket, inputs, config_file):
    """An uninterrupted build: the output every other build must equal. It runs on threads
    (each process-pool worker imports presidio and Prefect again, ~20 s on this machine); the
    killed build runs on the default process pool, so equal outputs also show that both
    runners build the same corpus."""
    output = f"{bucket}/reference"
    done = _cli(_build_args(inputs, output, config_file, "--runner", "thread"), s3_server.env())
    assert done.returncode == 0, done.stderr[-3000:]
    return output


def _build_args(inputs, output, config_file, *extra):
    """`smelt corpus build` arguments for the test inputs, without the live display."""
    return [
        "corpus",
        "build",
        "--input",
        inputs,
        "--output",
        output,
        "--config",
        config_file,
        "--no-progress",
        *extra,
    ]


def _cli(args, env, timeout=600):
    full_env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **env}
    return subprocess.run(
        [sys.executable, "-m", "smelt.cli.main", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _stats(output):
    return json.loads(storage.read_text(f"{output}/stats.json"))


def _sorted_rows(output):
    return sorted(read_corpus(output), key=lambda row: row["id"])


def test_build_on_s3_publishes_corpus_stats_and_quarantine(reference, inputs):
    rows = read_corpus(reference)
    assert rows and set(rows[0]) >= {"id", "text", "source", "url"}
    assert len({row["id"] for row in rows}) == len(rows)
    assert all(row["source"].startswith(inputs) for row in rows)
    assert any(row["url"] == "https://example.org/0" for row in rows)
    stats = _stats(reference)
    assert stats["kept"] == len(rows)
    assert stats["input_docs"] == (
        stats["kept"]
        + stats["quarantined"]
        + sum(stats["filtered"].values())
        + sum(stats["duplicates"].values())
    )
    assert stats["duplicates"]["exact"] >= 1  # dup-a / dup-b: one of them stays
    assert sum(stats["filtered"].values()) >= 1  # "Too short."
    assert not any(row["id"] == "short" for row in rows)
    assert len([row for row in rows if row["id"] in ("dup-a", "dup-b")]) == 1
    [mail] = [row["text"] for row in rows if row["id"] == "mail"]  # PII redacted in the build
    assert "jane.doe@example.com" not in mail and "<EMAIL>" in mail
    assert stats["pii"]["EMAIL_ADDRESS"] == 1
    quarantined = read_quarantine(reference)
    assert [q["source"] for q in quarantined] == [f"{inputs}/broken.jsonl.gz"]
    assert stats["quarantined"] == len(quarantined) and quarantined[0]["reason"]
    config = json.loads(storage.read_text(f"{reference}/config.json"))
    assert config["inputs"] == [inputs] and config["config"]["partition_bytes"] == PARTITION_BYTES
    assert config["partitions"] == len(storage.list_files(f"{reference}/data")) >= 3


def test_kill_9_midway_then_rerun_equals_uninterrupted(
    s3_server, bucket, inputs, config_file, reference
):
    output = f"{bucket}/killed"
    args = [
        sys.executable,
        "-m",
        "smelt.cli.main",
        *_build_args(inputs, output, config_file),  # the default runner: a process pool
    ]
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **s3_server.env()}
    build = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 400
        while not _done_markers(f"{output}/_work/extracted"):
            assert build.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline, "no partition finished in time"
            time.sleep(0.05)
    finally:
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()
    assert not storage.exists(f"{output}/stats.json")  # killed midway: unfinished
    before = _done_markers(f"{output}/_work/extracted")
    rerun = _cli(_build_args(inputs, output, config_file, "--runner", "thread"), s3_server.env())
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = _done_markers(f"{output}/_work/extracted")
    assert all(after[key] == stamp for key, stamp in before.items())  # done work was kept
    assert _sorted_rows(output) == _sorted_rows(reference)
    assert _stats(output) == _stats(reference)


def test_dask_runner_gives_the_same_corpus(s3_server, bucket, inputs, config_file, reference):
    output = f"{bucket}/dask"
    done = _cli(
        _build_args(inputs, output, config_file, "--runner", "dask", "--workers", "2"),
        s3_server.env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert _sorted_rows(output) == _sorted_rows(reference)
    assert _stats(output) == _stats(reference)


def test_rerun_with_other_inputs_is_refused(s3_server, bucket, reference, config_file):
    other = f"{bucket}/other-raw"
    storage.write_text(f"{other}/one.txt", "A different input set.")
    done = _cli(
        ["corpus", "build", "--input", other, "--output", reference, "--config", config_file],
        s3_server.env(),
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "already holds a build of other inputs" in done.stderr


@pytest.mark.parametrize("missing", ["local", "bucket"])
def test_missing_input_is_one_line_exit_2(s3_server, tmp_path, missing):
    uri = str(tmp_path / "nowhere") if missing == "local" else "s3://no-such-bucket-xyz/raw"
    done = _cli(
        ["corpus", "build", "--input", uri, "--output", str(tmp_path / "out")],
        s3_server.env(),
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr and uri in done.stderr
    assert not (tmp_path / "out").exists()


def _done_markers(prefix: str) -> dict[str, object]:
    """`.done` keys under an S3 prefix with their LastModified stamps."""
    bucket, key = split_s3(prefix)
    listing = s3_client().list_objects_v2(Bucket=bucket, Prefix=key + "/")
    return {
        obj["Key"]: obj["LastModified"]
        for obj in listing.get("Contents", [])
        if obj["Key"].endswith(".done")
    }
