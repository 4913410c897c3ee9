"""The RunPod REST client against the fake API over real HTTP, the pod spec the worker builds,
and the `runpod` worker type's registration through smelt's `prefect.collections` entry point."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import pytest

from smelt.deployments.runpod_api import PodSpec, RunPodClient, RunPodError, redact
from smelt.deployments.runpod_job import (
    DEADLINE_ENV,
    RunPodJobConfiguration,
    flow_run_id_of_pod,
    pod_name,
)
from smelt.errors import ConfigError
from tests.deployments.fake_runpod import FakeRunPod

KEY = "rpa_UNIT_" + uuid.uuid4().hex


@pytest.fixture
def fake(tmp_path):
    server = FakeRunPod(KEY, tmp_path / "pods").start()
    yield server
    server.stop()


def _spec(**env: str) -> PodSpec:
    return PodSpec(
        name="smelt-runpod-x",
        image="img:1",
        gpu_type="NVIDIA L40S",
        gpu_count=2,
        env=env,
        start_cmd=["sleep", "30"],
    )


def test_pod_lifecycle_and_env_values_arrive_exactly(fake):
    tricky = "say \"hi\"\nthen {leave} \\ $HOME 'quoted'"

    async def scenario():
        async with RunPodClient(KEY, fake.base_url, backoff_s=0.01) as runpod:
            pod = await runpod.create_pod(_spec(TRICKY=tricky))
            listed = await runpod.list_pods()
            got = await runpod.get_pod(pod["id"])
            first = await runpod.terminate_pod(pod["id"])
            second = await runpod.terminate_pod(pod["id"])
            return pod, listed, got, first, second

    pod, listed, got, first, second = asyncio.run(scenario())
    assert [p["id"] for p in listed] == [pod["id"]]
    assert got["desiredStatus"] == "RUNNING"
    assert (first, second) == (True, False)
    request = fake.pods[pod["id"]].request
    assert request["env"]["TRICKY"] == tricky
    assert request["gpuTypeIds"] == ["NVIDIA L40S"] and request["gpuCount"] == 2
    assert fake.pods[pod["id"]].process.poll() is not None  # terminate killed the process


def test_transient_failures_are_retried_and_auth_errors_hide_the_key(fake):
    async def create(key: str):
        async with RunPodClient(key, fake.base_url, backoff_s=0.01) as runpod:
            return await runpod.create_pod(_spec())

    fake.fail_next = [503, 502]
    assert asyncio.run(create(KEY))["id"]
    wrong = "rpa_WRONG_" + uuid.uuid4().hex
    with pytest.raises(RunPodError) as info:
        asyncio.run(create(wrong))
    assert "401" in str(info.value) and "RUNPOD_API_KEY" in str(info.value)
    assert wrong not in str(info.value)
    with pytest.raises(ConfigError):
        RunPodClient(None, fake.base_url)


def test_redact_removes_every_secret():
    assert redact("key=abc and abc again", ["abc", None, ""]) == "key=*** and *** again"


def test_pod_spec_forwards_s3_credentials_but_never_the_runpod_key(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-test")
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    config = RunPodJobConfiguration(
        env={"PREFECT__FLOW_RUN_ID": "x", "RUNPOD_API_KEY": KEY},
        command="prefect flow-run execute",
        max_runtime_s=60,
    )
    flow_run_id = uuid.uuid4()
    spec = config.pod_spec("runpod", flow_run_id)
    assert spec.env["AWS_ACCESS_KEY_ID"] == "AKIA-test"
    assert "RUNPOD_API_KEY" not in spec.env
    assert abs(int(spec.env[DEADLINE_ENV]) - (time.time() + 60)) < 5
    assert spec.start_cmd == ["prefect", "flow-run", "execute"]
    assert config.resolved_api_key() == KEY
    assert KEY not in repr(RunPodJobConfiguration(api_key=KEY))
    assert flow_run_id_of_pod({"name": spec.name}, "runpod") == flow_run_id
    assert flow_run_id_of_pod({"name": pod_name("other-pool", flow_run_id)}, "runpod") is None
    assert flow_run_id_of_pod({"name": "someone-elses-pod"}, "runpod") is None


def test_worker_type_is_found_through_the_collections_entry_point():
    code = (
        "from prefect.workers.base import BaseWorker;"
        "cls = BaseWorker.get_worker_class_from_type('runpod');"
        "print(cls.__module__, cls.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "smelt.deployments.runpod_worker RunPodWorker", out.stderr
