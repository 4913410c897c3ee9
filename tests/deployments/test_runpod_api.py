"""The RunPod v2 client against the fake API over real HTTP, the fake against RunPod's spec, the
pod the job configuration describes, and the `runpod` worker type's registration through
smelt's `prefect.collections` entry point."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from smelt.deployments.runpod_api import (
    CreateOutcomeUnknown,
    PodSpec,
    RunPodClient,
    RunPodError,
    redact,
    retry_after_s,
)
from smelt.deployments.runpod_job import (
    ATTEMPT_ENV,
    DEADLINE_ENV,
    RunPodJobConfiguration,
    flow_run_id_of_pod,
    pod_name,
)
from smelt.errors import ConfigError
from tests.deployments.fake_runpod import CREATE_POD, FakeRunPod, Fault, schema_validator

KEY = "rpa_UNIT_" + uuid.uuid4().hex


@pytest.fixture
def fake(tmp_path):
    server = FakeRunPod(KEY, tmp_path / "pods", images={"img:1": ["sleep", "30"]}).start()
    yield server
    server.stop()


class RecordedSleep:
    """Stands in for anyio.sleep: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _client(fake: FakeRunPod, key: str = KEY, **kwargs) -> RunPodClient:
    return RunPodClient(key, fake.base_url, **kwargs)


def _spec(name: str = "smelt-runpod-x", **env: str) -> PodSpec:
    return PodSpec(name=name, image="img:1", gpu_type="NVIDIA L40S", gpu_count=2, env=env)


def test_pod_lifecycle_on_v2_and_env_values_arrive_exactly(fake):
    tricky = "say \"hi\"\nthen {leave} \\ $HOME 'quoted'"

    async def scenario():
        async with _client(fake) as runpod:
            pod = await runpod.create_pod(_spec(TRICKY=tricky))
            listed = await runpod.list_pods()
            named = await runpod.pods_named("smelt-runpod-x")
            got = await runpod.get_pod(pod["id"])
            first = await runpod.terminate_pod(pod["id"])
            second = await runpod.terminate_pod(pod["id"])
            after = await runpod.list_pods()
            return pod, listed, named, got, first, second, after

    pod, listed, named, got, first, second, after = asyncio.run(scenario())
    assert pod["status"] == "PROVISIONING"
    assert [p["id"] for p in listed] == [p["id"] for p in named] == [pod["id"]]
    assert got["gpu"] == {"id": "NVIDIA L40S", "count": 2}
    assert (first, second) == (True, False)  # a pod already gone is not an error
    assert after == []
    request = fake.pods[pod["id"]].request
    assert request["env"]["TRICKY"] == tricky
    process = fake.pods[pod["id"]].process  # the container stops behind the answer
    assert fake.wait_for(lambda: process is None or process.poll() is not None, timeout=20)


def test_the_fake_answers_as_the_spec_describes(fake):
    pod = fake.create(_spec().to_json())
    assert fake.wait_for(lambda: pod.status == "RUNNING", timeout=10)
    errors = list(schema_validator("Pod").iter_errors(pod.to_json()))
    assert not errors, errors
    listing = httpx.get(f"{fake.base_url}/pods", headers={"Authorization": f"Bearer {KEY}"})
    assert not list(schema_validator("ListPodsResponse").iter_errors(listing.json()))
    assert "RateLimit" in listing.headers
    missing = httpx.get(f"{fake.base_url}/pods/nope", headers={"Authorization": f"Bearer {KEY}"})
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert not list(schema_validator("ErrorResponse").iter_errors(missing.json()))


def test_every_body_the_job_sends_matches_the_create_contract(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.org")
    for variables in (
        {},
        {"volume_gb": 0, "registry_auth_id": "reg1", "cloud_type": "COMMUNITY"},
        {"allowed_cuda_versions": [], "secrets": {"AWS_ACCESS_KEY_ID": "aws_key"}},
    ):
        config = RunPodJobConfiguration(env={"PREFECT__FLOW_RUN_ID": "x"}, **variables)
        body = config.pod_spec("runpod", uuid.uuid4()).to_json()
        assert not list(CREATE_POD.iter_errors(body)), body
    broken = {**body, "gpu": {"id": "NVIDIA L40S", "count": 0}, "dockerStartCmd": ["x"]}
    messages = " ".join(e.message for e in CREATE_POD.iter_errors(broken))
    assert "less than the minimum of 1" in messages and "dockerStartCmd" in messages


def test_a_create_that_fails_after_creating_is_not_repeated(fake):
    fake.faults.append(Fault("POST", "/v2/pods", 500, after_effect=True))
    sleep = RecordedSleep()

    async def create():
        async with _client(fake, sleep=sleep) as runpod:
            return await runpod.create_pod(_spec())

    with pytest.raises(CreateOutcomeUnknown, match="may have been created"):
        asyncio.run(create())
    assert len(fake.create_requests) == 1 and len(fake.live_pods()) == 1
    assert sleep.waits == []


def test_a_create_whose_answer_is_lost_is_not_repeated(fake):
    fake.faults.append(Fault("POST", "/v2/pods", drop=True))

    async def create():
        async with _client(fake, sleep=RecordedSleep()) as runpod:
            return await runpod.create_pod(_spec())

    with pytest.raises(CreateOutcomeUnknown):
        asyncio.run(create())
    assert len(fake.create_requests) == 1


def test_429_is_retried_after_the_servers_retry_after(fake):
    fake.faults += [
        Fault("POST", "/v2/pods", 429, retry_after=7),
        Fault("GET", "/v2/pods", 429, retry_after=3),
    ]
    sleep = RecordedSleep()

    async def scenario():
        async with _client(fake, sleep=sleep) as runpod:
            pod = await runpod.create_pod(_spec())
            return pod, await runpod.list_pods()

    pod, listed = asyncio.run(scenario())
    assert sleep.waits == [7.0, 3.0]
    assert [p["id"] for p in listed] == [pod["id"]]
    assert len(fake.live_pods()) == 1


def test_reads_and_terminations_are_retried_after_server_errors(fake):
    pod = fake.create(_spec().to_json())
    fake.faults += [Fault("GET", "/v2/pods", 503), Fault("DELETE", "/v2/pods/", 502)]
    sleep = RecordedSleep()

    async def scenario():
        async with _client(fake, sleep=sleep, backoff_s=0.25) as runpod:
            return await runpod.list_pods(), await runpod.terminate_pod(pod.id)

    listed, terminated = asyncio.run(scenario())
    assert [p["id"] for p in listed] == [pod.id] and terminated
    assert sleep.waits == [0.25, 0.25]
    assert fake.terminations == [pod.id]


def test_retry_after_reads_seconds_dates_and_exhausted_rate_windows():
    def response(**headers: str) -> httpx.Response:
        return httpx.Response(429, headers=headers)

    assert retry_after_s(response(**{"Retry-After": "12"}), 1.0) == 12.0
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_s(response(**{"Retry-After": soon}), 1.0) <= 31
    limits = '"minute";r=0;t=12, "hour";r=2800;t=1812'
    assert retry_after_s(response(RateLimit=limits), 1.0) == 12.0
    assert retry_after_s(response(), 1.5) == 1.5
    assert retry_after_s(response(**{"Retry-After": "99999"}), 1.0) == 300.0


def test_errors_are_problem_details_and_never_show_the_key(fake):
    wrong = "rpa_WRONG_" + uuid.uuid4().hex

    async def create(key: str, spec: PodSpec):
        async with _client(fake, key, sleep=RecordedSleep()) as runpod:
            return await runpod.create_pod(spec)

    with pytest.raises(RunPodError) as info:
        asyncio.run(create(wrong, _spec()))
    assert "401" in str(info.value) and "RUNPOD_API_KEY" in str(info.value)
    assert wrong not in str(info.value)
    invalid = PodSpec(name="x", image="img:1", gpu_type="NVIDIA L40S", gpu_count=0)
    with pytest.raises(RunPodError) as info:
        asyncio.run(create(KEY, invalid))
    assert info.value.status == 422 and "minimum" in str(info.value)
    fake.balance = False
    with pytest.raises(RunPodError, match="insufficient balance") as info:
        asyncio.run(create(KEY, _spec()))
    assert info.value.status == 402
    with pytest.raises(ConfigError):
        RunPodClient(None, fake.base_url)


def test_redact_removes_every_secret():
    assert redact("key=abc and abc again", ["abc", None, ""]) == "key=*** and *** again"


def test_log_tail_and_registry_credentials(fake):
    fake.registries = {"reg1": "ghcr-private"}
    pod = fake.create({**_spec().to_json(), "image": "unknown/image:1"})
    assert fake.wait_for(lambda: "pull access denied" in fake.pod_log(pod), timeout=10)

    async def scenario():
        async with _client(fake) as runpod:
            tail = await runpod.pod_log_tail(pod.id, lines=3, wait_s=1.0)
            return tail, await runpod.get_registry("reg1"), await runpod.get_registry("nope")

    tail, known, unknown = asyncio.run(scenario())
    assert tail and all("pull access denied" in line for line in tail)
    assert known == {"id": "reg1", "name": "ghcr-private"} and unknown is None


def test_pod_env_uses_runpod_secrets_and_never_the_runpod_key(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.org")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "never-forwarded")
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    config = RunPodJobConfiguration(
        env={"PREFECT__FLOW_RUN_ID": "x", "RUNPOD_API_KEY": KEY},
        command="prefect flow-run execute",
        max_runtime_s=60,
        secrets={"AWS_ACCESS_KEY_ID": "aws_key_id", "AWS_SECRET_ACCESS_KEY": "aws_secret"},
        fallback_gpu_types=["NVIDIA H200", "NVIDIA GeForce RTX 4090"],
    )
    flow_run_id = uuid.uuid4()
    spec = config.pod_spec("runpod", flow_run_id, attempt=2)
    assert spec.env["AWS_ACCESS_KEY_ID"] == "{{ RUNPOD_SECRET_aws_key_id }}"
    assert spec.env["AWS_SECRET_ACCESS_KEY"] == "{{ RUNPOD_SECRET_aws_secret }}"
    assert spec.env["AWS_ENDPOINT_URL_S3"] == "https://s3.example.org"
    assert "RUNPOD_API_KEY" not in spec.env and KEY not in str(spec.to_json())
    assert "never-forwarded" not in str(spec.to_json())
    assert abs(int(spec.env[DEADLINE_ENV]) - (time.time() + 60)) < 5
    assert spec.env[ATTEMPT_ENV] == "2"
    assert spec.args == "prefect flow-run execute"
    assert config.gpu_types == ["NVIDIA GeForce RTX 4090", "NVIDIA H200"]
    assert config.resolved_api_key() == KEY
    assert KEY not in repr(RunPodJobConfiguration(api_key=KEY))
    assert flow_run_id_of_pod({"name": spec.name}, "runpod") == flow_run_id
    assert flow_run_id_of_pod({"name": pod_name("other-pool", flow_run_id)}, "runpod") is None
    assert flow_run_id_of_pod({"name": "someone-elses-pod"}, "runpod") is None
    with pytest.raises(ValueError, match="at least 10"):
        RunPodJobConfiguration(volume_gb=5)


def test_worker_type_is_found_through_the_collections_entry_point():
    code = (
        "from prefect.workers.base import BaseWorker;"
        "cls = BaseWorker.get_worker_class_from_type('runpod');"
        "print(cls.__module__, cls.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "smelt.deployments.runpod_worker RunPodWorker", out.stderr


def test_the_readme_names_every_job_variable():
    from smelt.deployments.deploy import PROJECT_DIR
    from smelt.deployments.runpod_job import RunPodVariables

    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme.split("### Training on RunPod for real", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in RunPodVariables.model_fields if f"`{name}`" not in section]
    assert not missing, f"README's RunPod section does not name {missing}"


def test_the_fake_restarts_exited_containers_and_gives_pods_their_own_environment(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("SMELT_WORKER_ONLY", "the worker's, not the pod's")
    images = {
        "crashy:1": ["sh", "-c", "echo started; exit 3"],
        "envdump:1": ["sh", "-c", 'env > "$HOME/env.txt"; sleep 30'],
    }
    fake = FakeRunPod(
        KEY,
        tmp_path / "pods",
        images=images,
        base_env={"PATH": "/usr/bin:/bin"},
        secrets={"s3_key": "resolved-secret"},
        restart_delay_s=0.1,
    ).start()
    try:
        crashy = fake.create({**_spec().to_json(), "image": "crashy:1"})
        env = {"AWS_SECRET_ACCESS_KEY": "{{ RUNPOD_SECRET_s3_key }}", "PLAIN": "value"}
        dumper = fake.create({**_spec(**env).to_json(), "image": "envdump:1"})
        assert fake.wait_for(lambda: crashy.restarts >= 2, timeout=20)
        assert "container exited with code 3; restarting it" in fake.pod_log(crashy)
        dump = dumper.home / "env.txt"
        assert fake.wait_for(dump.exists, timeout=20)
        seen = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
        assert seen["AWS_SECRET_ACCESS_KEY"] == "resolved-secret" and seen["PLAIN"] == "value"
        assert seen["RUNPOD_POD_ID"] == dumper.id and seen["HOME"] == str(dumper.home)
        assert "SMELT_WORKER_ONLY" not in seen
        assert dumper.to_json()["env"]["AWS_SECRET_ACCESS_KEY"].startswith("{{")  # not echoed
    finally:
        fake.stop()


def test_killing_a_gone_pod_is_infrastructure_not_found(fake):
    from prefect.exceptions import InfrastructureNotFound

    from smelt.deployments.runpod_worker import RunPodWorker

    pod = fake.create(_spec().to_json())
    config = RunPodJobConfiguration(api_key=KEY, api_base_url=fake.base_url)
    worker = RunPodWorker(work_pool_name="runpod")
    asyncio.run(worker.kill_infrastructure(pod.id, config))
    assert fake.terminations == [pod.id]
    with pytest.raises(InfrastructureNotFound):
        asyncio.run(worker.kill_infrastructure(pod.id, config))
