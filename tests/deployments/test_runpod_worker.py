"""End to end: Prefect server (subprocess) -> `runpod` work pool -> `prefect worker start --type
runpod` (subprocess) -> the fake RunPod API (v2, restarting exited containers, failing as
RunPod does on demand) -> a pod (a local process running the image's entrypoint from
deployments/Dockerfile with the pod's environment only) -> the flow run -> the pod's
termination, in every outcome; and a pod lost mid-training, replaced, resuming from S3."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from smelt import storage
from smelt.deployments.deploy import PROJECT_DIR, deploy_all, prefect_bin
from smelt.training.config import TrainConfig
from tests.deployments.conftest import FINAL_STATES, PrefectAPI
from tests.deployments.fake_registry import FakeRegistry
from tests.deployments.fake_runpod import FakeRunPod, Fault, dockerfile_image

pytestmark = pytest.mark.slow

API_KEY = f"rpa_TESTSECRET_{uuid.uuid4().hex}"
GPU_TYPE = "NVIDIA H100 80GB HBM3"  # from tests/deployments/prefect-test.yaml
DEPLOYMENT = "pod-probe/probe"
POOL = "runpod-e2e"  # the pool of tests/deployments/prefect-test.yaml


def _default_sigint() -> None:
    """Ctrl-C as at a terminal: a test run started in the background of a non-interactive shell
    (`cmd &`) ignores SIGINT, and the worker would inherit that; Prefect's handler then passes
    the first SIGINT on to the ignored disposition and the worker never stops."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Worker:
    """A `prefect worker start --type runpod` subprocess with its output in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [prefect_bin(), "worker", "start", "--pool", POOL, "--type", "runpod"]
                + ["--name", name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=PROJECT_DIR,
                preexec_fn=_default_sigint,
            )

    def stop(self) -> None:
        """SIGINT and wait (PITFALLS: before the server goes down)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def stack(prefect_server, prefect_api, tmp_path_factory, s3_server):
    """The fake API and registry, the pool, the test deployments, and a running worker."""
    work = tmp_path_factory.mktemp("runpod")
    registry = FakeRegistry(public={"smelt": {"test"}}, private={"private-smelt": {"test"}})
    registry.start()
    image = f"{registry.host}/smelt:test"
    entrypoint, image_env = dockerfile_image(
        PROJECT_DIR / "deployments" / "Dockerfile", sys.executable, str(PROJECT_DIR.parent)
    )
    s3 = s3_server.env()
    fake = FakeRunPod(
        API_KEY,
        work / "pods",
        images={image: entrypoint, f"{registry.host}/private-smelt:test": entrypoint},
        base_env=image_env,
        cwd=str(PROJECT_DIR),
        secrets={
            "test_aws_key_id": s3["AWS_ACCESS_KEY_ID"],
            "test_aws_secret": s3["AWS_SECRET_ACCESS_KEY"],
        },
    ).start()
    env = prefect_server.env(
        {
            "RUNPOD_API_KEY": API_KEY,
            "RUNPOD_API_BASE_URL": fake.base_url,
            "AWS_ENDPOINT_URL": s3["AWS_ENDPOINT_URL"],
            "AWS_DEFAULT_REGION": s3["AWS_DEFAULT_REGION"],
            "SMELT_WORKER_ONLY": "must not reach pods",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_HEARTBEAT_SECONDS": "2",
            "SMELT_RUNPOD_SWEEP_INTERVAL_S": "2",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "SMELT_PROJECT_DIR": str(PROJECT_DIR),
            "SMELT_TEST_IMAGE": image,
            "PYTHONUNBUFFERED": "1",
        }
    )
    created = subprocess.run(
        [prefect_bin(), "work-pool", "create", POOL, "--type", "runpod"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    deploy_all(env, PROJECT_DIR, prefect_file="tests/deployments/prefect-test.yaml")
    worker = Worker(env, work / "worker-1.log", "worker-1")
    state = {
        "fake": fake,
        "registry": registry,
        "env": env,
        "work": work,
        "worker": worker,
        "workers": [worker],
        "s3": s3,
    }
    yield state
    for each in state["workers"]:
        each.stop()
    fake.stop()
    registry.stop()


def _run(
    api: PrefectAPI,
    work: Path,
    tag: str,
    seconds: float = 0.0,
    job_variables: dict | None = None,
    marker_dir: str | None = None,
    fail: bool = False,
) -> str:
    parameters = {"marker_dir": marker_dir or str(work / "markers"), "seconds": seconds}
    run = api.run_deployment(DEPLOYMENT, {**parameters, "tag": tag, "fail": fail}, job_variables)
    return run["id"]


def _pod_of(fake: FakeRunPod, flow_run_id: str):
    pods = fake.pods_of_run(flow_run_id)
    return pods[0] if pods else None


def _marker(work: Path, tag: str) -> Path:
    return work / "markers" / f"{tag}.json"


def test_flow_run_completes_in_a_pod_which_is_then_terminated(stack, prefect_api, prefect_server):
    fake, work = stack["fake"], stack["work"]
    flow_run_id = _run(prefect_api, work, "ok")
    state = prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=120)
    pod = _pod_of(fake, flow_run_id)
    assert pod is not None, f"no pod created; worker log:\n{stack['worker'].log_path.read_text()}"
    assert state == "COMPLETED", fake.pod_log(pod)[-3000:]
    request = pod.request
    assert request["gpu"]["id"] == GPU_TYPE and request["gpu"]["count"] == 2
    assert request["gpu"]["allowedCudaVersions"][0] == "12.6"
    assert request["mounts"] == {"persistent": {"size": 20, "path": "/workspace"}}
    assert request["image"] == stack["env"]["SMELT_TEST_IMAGE"]
    assert request["args"] == "prefect flow-run execute"
    assert pod.env["PREFECT_API_URL"] == prefect_server.api_url
    assert pod.env["AWS_ACCESS_KEY_ID"] == "{{ RUNPOD_SECRET_test_aws_key_id }}"
    assert pod.env["AWS_ENDPOINT_URL"] == stack["s3"]["AWS_ENDPOINT_URL"]
    assert "RUNPOD_API_KEY" not in pod.env
    assert prefect_api.flow_run(flow_run_id)["infrastructure_pid"] == pod.id
    facts = json.loads(_marker(work, "ok").read_text())
    assert facts == {
        "flow_run_id": flow_run_id,
        "has_aws_key": True,  # the secret, filled in by RunPod
        "has_runpod_key": False,
        "has_worker_only_variable": False,  # the pod's environment only
        "pod_id": pod.id,
        "home": str(pod.home),
        "cwd": str(PROJECT_DIR),
    }
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=30)
    # by the worker, as the run ended (not left to the sweep of orphaned pods)
    terminated = f"Terminated RunPod pod {pod.id}"
    assert fake.wait_for(lambda: terminated in "\n".join(prefect_api.logs(flow_run_id)), 30)
    assert pod.restarts == 0  # the entrypoint idled after the run: nothing to restart
    assert (work / "markers" / "ok.runs").read_text() == f"{pod.id}\n"


def test_a_create_answered_500_after_creating_still_makes_one_pod(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    fake.faults.append(Fault("POST", "/v2/pods", 500, after_effect=True))
    flow_run_id = _run(prefect_api, work, "created-despite-500")
    assert prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=120) == "COMPLETED"
    assert len(fake.pods_of_run(flow_run_id)) == 1
    assert any("Adopted RunPod pod" in line for line in prefect_api.logs(flow_run_id))


def test_what_cannot_work_in_a_pod_is_refused_before_one_is_created(stack, prefect_api):
    fake, work, registry = stack["fake"], stack["work"], stack["registry"]
    flow_run_id = _run(
        prefect_api,
        work,
        "refused",
        marker_dir="s3://bucket/markers",
        job_variables={"image": f"{registry.host}/private-smelt:test", "secrets": {}},
    )
    assert prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=60) == "CRASHED"
    message = prefect_api.flow_run(flow_run_id)["state"]["message"]
    assert "registry_auth_id" in message and "AWS_ACCESS_KEY_ID" in message
    assert fake.pods_of_run(flow_run_id) == []
    assert not [body for body in fake.create_requests if flow_run_id in body["name"]]


def test_a_failed_flow_run_ends_failed_and_its_pod_is_terminated(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    flow_run_id = _run(prefect_api, work, "fails", fail=True)
    assert prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=120) == "FAILED"
    pod = _pod_of(fake, flow_run_id)
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=30)
    said = "pod probe fails failed on purpose"  # the flow's own error, in the run's logs
    assert fake.wait_for(lambda: said in "\n".join(prefect_api.logs(flow_run_id)), timeout=30)
    assert len(fake.pods_of_run(flow_run_id)) == 1  # a failed run is final: no replacement
    assert (work / "markers" / "fails.runs").read_text() == f"{pod.id}\n"  # it ran once


def test_an_api_outage_while_watching_is_ridden_out(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    flow_run_id = _run(prefect_api, work, "api-outage", seconds=20)
    assert fake.wait_for(lambda: _marker(work, "api-outage").exists(), timeout=120)
    pod = _pod_of(fake, flow_run_id)
    # every attempt of one status check (the client's retries included) fails
    fake.faults.extend(Fault("GET", f"/v2/pods/{pod.id}", 503) for _ in range(5))
    assert prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=120) == "COMPLETED"
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=30)
    said = f"Status check of pod {pod.id} failed (1)"
    assert said in "\n".join(prefect_api.logs(flow_run_id))
    assert len(fake.pods_of_run(flow_run_id)) == 1  # an unanswered check is not a lost pod
    assert fake.terminations.count(pod.id) == 1


def test_an_api_outage_while_terminating_still_terminates_the_pod(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    flow_run_id = _run(prefect_api, work, "delete-outage", seconds=5)
    assert fake.wait_for(lambda: _marker(work, "delete-outage").exists(), timeout=120)
    pod = _pod_of(fake, flow_run_id)
    # the first termination fails, retries included; the pod must not be left billing
    fake.faults.extend(Fault("DELETE", f"/v2/pods/{pod.id}", 503) for _ in range(5))
    assert prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=120) == "COMPLETED"
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=60)
    said = f"Could not terminate RunPod pod {pod.id}"
    assert fake.wait_for(lambda: said in "\n".join(prefect_api.logs(flow_run_id)), timeout=30)
    assert fake.terminations.count(pod.id) == 1 and pod not in fake.live_pods()


def test_cancelling_a_running_flow_run_terminates_its_pod(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    flow_run_id = _run(prefect_api, work, "cancel-me", seconds=120)
    assert fake.wait_for(lambda: _marker(work, "cancel-me").exists(), timeout=120)
    assert prefect_api.state_type(flow_run_id) == "RUNNING"
    prefect_api.set_state(flow_run_id, "CANCELLING")
    pod = _pod_of(fake, flow_run_id)
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=60)
    assert prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=30) == "CANCELLED"
    assert len(fake.pods_of_run(flow_run_id)) == 1  # a cancelled run's pod is not replaced


def test_runaway_pod_is_terminated_at_max_runtime(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    flow_run_id = _run(
        prefect_api, work, "runaway", seconds=120, job_variables={"max_runtime_s": 3}
    )
    assert prefect_api.wait_state(flow_run_id, {"CRASHED"}, timeout=120) == "CRASHED"
    pod = _pod_of(fake, flow_run_id)
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=30)
    message = prefect_api.flow_run(flow_run_id)["state"]["message"]
    assert "max_runtime_s=3" in message


def test_a_pod_that_never_starts_the_run_is_terminated_at_the_start_timeout(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    unreachable = "http://127.0.0.1:9/api"
    flow_run_id = _run(
        prefect_api,
        work,
        "never-starts",
        job_variables={
            "start_timeout_s": 15,
            "env": {"PREFECT_API_URL": unreachable, "SMELT_POD_API_WAIT_S": "2"},
        },
    )
    assert prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=120) == "CRASHED"
    pod = _pod_of(fake, flow_run_id)
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=30)
    assert "start_timeout_s=15" in prefect_api.flow_run(flow_run_id)["state"]["message"]
    said = f"cannot reach the Prefect API at {unreachable}"  # the pod's own words, in the run's
    assert fake.wait_for(lambda: said in "\n".join(prefect_api.logs(flow_run_id)), timeout=30)
    assert not _marker(work, "never-starts").exists()


def test_a_restarted_container_never_runs_the_flow_twice(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    flow_run_id = _run(prefect_api, work, "restarted", seconds=60)
    assert fake.wait_for(lambda: _marker(work, "restarted").exists(), timeout=120)
    pod = _pod_of(fake, flow_run_id)
    fake.crash_container(pod.id)  # RunPod restarts it
    assert prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=60) == "CRASHED"
    assert "container restarted" in prefect_api.flow_run(flow_run_id)["state"]["message"]
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=30)
    assert pod.restarts == 1
    assert (work / "markers" / "restarted.runs").read_text() == f"{pod.id}\n"


def test_a_pod_lost_with_no_restarts_left_ends_the_run_crashed(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    flow_run_id = _run(prefect_api, work, "lost", seconds=60, job_variables={"max_restarts": 0})
    assert fake.wait_for(lambda: _marker(work, "lost").exists(), timeout=120)
    pod = _pod_of(fake, flow_run_id)
    fake.lose(pod.id, "EXITED")  # a community host took its GPU back
    assert prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=60) == "CRASHED"
    message = prefect_api.flow_run(flow_run_id)["state"]["message"]
    assert "is EXITED" in message and "max_restarts=0" in message
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=30)  # stops its billing
    assert len(fake.pods_of_run(flow_run_id)) == 1


def test_a_pod_lost_mid_training_is_replaced_and_training_resumes_from_s3(
    stack, prefect_api, s3_bucket, tmp_path
):
    """The pod disappears after a checkpoint reached S3; the replacement resumes from the
    newest complete one, and the losses are those of a run nobody interrupted."""
    from tests.training.conftest import build_tokenizer, child_env, run_loop, train_args
    from tests.training.conftest import write_shards as write_training_shards

    fake = stack["fake"]
    local_shards = tmp_path / "shards"
    local_shards.mkdir()
    build_tokenizer(local_shards / "tokenizer.json")
    write_training_shards(local_shards, local_shards / "tokenizer.json")
    shards = f"{s3_bucket}/shards"
    for path in sorted(local_shards.rglob("*")):
        if path.is_file():
            storage.put_file(str(path), f"{shards}/{path.relative_to(local_shards)}")
    output = f"{s3_bucket}/runs/preempted"
    flags = ["--checkpoint-every", "10", "--keep-last", "2", "--log-every", "1"]
    args = train_args(shards, output, *flags, steps=60)
    config = _train_config(args)
    run = prefect_api.run_deployment("paced-train/paced", {"config": config, "step_delay_s": 0.15})
    flow_run_id = run["id"]
    assert fake.wait_for(lambda: _uploaded_through(output, 20), timeout=180, interval=0.05), stack[
        "worker"
    ].log_path.read_text()[-3000:]
    first = _pod_of(fake, flow_run_id)
    fake.lose(first.id, "gone")  # the host failed: no goodbye, RunPod forgets the pod
    state = prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=300)
    pods = fake.pods_of_run(flow_run_id)
    assert state == "COMPLETED", fake.pod_log(pods[-1])[-3000:]
    assert fake.wait_for(lambda: "summary: " in "\n".join(prefect_api.logs(flow_run_id)), 30)
    logs = "\n".join(prefect_api.logs(flow_run_id))
    assert [pod.env["SMELT_POD_ATTEMPT"] for pod in pods] == ["0", "1"]
    assert "replacing it (replacement 1 of 2)" in logs
    summary = json.loads(re.findall(r"summary: (\{.*\})", logs)[-1])
    resumed = summary["resumed_from"]
    assert resumed is not None and resumed >= 20 and resumed % 10 == 0 and resumed < 60
    assert f"first step in this pod: {resumed + 1}" in logs  # nothing before it recomputed
    assert fake.wait_for(lambda: pods[1].id in fake.terminations, timeout=30)

    lines = storage.read_text(f"{output}/metrics.jsonl").splitlines()
    metrics = [json.loads(line) for line in lines if line]
    assert [record["step"] for record in metrics] == list(range(1, 61))
    reference = tmp_path / "uninterrupted"
    reference_env = child_env(**stack["s3"], SMELT_CACHE_DIR=str(tmp_path / "cache"))
    run_loop(train_args(shards, str(reference), *flags, steps=60), env=reference_env)
    expected = [json.loads(line)["loss"] for line in (reference / "metrics.jsonl").open()]
    assert [record["loss"] for record in metrics] == expected  # bit for bit


def _uploaded_through(output: str, step: int) -> bool:
    """Checkpoint `step` is complete on S3 and so is the metrics.jsonl mirrored after it
    (the uploader writes the run files after the step's marker)."""
    if not storage.exists(f"{output}/step_{step:08d}/COMPLETE"):
        return False
    try:
        lines = storage.read_text(f"{output}/metrics.jsonl").splitlines()
    except Exception:  # noqa: BLE001 - not there yet
        return False
    return bool(lines) and json.loads(lines[-1])["step"] >= step


def _train_config(args: list[str]) -> dict:
    """The TrainConfig that `smelt train ARGS` would run, as the flow's JSON parameter."""
    import argparse

    parser = argparse.ArgumentParser()
    TrainConfig.add_arguments(parser)
    return TrainConfig.from_args(parser.parse_args(args)).to_dict()


def test_pipeline_dispatches_training_to_the_gpu_pool(stack, prefect_server, tmp_path):
    """`run_deployment("train/fake-pod")` from a flow: the real train flow runs in a pod with
    the GPU type the pipeline asked for, writes its metrics, and the pod is terminated."""
    from tests.training.conftest import build_tokenizer, write_shards

    fake = stack["fake"]
    shards = tmp_path / "shards"
    shards.mkdir()
    build_tokenizer(shards / "tokenizer.json")
    write_shards(shards, shards / "tokenizer.json")
    output = tmp_path / "run"
    code = (
        "import json; from tests.deployments.flows_for_tests import dispatch_train; "
        f"print(json.dumps(dispatch_train({str(shards)!r}, {str(output)!r}, 'NVIDIA H200')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=stack["env"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=400,
    )
    pods = [p for p in fake.pods.values() if p.request["gpu"]["id"] == "NVIDIA H200"]
    assert pods, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.returncode == 0, fake.pod_log(pods[0])[-3000:] + result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "completed" and outcome["deployment"] == "train/fake-pod"
    assert pods[0].env["PREFECT__FLOW_RUN_ID"] == outcome["flow_run_id"]
    steps = [json.loads(line)["step"] for line in (output / "metrics.jsonl").open()]
    assert steps[-1] == 2
    assert fake.wait_for(lambda: pods[0].id in fake.terminations, timeout=30)


def test_pods_of_a_killed_worker_are_cleaned_up_by_the_next_worker(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    flow_run_id = _run(prefect_api, work, "orphan", seconds=3)
    assert fake.wait_for(lambda: _marker(work, "orphan").exists(), timeout=120)
    stack["worker"].kill()  # SIGKILL: no cleanup of its own
    pod = _pod_of(fake, flow_run_id)
    # the pod itself reports the run's end; nobody terminates it
    assert prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=60) == "COMPLETED"
    assert pod.id not in fake.terminations
    second = Worker(stack["env"], work / "worker-2.log", "worker-2")
    stack["workers"].append(second)
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=60), (
        second.log_path.read_text()
    )
    assert fake.wait_for(lambda: "orphaned RunPod pod" in second.log_path.read_text(), 30)


def test_stopping_the_worker_terminates_its_running_pod(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    worker = stack["workers"][-1]
    flow_run_id = _run(prefect_api, work, "worker-stops", seconds=120)
    assert fake.wait_for(lambda: _marker(work, "worker-stops").exists(), timeout=120)
    pod = _pod_of(fake, flow_run_id)
    worker.stop()  # SIGINT, as Ctrl-C or a service manager would
    assert pod.id in fake.terminations
    assert prefect_api.wait_state(flow_run_id, {"CRASHED"}, timeout=30) == "CRASHED"
    assert "worker stopped while the run was going" in worker.log_path.read_text()


def test_no_credential_reaches_logs_pods_requests_or_run_state(stack, prefect_api):
    fake = stack["fake"]
    secret = stack["s3"]["AWS_SECRET_ACCESS_KEY"]
    assert fake.pods, "the other tests create pods"
    assert fake.unauthorized == 0
    for body in fake.create_requests:
        assert API_KEY not in json.dumps(body) and secret not in json.dumps(body)
    for pod in fake.pods.values():
        assert API_KEY not in fake.pod_log(pod) and secret not in fake.pod_log(pod)
        flow_run_id = pod.env["PREFECT__FLOW_RUN_ID"]
        assert API_KEY not in json.dumps(prefect_api.flow_run(flow_run_id))
        assert API_KEY not in "\n".join(prefect_api.logs(flow_run_id))
        assert secret not in "\n".join(prefect_api.logs(flow_run_id))
    for worker in stack["workers"]:
        log = worker.log_path.read_text()
        assert "Created RunPod pod" in log or "orphaned RunPod pod" in log
        assert API_KEY not in log and secret not in log
