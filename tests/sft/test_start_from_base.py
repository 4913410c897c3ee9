"""Starting from a base: a fine-tuned run begins with the base's weights and a fresh optimizer;
every refusal (no ChatML in the base's tokenizer, data of another tokenizer, changed data of a
run with checkpoints, another architecture) comes before anything is written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from smelt.errors import ConfigError
from smelt.model.checkpoint_io import load_weights
from smelt.sft.config import SFTConfig
from smelt.sft.run import prepare, run_sft
from smelt.training.config import TrainConfig
from smelt.training.loop import train
from tests.sft.sft_data import MODEL

TRAINING = dict(
    max_steps=2,
    batch_size=2,
    seq_len=128,
    warmup_steps=1,
    checkpoint_every=2,
    eval_every=0,
    num_threads=1,
)


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _config(base: Path, data: list[Path], output: Path, **training) -> SFTConfig:
    return SFTConfig.create(
        base=str(base),
        data=[str(d) for d in data],
        output=str(output),
        val_fraction=0.0,
        training={**TRAINING, **training},
    )


def test_a_fresh_run_starts_from_the_base_weights_with_a_fresh_optimizer(
    base_run, fact_files, tmp_path
):
    output = tmp_path / "sft"
    data, result = run_sft(_config(base_run, fact_files, output, max_steps=1, lr=1e-12))
    assert result.step == 1 and result.resumed_from is None and not data["skipped"]
    base, _ = load_weights(base_run / "step_00000040" / "model.safetensors")
    tuned, _ = load_weights(output / "step_00000001" / "model.safetensors")
    assert base.keys() == tuned.keys()
    for name in base:  # one step at lr 1e-12: the base's weights, not a fresh init
        torch.testing.assert_close(tuned[name], base[name], atol=1e-6, rtol=0)
    trainer = json.loads((output / "step_00000001" / "trainer.json").read_text())
    assert trainer["step"] == 1 and trainer["schedule"]["warmup_steps"] == 1
    run = json.loads((output / "run.json").read_text())["train_config"]
    assert run["init_from"] == str(base_run) and run["batch_source"] == "conversations"
    assert (output / "tokenizer.json").read_bytes() == (base_run / "tokenizer.json").read_bytes()
    assert (output / "chat_template.jinja").exists()


def test_a_base_given_as_one_step_directory(base_run, fact_files, tmp_path):
    step = base_run / "step_00000040"
    _, result = run_sft(_config(step, fact_files, tmp_path / "sft", max_steps=1))
    assert result.step == 1


def test_a_base_without_chatml_tokens_is_refused_before_anything_is_written(
    shards, fact_files, tmp_path
):
    from tests.training.conftest import small_config

    plain = tmp_path / "plain-base"  # a tokenizer with <|endoftext|> and <pad> only
    train(small_config(shards, plain, max_steps=2, checkpoint_every=2))
    before = _tree(plain)
    output = tmp_path / "sft"
    with pytest.raises(ConfigError, match=r"no <\|im_start\|> or <\|im_end\|> token"):
        prepare(_config(plain, fact_files, output))
    assert not output.exists() and _tree(plain) == before


def test_changed_data_of_a_run_with_checkpoints_is_refused(base_run, fact_files, tmp_path):
    output = tmp_path / "sft"
    run_sft(_config(base_run, fact_files, output))
    before = _tree(output)
    with pytest.raises(ConfigError, match="fine-tuned on other conversations"):
        prepare(_config(base_run, fact_files[:1], output, max_steps=4))
    with pytest.raises(ConfigError, match="fine-tuned on other conversations or settings"):
        prepare(_config(base_run, fact_files, output, seq_len=100))
    assert _tree(output) == before
    # starting over is allowed, and resuming with the same data finds it tokenized
    again = prepare(_config(base_run, fact_files, output, max_steps=4))
    assert again["skipped"]
    over = prepare(_config(base_run, fact_files[:1], output, resume="never", force=True))
    assert not over["skipped"]


def test_init_from_a_base_of_another_tokenizer_or_architecture_is_refused(
    base_run, shards, tmp_path
):
    import shutil

    output = tmp_path / "continued"
    bigger_vocabulary = TrainConfig(
        shards=shards, output=str(output), init_from=str(base_run), **TRAINING | {"seq_len": 16}
    )
    with pytest.raises(ConfigError, match="vocab_size 400 < the data's 512"):
        train(bigger_vocabulary)
    # shards of the base's vocabulary size, built with another tokenizer (by SHA-256)
    other = tmp_path / "other-shards"
    shutil.copytree(base_run.parent / "shards", other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["tokenizer_sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    other_tokenizer = bigger_vocabulary.replace(shards=str(other))
    with pytest.raises(ConfigError, match="was trained with tokenizer"):
        train(other_tokenizer)
    wider = other_tokenizer.replace(model_overrides={**MODEL, "d_model": 128})
    with pytest.raises(ConfigError, match="cannot change the architecture"):
        train(wider)
    assert not output.exists()
