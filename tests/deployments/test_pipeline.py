"""`pretrain-pipeline` under the Prefect test harness: the real stages on a tiny corpus of real
text (the stdlib's pydoc topics), then reruns that skip exactly the stages that are current."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from smelt.flows.pipeline import (
    CorpusStage,
    ShardsStage,
    TokenizerStage,
    TrainStage,
    pretrain_pipeline,
    summary_markdown,
)

TINY_MODEL = {"d_model": 64, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "ffn_hidden": 128}


@pytest.fixture(scope="module")
def raw_inputs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Real documentation prose, one topic per text file."""
    from pydoc_data.topics import topics

    root = tmp_path_factory.mktemp("raw")
    for name in sorted(topics)[:60]:
        (root / f"{name}.txt").write_text(topics[name])
    return str(root)


def _run(root: Path, raw: str, vocab_size: int = 1024, val_fraction: float = 0.1) -> dict:
    return pretrain_pipeline(
        root=str(root),
        corpus=CorpusStage(inputs=[raw], config_overrides={"pii": {"enabled": False}}),
        tokenizer=TokenizerStage(vocab_size=vocab_size, sample_bytes=2_000_000),
        shards=ShardsStage(val_fraction=val_fraction, shard_tokens=20_000),
        train=TrainStage(
            preset="test",
            max_steps=2,
            batch_size=2,
            seq_len=32,
            checkpoint_every=2,
            overrides={"model_overrides": TINY_MODEL},
        ),
        runner="thread",
        workers=1,
        train_via_deployment=False,
    )


def _statuses(outcome: dict) -> dict[str, str]:
    return {stage: outcome[stage]["status"] for stage in ("corpus", "tokenizer", "shards", "train")}


@pytest.mark.slow
def test_pipeline_builds_then_skips_current_stages(prefect_harness, raw_inputs, tmp_path):
    root = tmp_path / "out"
    first = _run(root, raw_inputs)
    assert _statuses(first) == {
        "corpus": "built",
        "tokenizer": "built",
        "shards": "built",
        "train": "completed",
    }
    assert (root / "corpus" / "stats.json").exists()
    manifest = json.loads((root / "shards" / "manifest.json").read_text())
    report = json.loads((root / "tokenizer" / "report.json").read_text())
    assert manifest["tokenizer_sha256"] == report["tokenizer_sha256"]
    run_dir = Path(first["uris"]["run"])
    assert run_dir.parent == root / "runs" and run_dir.name.startswith("main-")
    metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in metrics][-1] == 2

    metrics_before = (run_dir / "metrics.jsonl").read_bytes()
    again = _run(root, raw_inputs)
    assert again["uris"]["run"] == str(run_dir)  # same data: the same run, resumed
    assert _statuses(again) == {
        "corpus": "skipped",
        "tokenizer": "skipped",
        "shards": "skipped",
        "train": "completed",
    }
    summary = again["train"]["summary"]  # found finished, not trained again
    assert summary["already_done"] and summary["resumed_from"] == 2 and summary["step"] == 2
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics_before

    resharded = _run(root, raw_inputs, val_fraction=0.2)
    assert _statuses(resharded) == {
        "corpus": "skipped",
        "tokenizer": "skipped",
        "shards": "built",
        "train": "completed",
    }

    retokenized = _run(root, raw_inputs, vocab_size=600, val_fraction=0.2)
    report_after = json.loads((root / "tokenizer" / "report.json").read_text())
    assert _statuses(retokenized)["corpus"] == "skipped"
    assert _statuses(retokenized)["tokenizer"] == "built"
    # another vocabulary, another tokenizer: the shards follow its checksum and are rebuilt
    assert report_after["tokenizer_sha256"] != report["tokenizer_sha256"]
    assert _statuses(retokenized)["shards"] == "built"
    manifest_after = json.loads((root / "shards" / "manifest.json").read_text())
    assert manifest_after["tokenizer_sha256"] == report_after["tokenizer_sha256"]


def test_a_new_or_edited_input_file_changes_the_corpus_fingerprint(tmp_path):
    from smelt.corpus.config import CorpusConfig
    from smelt.corpus.partition import fingerprint, list_inputs

    extra = tmp_path / "raw"
    extra.mkdir()
    (extra / "a.txt").write_text("some words " * 100)

    def current() -> str:
        return fingerprint(list_inputs([str(extra)]), CorpusConfig(), [])

    before = current()
    (extra / "b.txt").write_text("other words " * 100)
    after = current()
    assert before != after and after == current()
    stat = (extra / "b.txt").stat()
    (extra / "b.txt").write_text("OTHER words " * 100)  # same size, new content
    os.utime(extra / "b.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert current() != after


def test_summary_links_every_stage_output():
    uris = {
        "corpus": "s3://b/corpus",
        "tokenizer": "/tmp/x/tokenizer",
        "shards": "s3://b/shards",
        "run": "s3://b/runs/main",
    }
    text = summary_markdown(
        {
            "uris": uris,
            "corpus": {"status": "skipped"},
            "tokenizer": {"status": "built"},
            "shards": {"status": "built"},
            "train": {"status": "completed", "flow_run_id": "123", "deployment": "train/runpod"},
        }
    )
    assert "| corpus | skipped | [s3://b/corpus](https://s3.console.aws.amazon.com/" in text
    assert "(file:///tmp/x/tokenizer)" in text
    assert "| train | completed |" in text and "train/runpod" in text
