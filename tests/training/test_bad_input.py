"""Bad input is refused before the first step, with a message naming the object and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from smelt.errors import ConfigError, InputError
from smelt.storage import sha256_bytes, sha256_file
from smelt.training.checkpoint import complete_steps
from smelt.training.config import TrainConfig
from smelt.training.loop import TrainingDivergedError, train
from smelt.training.metrics import read_metrics
from tests.training.conftest import TINY, small_config


def _config(shards: str, output: Path, **changes) -> TrainConfig:
    return small_config(shards, output, **changes)


def _copy(shards: str, tmp_path: Path) -> Path:
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    return copy


def test_tokenizer_that_did_not_build_the_shards(shards: str, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps(json.loads(Path(shards, "tokenizer.json").read_text()), indent=1))
    with pytest.raises(InputError, match="tokenizer_sha256"):
        train(_config(shards, tmp_path / "run", tokenizer=str(other)))


def test_manifest_vocab_differs_from_tokenizer(shards: str, tmp_path: Path) -> None:
    copy = _copy(shards, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["vocab_size"] = 600
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="vocab_size 600"):
        train(_config(str(copy), tmp_path / "run"))


def test_model_vocabulary_smaller_than_the_shards(shards: str, tmp_path: Path) -> None:
    overrides = {**TINY, "vocab_size": 100}
    with pytest.raises(ConfigError, match="vocab_size 100 is smaller"):
        train(_config(shards, tmp_path / "run", model_overrides=overrides))


def test_output_holding_another_run_and_another_architecture(shards: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = train(_config(shards, run))
    assert result.step == 4 and (run / "tokenizer.json").exists()
    with pytest.raises(ConfigError, match=r"different configuration \(seed: 1337 -> 7\)"):
        train(_config(shards, run, seed=7))
    wider = {**TINY, "d_model": 64}
    with pytest.raises(ConfigError, match="another architecture"):
        train(_config(shards, run, model_overrides=wider, force=True, max_steps=6))
    with pytest.raises(ConfigError, match="--resume never"):
        train(_config(shards, run, resume="never"))
    fresh = train(_config(shards, run, resume="never", force=True, seed=7))
    assert fresh.resumed_from is None and fresh.step == 4


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    shards: str, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    train(_config(shards, run))
    step_dir = run / "step_00000004"
    weights = step_dir / "model.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    tensors["norm.weight"] = torch.full_like(tensors["norm.weight"], float("nan"))
    save_file(tensors, str(weights), metadata=metadata)
    marker = json.loads((step_dir / "COMPLETE").read_text())
    marker["files"]["model.safetensors"]["sha256"] = sha256_file(str(weights))
    (step_dir / "COMPLETE").write_text(json.dumps(marker))

    with pytest.raises(TrainingDivergedError, match="at step 5 .*last good checkpoint is step 4"):
        train(_config(shards, run, max_steps=8))
    assert list(complete_steps(str(run))) == [2, 4]
    assert max(r["step"] for r in read_metrics(str(run / "metrics.jsonl"))) == 4


def test_missing_shards_are_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="manifest.json not found"):
        train(_config(str(tmp_path / "nowhere"), tmp_path / "run"))


def test_val_split_smaller_than_a_batch_warns_once_and_logs_no_val_loss(
    shards: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copy = _copy(shards, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    val = [s for s in manifest["shards"] if s["split"] == "val"]
    manifest["shards"] = [s for s in manifest["shards"] if s["split"] == "train"] + val[:1]
    first = val[0]
    tokens = (copy / first["path"]).read_bytes()[: 40 * 4]  # 40 tokens: 2 windows of 17
    (copy / first["path"]).write_bytes(tokens)
    idx = copy / first["path"].replace(".bin", ".idx")
    idx.write_bytes((40).to_bytes(8, "little"))
    first.update(num_tokens=40, num_docs=1, bytes=len(tokens), sha256=sha256_bytes(tokens))
    (copy / "manifest.json").write_text(json.dumps(manifest))

    run = tmp_path / "run"
    with caplog.at_level("WARNING", logger="smelt.training.loop"):
        train(_config(str(copy), run, batch_size=4, eval_every=2))
    warnings = [r.getMessage() for r in caplog.records if "val split" in r.getMessage()]
    assert len(warnings) == 1 and "fewer than one batch" in warnings[0]
    records = read_metrics(str(run / "metrics.jsonl"))
    assert len(records) == 4 and not any("val_loss" in r for r in records)
