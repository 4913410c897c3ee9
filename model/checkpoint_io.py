"""Model weights on disk: safetensors only.

safetensors holds raw tensors and a string->string header, so loading a file can never execute
code (unlike pickle-based `torch.load`). The model config rides along in the header as JSON, so a
weights file alone rebuilds its model. Optimizer/RNG state belongs to training/ and is not here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from smelt.errors import IntegrityError
from smelt.model.config import ModelConfig
from smelt.model.decoder import Decoder

CONFIG_KEY = "smelt_model_config"
_WRAPPER_PREFIXES = ("_orig_mod.", "module.")  # torch.compile, DDP


def clean_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the prefixes that torch.compile and DDP add to parameter names."""
    cleaned = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        cleaned[key] = value
    return cleaned


def save_weights(
    model: Decoder | Mapping[str, torch.Tensor], path: str | Path, config: ModelConfig | None = None
) -> Path:
    """Write a model (or state dict) to `path` as safetensors, with its config in the header."""
    if isinstance(model, Decoder):
        config = config or model.config
        state = model.state_dict()
    else:
        state = dict(model)
    tensors = {k: v.detach().contiguous().cpu() for k, v in clean_state_dict(state).items()}
    metadata = {"format": "pt"}
    if config is not None:
        metadata[CONFIG_KEY] = json.dumps(config.to_dict(), sort_keys=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_weights(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], ModelConfig | None]:
    """State dict and (when recorded) model config of a safetensors file."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise IntegrityError(f"cannot read weights file {path}: {exc}") from exc
    config = None
    if CONFIG_KEY in metadata:
        config = ModelConfig.from_dict(json.loads(metadata[CONFIG_KEY]))
    return clean_state_dict(state), config


def load_state(model: Decoder, path: str | Path, strict: bool = True) -> Decoder:
    """Load weights from a safetensors file into `model` (on the model's device)."""
    state, _ = load_weights(path, device=model.embed.weight.device)
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise IntegrityError(f"weights in {path} do not fit this model: {exc}") from exc
    return model


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Decoder:
    """Rebuild a `Decoder` from a weights file written by `save_weights`."""
    state, config = load_weights(path, device=device)
    if config is None:
        raise IntegrityError(
            f"{path} has no {CONFIG_KEY} header; load it with load_state into "
            "a model built from its config"
        )
    with torch.device(device):
        model = Decoder(config)
    model.load_state_dict(state, strict=True)
    return model
