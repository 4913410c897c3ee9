"""Components of the loop on their own: schedule, optimizer groups, RNG, checkpoint files."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from smelt.errors import ConfigError, IntegrityError
from smelt.model.decoder import Decoder
from smelt.model.presets import get_preset
from smelt.training import checkpoint, optim, rng
from smelt.training.checkpoint import RunLayout, Snapshot, StepLayout
from smelt.training.config import TrainConfig, parse_overrides
from smelt.training.schedule import LRSchedule


def _config(**changes) -> TrainConfig:
    return TrainConfig(shards="s", output="o", **changes)


def _tiny_model() -> Decoder:
    torch.manual_seed(0)
    return Decoder(
        get_preset(
            "test", vocab_size=64, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, ffn_hidden=64
        )
    )


def test_wsd_schedule_warms_up_holds_and_decays() -> None:
    sched = LRSchedule.from_config(_config(max_steps=100, warmup_steps=10, lr=1e-3))
    lrs = [sched.lr_at(s) for s in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(lr == 1e-3 for lr in lrs[10:80])  # stable until the last 20%
    assert sched.decay_start == 80
    assert all(a > b for a, b in zip(lrs[80:100], lrs[81:101], strict=True))
    assert lrs[100] == pytest.approx(1e-4) and lrs[109] == pytest.approx(1e-4)


def test_cosine_schedule_and_state_roundtrip() -> None:
    sched = LRSchedule.from_config(_config(max_steps=50, warmup_steps=5, schedule="cosine"))
    assert sched.decay_start == 5
    mid = sched.lr_at(5 + 22)
    assert sched.min_lr < mid < sched.peak_lr
    again = LRSchedule.from_config(_config(max_steps=10))
    again.load_state_dict(json.loads(json.dumps(sched.state_dict())))
    assert [again.lr_at(s) for s in range(60)] == [sched.lr_at(s) for s in range(60)]


def test_decay_groups_exclude_norms_and_embeddings() -> None:
    model = _tiny_model()
    decay, no_decay = optim.decay_groups(model, 0.1)
    decayed = {id(p) for p in decay["params"]}
    assert id(model.embed.weight) not in decayed
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert names and all(n.endswith("proj.weight") for n in names)
    assert all(p.ndim == 1 or p is model.embed.weight for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0


def test_optimizer_state_roundtrip_by_name() -> None:
    model = _tiny_model()
    opt = optim.build_optimizer(model, _config(), torch.device("cpu"))
    idx = torch.randint(0, 64, (2, 8))
    model(idx, targets=idx).loss.backward()
    opt.step()
    tensors, meta = optim.state_tensors(model, opt)
    assert "embed.weight/exp_avg" in tensors
    fresh = _tiny_model()
    fresh.load_state_dict(model.state_dict())
    fresh_opt = optim.build_optimizer(fresh, _config(), torch.device("cpu"))
    optim.load_state_tensors(
        fresh, fresh_opt, {k: v.clone() for k, v in tensors.items()}, json.loads(json.dumps(meta))
    )
    opt.zero_grad()
    for opt_ in (opt, fresh_opt):
        model_ = model if opt_ is opt else fresh
        model_(idx, targets=idx).loss.backward()
        opt_.step()
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)


def test_rng_capture_restore_is_exact() -> None:
    rng.seed_all(7)
    state = json.loads(json.dumps(rng.capture()))
    first = (random.random(), np.random.rand(), torch.rand(3))
    rng.restore(state)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])


def _snapshot(step: int) -> Snapshot:
    model = _tiny_model()
    return Snapshot(
        step,
        model.config,
        dict(model.state_dict()),
        {"embed.weight/exp_avg": torch.ones(3)},
        {
            StepLayout.TRAINER: {
                "step": step,
                "tokens": 0,
                "world_size": 1,
                "model_config": model.config.to_dict(),
            },
            StepLayout.RANKS: [{"rank": 0}],
            StepLayout.OPTIMIZER_GROUPS: {"param_groups": []},
        },
    )


def test_checkpoint_write_verify_and_corruption(tmp_path: Path) -> None:
    snap = _snapshot(5)
    snap.start_copy()
    step = checkpoint.write_local(snap, RunLayout(str(tmp_path)))
    assert os.path.basename(step.root) == "step_00000005"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temp dir left
    marker = checkpoint.verify_local(step)
    assert set(marker["files"]) >= {"model.safetensors", "optimizer.safetensors", "ranks.json"}
    loaded = checkpoint.load_local(step)
    assert loaded.step == 5 and torch.equal(loaded.optimizer["embed.weight/exp_avg"], torch.ones(3))
    with open(step.optimizer, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 1]))
    with pytest.raises(IntegrityError, match="optimizer.safetensors"):
        checkpoint.verify_local(step)


def test_incomplete_checkpoints_are_ignored_and_pruning_keeps_last(tmp_path: Path) -> None:
    run = RunLayout(str(tmp_path))
    for step in (10, 20, 30):
        checkpoint.write_local(_snapshot(step), run)
    os.remove(tmp_path / "step_00000030" / "COMPLETE")  # as if killed mid-upload
    assert list(checkpoint.complete_steps(str(tmp_path))) == [10, 20]
    with pytest.raises(IntegrityError, match="no COMPLETE marker"):
        checkpoint.read_marker(run.step(30))
    checkpoint.prune(str(tmp_path), keep_last=1)
    assert list(checkpoint.complete_steps(str(tmp_path))) == [20]


def test_config_differences_and_overrides() -> None:
    base = _config()
    assert base.differences(base.replace(max_steps=5, checkpoint_every=7)) == {}
    assert set(base.replace(seed=1).differences(base)) == {"seed"}
    assert parse_overrides(["n_layers=2", "qk_norm=false", "activation=relu2"]) == {
        "n_layers": 2,
        "qk_norm": False,
        "activation": "relu2",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["n_layers"])
    with pytest.raises(ConfigError, match="--batch-size"):
        _config(batch_size=0)


@pytest.mark.parametrize(
    ("changes", "shown"),
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"lr": -1.0}, "lr=-1.0"),
        ({"lr": float("nan")}, "lr=nan"),
        ({"beta2": 1.0}, "beta2=1.0"),
        ({"schedule": "linear"}, "schedule='linear'"),
        ({"seed": -3}, "seed=-3"),
        ({"max_steps": True}, "max_steps=True"),
        ({"eval_every": 1.5}, "eval_every=1.5"),
        ({"warmup_steps": -1}, "warmup_steps=-1"),
        ({"upload_timeout": -5.0}, "upload_timeout=-5.0"),
        ({"num_threads": 0}, "num_threads=0"),
        ({"preset": ""}, "preset=''"),
    ],
)
def test_config_values_are_checked_when_built(changes: dict, shown: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _config(**changes)
    message = str(refused.value)
    key = next(iter(changes))
    assert "\n" not in message and shown in message and f"--{key.replace('_', '-')}" in message
    assert "must " in message  # what is allowed


def test_default_warmup_is_capped_so_short_runs_decay() -> None:
    short = _config(max_steps=20)
    assert short.resolved_warmup_steps == 2 and "warmup is 2 steps" in short.schedule_note()
    sched = LRSchedule.from_config(short)
    assert sched.lr_at(1) == short.lr and sched.lr_at(19) < short.lr  # warmed up, then decays
    assert _config(max_steps=5000).resolved_warmup_steps == 100
    assert _config(max_steps=5000).schedule_note() is None
    explicit = _config(max_steps=20, warmup_steps=50)
    assert explicit.resolved_warmup_steps == 20 and "never decays" in explicit.schedule_note()
    # a default warmup keeps a run's own; an explicit one is compared with it
    recorded = _config(max_steps=20)
    assert _config(max_steps=40).differences(recorded) == {}
    assert _config(max_steps=20, warmup_steps=2).differences(recorded) == {}
    assert _config(max_steps=20, warmup_steps=5).differences(recorded) == {"warmup_steps": (2, 5)}
