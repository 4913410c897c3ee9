"""`CheckpointManager` on its own, over small real components: which steps it saves, what it
keeps, how it restores, fetches from S3 into a fresh cache, and the order of its writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smelt import storage
from smelt.errors import IntegrityError
from smelt.model.decoder import Decoder
from smelt.model.presets import get_preset
from smelt.training import checkpoint
from smelt.training.checkpoint import RunLayout, StepLayout
from smelt.training.config import TrainConfig
from smelt.training.distributed import ModelState
from smelt.training.manager import CheckpointManager, Progress
from smelt.training.optim import OptimizerState, build_optimizer
from smelt.training.rng import RNGState
from smelt.training.schedule import LRSchedule


class Position:
    """A per-rank component like the data loader: one integer of position."""

    def __init__(self) -> None:
        self.position = 0

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]


class Training:
    """A tiny model, its optimizer and the other components, stepped by hand."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.config = TrainConfig(shards="s", output="o", max_steps=10, warmup_steps=2)
        self.model = Decoder(
            get_preset(
                "test",
                vocab_size=64,
                d_model=32,
                n_layers=1,
                n_heads=2,
                n_kv_heads=1,
                ffn_hidden=64,
            )
        )
        self.optimizer = build_optimizer(self.model, self.config, torch.device("cpu"))
        self.progress, self.position = Progress(), Position()
        self.schedule = LRSchedule.from_config(self.config)

    def components(self) -> dict:
        return {
            "model": ModelState(self.model, fsdp=False),
            "optimizer": OptimizerState(self.model, self.optimizer, full=False),
            "schedule": self.schedule,
            "loader": self.position,
            "rng": RNGState(),
            "progress": self.progress,
        }

    def step(self) -> None:
        idx = torch.randint(0, 64, (2, 8))
        self.model(idx, targets=idx).loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.progress.step += 1
        self.progress.tokens += 16
        self.position.position += 2

    def manager(self, output: str, **options) -> CheckpointManager:
        manager = CheckpointManager(
            output,
            components=self.components(),
            per_rank=("loader", "rng"),
            model_config=self.model.config,
            facts={"tokenizer_sha256": "ab" * 32},
            **options,
        )
        self.optimizer.register_step_pre_hook(manager.wait_for_copy)
        return manager

    def train(self, manager: CheckpointManager, steps: int) -> list[int]:
        saved = []
        for _ in range(steps):
            self.step()
            step = self.progress.step
            if manager.save(step, last_step=step == steps):
                saved.append(step)
        return saved


def test_saves_every_interval_and_the_last_step_and_keeps_the_newest(tmp_path: Path) -> None:
    training = Training()
    manager = training.manager(str(tmp_path / "run"), interval=3, keep_last=2)
    manager.start()
    assert training.train(manager, 7) == [3, 6, 7]
    assert not manager.close()
    assert manager.written_steps == [3, 6, 7]
    assert list(checkpoint.complete_steps(str(tmp_path / "run"))) == [6, 7]
    assert manager.newest() == 7 and len(manager.stalls) == 2  # a copy waited before 4 and 7


def test_restore_brings_every_component_back(tmp_path: Path) -> None:
    training = Training()
    manager = training.manager(str(tmp_path / "run"), interval=5)
    manager.start()
    training.train(manager, 5)
    manager.close()

    resumed = Training(seed=1)
    assert not torch.equal(resumed.model.embed.weight, training.model.embed.weight)
    resumed.manager(str(tmp_path / "run")).restore(5)
    assert (resumed.progress.step, resumed.progress.tokens) == (5, 80)
    assert resumed.position.position == 10 and resumed.schedule == training.schedule
    for a, b in zip(resumed.model.parameters(), training.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed.optimizer.state_dict()["state"][0]["step"] == 5
    trainer = checkpoint.read_document(RunLayout(str(tmp_path / "run")).step(5), "trainer.json")
    assert trainer["tokenizer_sha256"] == "ab" * 32 and trainer["step"] == 5


def test_fetch_from_s3_into_a_fresh_cache_is_verified(s3_bucket: str, tmp_path: Path) -> None:
    output = f"{s3_bucket}/runs/fetch"
    training = Training()
    manager = training.manager(output, cache_dir=str(tmp_path / "first"), interval=2)
    manager.start()
    training.train(manager, 4)
    assert not manager.close(timeout=60)
    assert list(checkpoint.complete_steps(output)) == [2, 4]

    fresh = CheckpointManager(output, cache_dir=str(tmp_path / "second"))
    assert fresh.newest() == 4
    local = fresh.fetch(4)
    assert local.root == str(tmp_path / "second" / "step_00000004")
    checkpoint.verify_local(local)

    remote = StepLayout(f"{output}/step_00000002")
    storage.write_bytes(remote.optimizer, b"not the optimizer that was saved")
    with pytest.raises(IntegrityError, match="optimizer.safetensors"):
        CheckpointManager(output, cache_dir=str(tmp_path / "third")).fetch(2)
    assert not (tmp_path / "third" / "step_00000002").exists()  # nothing half-fetched


def test_marker_is_uploaded_last_and_deleted_first(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file of a step reaches S3 before its COMPLETE marker; pruning removes the marker
    before anything else, so no listing ever shows a marker over a partial checkpoint."""
    events: list[tuple[str, str]] = []

    def observe(module, name: str, kind: str) -> None:
        original = getattr(module, name)

        def recorded(*args, **kwargs):
            uri = args[1] if kind == "put" else args[0]
            if storage.is_s3(uri):
                events.append((kind, uri))
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, recorded)

    import smelt.storage.objects as objects
    import smelt.storage.stage as stage

    observe(objects, "put_file", "put")  # atomic writes (the marker) go through it
    observe(storage, "put_file", "put")  # checkpoint files
    observe(stage, "delete", "delete")  # Marker.clear
    observe(storage, "delete", "delete")  # the rest of a pruned checkpoint

    output = f"{s3_bucket}/runs/order"
    training = Training()
    manager = training.manager(output, cache_dir=str(tmp_path / "c"), interval=1, keep_last=1)
    manager.start()
    training.train(manager, 2)
    assert not manager.close(timeout=60)
    assert list(checkpoint.complete_steps(output)) == [2]

    first = f"{output}/step_00000001/"
    puts = [uri for kind, uri in events if kind == "put" and uri.startswith(first)]
    assert puts.index(first + "COMPLETE") == len(puts) - 1  # once, after every other file
    assert {p.rsplit("/", 1)[1] for p in puts[:-1]} >= {"model.safetensors", "trainer.json"}
    deletes = [uri for kind, uri in events if kind == "delete" and uri.startswith(first[:-1])]
    assert deletes[0] == first + "COMPLETE"


def test_metrics_reach_s3_before_the_checkpoint_that_covers_them(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed run keeps metrics.jsonl up to its checkpoint's step: the remote copy must
    hold every step up to a checkpoint before that checkpoint's marker appears, or a run
    resumed on a fresh machine (a replaced pod) would miss those steps for good."""
    import json

    import smelt.storage.stage as stage

    output = f"{s3_bucket}/runs/metrics-first"
    remote_metrics = RunLayout(output).metrics
    covered: dict[int, list[int]] = {}
    write = stage.Marker.write

    def observing(marker: stage.Marker, manifest: dict) -> dict:
        step = RunLayout.step_of(storage.parent(marker.uri))
        if storage.is_s3(marker.uri) and step is not None:
            text = storage.read_text(remote_metrics) if storage.exists(remote_metrics) else ""
            covered[step] = [json.loads(line)["step"] for line in text.splitlines()]
        return write(marker, manifest)

    monkeypatch.setattr(stage.Marker, "write", observing)
    training = Training()
    manager = training.manager(output, cache_dir=str(tmp_path / "c"), interval=1)
    manager.start()
    Path(manager.local.metrics).parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        training.step()
        step = training.progress.step
        with open(manager.local.metrics, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, "loss": 1.0}) + "\n")
        manager.save(step, last_step=step == 3)
    assert not manager.close(timeout=60)
    assert sorted(covered) == [1, 2, 3]
    for step, steps in covered.items():
        assert steps[:step] == list(range(1, step + 1)), (step, steps)
