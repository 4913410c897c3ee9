"""`bench/gpu_check.sh` on CPU: every row of the GPU check that can run without a GPU (data,
training, doc masking, checkpoint stall, kill and resume, KV-cache generation, export) runs
through the same script and the same code paths with a narrow model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_runs_every_cpu_path_and_prints_one_table(tmp_path):
    env = {
        **os.environ,
        "SMELT_GPU_PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        "SMELT_CACHE_DIR": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--device", "cpu", "--tiny"]
        + ["--work", str(tmp_path / "work")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    checks = [row.split("|")[1].strip() for row in rows[1:]]
    assert checks == [
        "data",
        "train (fp32, eager)",
        "checkpoint stall",
        "train + doc mask (SDPA mask, fp32, eager)",
        "kill and resume",
        "generate (KV cache)",
        "export-hf",
    ]
    assert all(row.split("|")[2].strip() == "yes" for row in rows[1:]), out
    assert "losses identical" in out and "equal full recomputation" in out


def test_gpu_check_refuses_to_pretend_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--device cpu --tiny" in result.stdout
