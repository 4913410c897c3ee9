"""AdamW with weight-decay groups, and the optimizer state as flat tensors + JSON.

Weight decay applies to the matrices of linear layers only: norms' gains, biases and embeddings
are excluded (GPT-2/nanoGPT; decaying an embedding pulls rare tokens' vectors to zero). The fused
CUDA kernel is used on GPU. The state is stored as safetensors (tensors) plus JSON (the groups'
hyperparameters), keyed by parameter name, so loading it never unpickles anything.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from smelt.errors import IntegrityError
from smelt.training.config import TrainConfig

log = logging.getLogger(__name__)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: linear weights (decayed) and everything else (not decayed)."""
    embedding_params = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        if param.ndim >= 2 and id(param) not in embedding_params:
            decay.append(param)
        else:
            no_decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module, config: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    """AdamW over `decay_groups`, fused on CUDA (one kernel for all parameters)."""
    groups = decay_groups(model, config.weight_decay)
    fused = device.type == "cuda"
    log.info(
        "AdamW: %d decayed tensors, %d not decayed, fused=%s",
        len(groups[0]["params"]),
        len(groups[1]["params"]),
        fused,
    )
    return torch.optim.AdamW(
        groups,
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
        fused=fused or None,
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def state_tensors(
    model: nn.Module, optimizer: torch.optim.Optimizer, full: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flat `{"<param name>/<key>": tensor}` and the JSON part (groups) of the optimizer state.

    Tensors are references (the caller copies them); `full` gathers FSDP shards to rank 0 CPU
    (torch.distributed.checkpoint, imported only then: it costs seconds of start-up).
    """
    if full:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        state = get_optimizer_state_dict(
            model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    else:
        state = _by_name(optimizer.state_dict(), _param_names(model, optimizer))
    if not state:  # FSDP ranks other than 0 receive nothing
        return {}, {"param_groups": []}
    tensors = {
        f"{name}/{key}": value
        for name, entry in state["state"].items()
        for key, value in entry.items()
    }
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
        for group in state["param_groups"]
    ]
    return tensors, {"param_groups": groups}


def load_state_tensors(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    full: bool = False,
) -> None:
    """Inverse of `state_tensors` (onto the optimizer's current parameters)."""
    state: dict[str, dict[str, torch.Tensor]] = {}
    for flat, value in tensors.items():
        name, _, key = flat.rpartition("/")
        state.setdefault(name, {})[key] = value
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in group.items()}
        for group in meta["param_groups"]
    ]
    try:
        if full:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_optimizer_state_dict,
            )

            set_optimizer_state_dict(
                model,
                optimizer,
                {"state": state, "param_groups": groups},
                options=StateDictOptions(full_state_dict=True),
            )
            return
        names = _param_names(model, optimizer)
        index = {name: i for i, name in enumerate(names)}
        optimizer.load_state_dict(
            {
                "state": {index[name]: entry for name, entry in state.items()},
                "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in groups],
            }
        )
    except (KeyError, RuntimeError, ValueError) as exc:
        raise IntegrityError(
            f"optimizer state does not fit this model ({exc}); the checkpoint "
            "belongs to another architecture"
        ) from exc


class OptimizerState:
    """The optimizer as a checkpoint component: `{"tensors": {"<param>/<key>": tensor},
    "param_groups": [...]}`, keyed by parameter name (`full`: FSDP shards gathered to rank 0)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, full: bool) -> None:
        self.model, self.optimizer, self.full = model, optimizer, full

    def state_dict(self) -> dict[str, Any]:
        tensors, groups = state_tensors(self.model, self.optimizer, full=self.full)
        return {"tensors": tensors, **groups}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        groups = {k: v for k, v in state.items() if k != "tensors"}
        load_state_tensors(self.model, self.optimizer, state["tensors"], groups, full=self.full)


def _param_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Parameter names in the optimizer's index order (the order of `state_dict()`)."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def _by_name(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {
        "state": {names[i]: entry for i, entry in state["state"].items()},
        "param_groups": [
            {**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]
        ],
    }
