"""End to end: Prefect server (subprocess) -> `runpod` work pool -> `prefect worker start --type
runpod` (subprocess) -> the fake RunPod API -> a pod (local process running `prefect flow-run
execute`) -> the flow run -> the pod's termination, in every outcome."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from smelt.deployments.deploy import PROJECT_DIR, deploy_all, prefect_bin
from tests.deployments.conftest import FINAL_STATES, PrefectAPI
from tests.deployments.fake_runpod import FakeRunPod

pytestmark = pytest.mark.slow

API_KEY = f"rpa_TESTSECRET_{uuid.uuid4().hex}"
GPU_TYPE = "NVIDIA H100 80GB HBM3"  # from tests/deployments/prefect-test.yaml
DEPLOYMENT = "pod-probe/probe"
POOL = "runpod-e2e"  # the pool of tests/deployments/prefect-test.yaml


class Worker:
    """A `prefect worker start --type runpod` subprocess with its output in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    prefect_bin(),
                    "worker",
                    "start",
                    "--pool",
                    POOL,
                    "--type",
                    "runpod",
                    "--name",
                    name,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=PROJECT_DIR,
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
def stack(prefect_server, prefect_api, tmp_path_factory):
    """The fake API, the pool, the probe deployment, and a running worker."""
    work = tmp_path_factory.mktemp("runpod")
    venv_bin = str(Path(sys.executable).parent)
    fake = FakeRunPod(
        API_KEY,
        work / "pods",
        cwd=str(PROJECT_DIR),
        base_env={"PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"},
    ).start()
    env = prefect_server.env(
        {
            "RUNPOD_API_KEY": API_KEY,
            "RUNPOD_API_BASE_URL": fake.base_url,
            "AWS_ACCESS_KEY_ID": "pod-test-key-id",
            "AWS_SECRET_ACCESS_KEY": "pod-test-secret",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_HEARTBEAT_SECONDS": "2",
            "SMELT_RUNPOD_SWEEP_INTERVAL_S": "2",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "SMELT_PROJECT_DIR": str(PROJECT_DIR),
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
    state = {"fake": fake, "env": env, "work": work, "worker": worker, "workers": [worker]}
    yield state
    for each in state["workers"]:
        each.stop()
    fake.stop()


def _run(
    api: PrefectAPI, work: Path, tag: str, seconds: float = 0.0, job_variables: dict | None = None
) -> str:
    run = api.run_deployment(
        DEPLOYMENT,
        {"marker_dir": str(work / "markers"), "seconds": seconds, "tag": tag},
        job_variables,
    )
    return run["id"]


def _pod_of(fake: FakeRunPod, flow_run_id: str):
    pods = [p for p in fake.pods.values() if p.env.get("PREFECT__FLOW_RUN_ID") == flow_run_id]
    return pods[0] if pods else None


def test_flow_run_completes_in_a_pod_which_is_then_terminated(stack, prefect_api, prefect_server):
    fake, work = stack["fake"], stack["work"]
    flow_run_id = _run(prefect_api, work, "ok")
    state = prefect_api.wait_state(flow_run_id, FINAL_STATES, timeout=120)
    pod = _pod_of(fake, flow_run_id)
    assert pod is not None, f"no pod created; worker log:\n{stack['worker'].log_path.read_text()}"
    assert state == "COMPLETED", fake.pod_log(pod)[-3000:]
    assert pod.request["gpuTypeIds"] == [GPU_TYPE]
    assert pod.request["gpuCount"] == 2
    assert pod.request["volumeInGb"] == 20
    assert pod.request["imageName"] == "smelt:test"
    assert pod.request["dockerStartCmd"] == ["prefect", "flow-run", "execute"]
    assert pod.env["PREFECT_API_URL"] == prefect_server.api_url
    assert pod.env["AWS_ACCESS_KEY_ID"] == "pod-test-key-id"
    assert "RUNPOD_API_KEY" not in pod.env
    assert prefect_api.flow_run(flow_run_id)["infrastructure_pid"] == pod.id
    facts = json.loads((work / "markers" / "ok.json").read_text())
    assert facts == {
        "flow_run_id": flow_run_id,
        "has_aws_key": True,
        "has_runpod_key": False,
        "cwd": str(PROJECT_DIR),
    }
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=30)


def test_cancelling_a_running_flow_run_terminates_its_pod(stack, prefect_api):
    fake, work = stack["fake"], stack["work"]
    flow_run_id = _run(prefect_api, work, "cancel-me", seconds=120)
    assert fake.wait_for(lambda: (work / "markers" / "cancel-me.json").exists(), timeout=120)
    assert prefect_api.state_type(flow_run_id) == "RUNNING"
    prefect_api.set_state(flow_run_id, "CANCELLING")
    pod = _pod_of(fake, flow_run_id)
    assert fake.wait_for(lambda: pod.id in fake.terminations, timeout=60)
    assert prefect_api.wait_state(flow_run_id, {"CANCELLED"}, timeout=30) == "CANCELLED"


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
    pods = [p for p in fake.pods.values() if p.request["gpuTypeIds"] == ["NVIDIA H200"]]
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
    assert fake.wait_for(lambda: (work / "markers" / "orphan.json").exists(), timeout=120)
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
    assert fake.wait_for(lambda: (work / "markers" / "worker-stops.json").exists(), timeout=120)
    pod = _pod_of(fake, flow_run_id)
    worker.stop()  # SIGINT, as Ctrl-C or a service manager would
    assert pod.id in fake.terminations
    assert prefect_api.wait_state(flow_run_id, {"CRASHED"}, timeout=30) == "CRASHED"
    assert "worker stopped while the run was going" in worker.log_path.read_text()


def test_api_key_never_reaches_logs_pods_or_run_state(stack, prefect_api):
    fake = stack["fake"]
    assert fake.pods, "the other tests create pods"
    assert fake.unauthorized == 0
    for pod in fake.pods.values():
        assert API_KEY not in json.dumps(pod.request)
        assert API_KEY not in fake.pod_log(pod)
        flow_run_id = pod.env["PREFECT__FLOW_RUN_ID"]
        assert API_KEY not in json.dumps(prefect_api.flow_run(flow_run_id))
        assert API_KEY not in "\n".join(prefect_api.logs(flow_run_id))
    for worker in stack["workers"]:
        log = worker.log_path.read_text()
        assert "Created RunPod pod" in log or "orphaned RunPod pod" in log
        assert API_KEY not in log
