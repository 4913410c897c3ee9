"""A refused command changes nothing: every check runs before anything is written. And a run
knows its tokenizer: resuming or opening a checkpoint with another one is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from smelt.cli.main import main
from smelt.errors import ConfigError, IntegrityError, SmeltError
from smelt.storage import sha256_file
from smelt.training.checkpoint import complete_steps
from smelt.training.inference import open_checkpoint
from smelt.training.loop import train
from tests.training.conftest import TINY, small_config


def _tree(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones too) -> SHA-256 of its content."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _rewrite_document(step_dir: Path, name: str, change: dict) -> None:
    """Edit one JSON file of a checkpoint and keep its marker's checksum right."""
    document = json.loads((step_dir / name).read_text())
    document.update(change)
    (step_dir / name).write_text(json.dumps(document))
    marker = json.loads((step_dir / "COMPLETE").read_text())
    marker["files"][name]["sha256"] = sha256_file(str(step_dir / name))
    (step_dir / "COMPLETE").write_text(json.dumps(marker))


def _other_tokenizer(shards: str, path: Path) -> Path:
    """The same vocabulary in other bytes: another tokenizer file as far as SHA-256 goes."""
    path.write_text(json.dumps(json.loads(Path(shards, "tokenizer.json").read_text()), indent=1))
    return path


@pytest.fixture
def finished(shards: str, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    assert train(small_config(shards, run)).step == 4
    return run


def test_refused_commands_change_nothing(shards: str, finished: Path, tmp_path: Path) -> None:
    wider = {**TINY, "d_model": 64}
    refused = {
        "another configuration": small_config(shards, finished, seed=7),
        "another architecture": small_config(
            shards, finished, model_overrides=wider, force=True, max_steps=6
        ),
        "another preset": small_config(
            shards, finished, preset="skylar-test", model_overrides={}, force=True
        ),
        "--resume never": small_config(shards, finished, resume="never"),
        "a tokenizer that did not build the shards": small_config(
            shards, finished, tokenizer=str(_other_tokenizer(shards, tmp_path / "t.json"))
        ),
    }
    before = _tree(finished)
    for what, config in refused.items():
        with pytest.raises(SmeltError):
            train(config)
        assert _tree(finished) == before, f"refusing {what} changed the run"

    # a checkpoint of another world size: refused, the run as it was
    _rewrite_document(finished / "step_00000004", "trainer.json", {"world_size": 2})
    before = _tree(finished)
    with pytest.raises(ConfigError, match="written by 2 ranks"):
        train(small_config(shards, finished, max_steps=6))
    assert _tree(finished) == before
    _rewrite_document(finished / "step_00000004", "trainer.json", {"world_size": 1})

    # the original command still resumes: a finished run says so, with its real progress
    result = train(small_config(shards, finished))
    assert result.already_done and (result.step, result.tokens) == (4, 4 * 2 * 16)


def test_resume_refuses_shards_of_another_tokenizer(
    shards: str, finished: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "retokenized"
    shutil.copytree(shards, copy)
    other = _other_tokenizer(shards, copy / "tokenizer.json")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["tokenizer_sha256"] = sha256_file(str(other))
    (copy / "manifest.json").write_text(json.dumps(manifest))
    before = _tree(finished)
    with pytest.raises(ConfigError, match="trained with tokenizer"):
        train(small_config(str(copy), finished, force=True, max_steps=6))
    assert _tree(finished) == before


def test_open_checkpoint_refuses_a_tokenizer_the_run_was_not_trained_with(
    shards: str, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert open_checkpoint(str(finished)).step == 4
    _other_tokenizer(shards, finished / "tokenizer.json")
    with pytest.raises(IntegrityError, match="not the tokenizer checkpoint"):
        open_checkpoint(str(finished))
    assert main(["generate", "--checkpoint", str(finished), "--prompt", "The"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "not the tokenizer" in captured.err
    folder = tmp_path / "hf"
    assert main(["export-hf", "--checkpoint", str(finished), "--output", str(folder)]) == 2
    assert not folder.exists()


@pytest.mark.parametrize(
    "settings",
    [["--temperature", "-1"], ["--top-p", "1.5"], ["--max-new-tokens", "100000"]],
)
def test_generate_prints_nothing_before_a_validation_error(
    finished: Path, settings: list[str], capsys: pytest.CaptureFixture
) -> None:
    args = ["generate", "--checkpoint", str(finished), "--prompt", "The", *settings]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ")


def test_a_run_without_checkpoints_restarts_with_other_settings(
    shards: str, finished: Path
) -> None:
    for step_dir in complete_steps(str(finished)).values():
        shutil.rmtree(step_dir)  # as if it had failed before its first checkpoint
    result = train(small_config(shards, finished, seed=7))
    assert result.resumed_from is None and result.step == 4
    recorded = json.loads((finished / "run.json").read_text())["train_config"]
    assert recorded["seed"] == 7
    with pytest.raises(ConfigError, match="seed: 7 -> 1337"):
        train(small_config(shards, finished))  # now it has checkpoints again
