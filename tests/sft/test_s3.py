"""Fine-tuning on S3 (moto over HTTP): conversations read from s3://, the run and its tokenized
conversations written there, and a fresh machine (empty cache) resuming from what S3 holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from smelt import storage
from smelt.prep.conversation_shards import open_conversation_shards
from smelt.sft.config import SFTConfig
from smelt.sft.run import run_sft
from smelt.training.checkpoint import complete_steps
from smelt.training.inference import open_checkpoint


@pytest.mark.slow  # an SFT run on S3, killed and resumed in a fresh process
def test_conversations_and_run_on_s3_resume_on_a_fresh_machine(
    base_run, fact_files, s3_bucket, tmp_path, monkeypatch
):
    for path in fact_files:
        storage.put_file(str(path), f"{s3_bucket}/chats/{path.name}")
    output = f"{s3_bucket}/runs/sft"

    def config(steps: int) -> SFTConfig:
        return SFTConfig.create(
            base=str(base_run),
            data=[f"{s3_bucket}/chats/"],
            output=output,
            val_fraction=0.2,
            training=dict(
                max_steps=steps,
                batch_size=2,
                seq_len=128,
                warmup_steps=1,
                checkpoint_every=2,
                eval_every=2,
                eval_batches=1,
                num_threads=1,
            ),
        )

    monkeypatch.setenv("SMELT_CACHE_DIR", str(tmp_path / "machine-1"))
    data, result = run_sft(config(2))
    assert result.step == 2 and result.val_loss is not None and not data["skipped"]
    assert data["kept"]["train"] + data["kept"]["val"] == 40
    shards = open_conversation_shards(f"{output}/sft_data")
    assert shards.manifest.root.startswith("s3://") and shards.manifest.split("val")
    assert storage.exists(f"{output}/chat_template.jinja")
    assert list(complete_steps(output)) == [2]

    monkeypatch.setenv("SMELT_CACHE_DIR", str(tmp_path / "machine-2"))  # nothing cached
    data, result = run_sft(config(4))
    assert data["skipped"] and result.resumed_from == 2 and result.step == 4
    assert list(Path(tmp_path / "machine-2" / "shards").rglob("*.mask"))  # downloaded, checked
    opened = open_checkpoint(output)
    assert opened.step == 4 and opened.tokenizer is not None

    [cached] = Path(tmp_path / "machine-2" / "shards").rglob("train/shard_00000.mask")
    cached.write_bytes(b"\x07" * cached.stat().st_size)  # a damaged cached copy
    data, result = run_sft(config(5))
    assert result.step == 5  # downloaded again and checked
