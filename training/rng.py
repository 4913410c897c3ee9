"""Every random number generator a training step may draw from, captured and restored as JSON.

A resumed run is bit-for-bit the same run only if dropout masks, sampling and any library-level
randomness continue where they stopped: Python's `random`, NumPy's global generator, torch's CPU
generator and each CUDA device's generator. Torch states are byte tensors, stored as base64.
"""

from __future__ import annotations

import base64
import random
from typing import Any

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed every generator (before the model is built, so initial weights follow the seed)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _encode(state: torch.Tensor) -> str:
    return base64.b64encode(state.cpu().numpy().tobytes()).decode("ascii")


def _decode(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


def capture() -> dict[str, Any]:
    """JSON-safe snapshot of all generator states of this process."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": _encode(torch.get_rng_state()),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_encode(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore(state: dict[str, Any]) -> None:
    """Put every generator back to a `capture()`d state."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_decode(state["torch"]))
    if state.get("cuda") and torch.cuda.is_available():
        cuda_states = [_decode(s) for s in state["cuda"]]
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])


class RNGState:
    """This process's generators as a checkpoint component (one state per rank)."""

    def state_dict(self) -> dict[str, Any]:
        return capture()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        restore(state)
