"""Training metrics: `metrics.jsonl` (one object per optimizer step), TensorBoard, throughput, MFU.

MFU (model FLOPs utilization, Chowdhery et al. 2022, PaLM appendix B) divides the FLOPs the model
needs per token (`Decoder.estimate_flops_per_token`) times tokens/s by the hardware's peak: the
dense bf16 peak of known GPUs below (vendor data sheets, without sparsity), or `--peak-flops`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

log = logging.getLogger(__name__)

# Dense bf16 tensor-core peak FLOP/s per GPU (NVIDIA data sheets).
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10G": 70e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
}


def peak_flops(device: torch.device, override: float | None = None) -> float | None:
    """Peak FLOP/s of one device, or None when unknown (CPU: MFU is not reported)."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_FLOPS.items():  # most specific names first
        if key in name:
            return value
    return None


def read_metrics(path: str) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl (complete lines only)."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n") and line.strip():
                records.append(json.loads(line))
    return records


def truncate_metrics(path: str, last_step: int) -> None:
    """Keep only the records of steps <= `last_step` (a resumed run re-runs the rest)."""
    if not os.path.exists(path):
        return
    kept = [r for r in read_metrics(path) if r["step"] <= last_step]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(tmp, path)


@dataclass
class Throughput:
    """Tokens/s and MFU over the steps since the last report (excluding eval and setup)."""

    flops_per_token: float
    peak: float | None
    world_size: int = 1
    _tokens: int = 0
    _seconds: float = 0.0
    _started: float | None = field(default=None)

    def start(self) -> None:
        self._started = time.perf_counter()

    def stop(self, tokens: int) -> None:
        if self._started is not None:
            self._seconds += time.perf_counter() - self._started
            self._tokens += tokens
            self._started = None

    def report(self) -> dict[str, float]:
        if self._seconds <= 0:
            return {}
        tokens_per_s = self._tokens / self._seconds
        result = {"tokens_per_s": round(tokens_per_s, 2)}
        if self.peak:
            result["mfu"] = round(
                tokens_per_s * self.flops_per_token / (self.peak * self.world_size), 5
            )
        self._tokens, self._seconds = 0, 0.0
        return result


class MetricsLogger:
    """Appends one JSON line per step to metrics.jsonl and mirrors scalars to TensorBoard."""

    def __init__(self, path: str, tensorboard_dir: str | None, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self._file = None
        self._writer = None
        if not enabled:
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=tensorboard_dir)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            step = record["step"]
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float) and value is not None:
                    tag = "val/loss" if key == "val_loss" else f"train/{key}"
                    self._writer.add_scalar(key if "/" in key else tag, value, step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None
