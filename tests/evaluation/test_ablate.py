"""`smelt ablate` end to end: two corpus recipes, one shared tokenizer, two seeds each, the same
tasks; a ranked report; every stage a flow run; a rerun reuses everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smelt.cli.main import main

TINY = {"d_model": 64, "n_layers": 2, "ffn_hidden": 128, "n_heads": 2, "n_kv_heads": 1,
        "max_seq_len": 64}  # fmt: skip


def _raw(folder: Path, docs: list[str]) -> Path:
    folder.mkdir(parents=True)
    lines = [json.dumps({"id": f"doc-{i}", "text": text}) for i, text in enumerate(docs)]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _flow_runs(name: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[name]))))


@pytest.mark.slow
def test_ablate_ranks_variants_and_reuses_everything(
    task_files, tmp_path: Path, capsys: pytest.CaptureFixture, prefect_harness
) -> None:
    from pydoc_data.topics import topics

    texts = [topics[k] for k in sorted(topics) if len(topics[k].split()) > 80]
    tasks, held = task_files
    recipe = {
        "name": "inputs",
        "base": {
            "inputs": [str(_raw(tmp_path / "raw-all", texts))],
            "overrides": {  # documentation, not web prose: the demo's relaxed filters
                "pii": {"enabled": False},
                "filters": {
                    "c4": {"enabled": False},
                    "gopher_quality": {"max_non_alpha_words_ratio": 0.6},
                },
            },  # fmt: skip
        },
        "variants": {"third": {"inputs": [str(_raw(tmp_path / "raw-third", texts[::3]))]}},
        "tokenizer": {"vocab_size": 512},
        "shards": {"val_fraction": 0.3},
        "proxy": {
            "preset": "test",
            "tokens": 24 * 4 * 32,
            "batch_size": 4,
            "seq_len": 32,
            "seeds": 2,
            "overrides": {"model_overrides": TINY, "lr": 3e-3, "num_threads": 1},
        },
        "eval": {
            "tasks": {"quiz": str(tasks["generic_mc"])},
            "texts": {"pydoc": str(held["pydoc"])},
        },
    }
    config = tmp_path / "ablation.yaml"
    config.write_text(json.dumps(recipe))  # JSON is YAML
    output = tmp_path / "out"
    args = ["ablate", "--config", str(config), "--output", str(output), "--runner", "thread",
            "--workers", "1"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((output / "report.json").read_text())
    assert report["rank_by"] == "tasks/mean_acc_norm" and report["seeds"] == [0, 1]
    assert {row["variant"] for row in report["ranking"]} == {"base", "third"}
    assert [row["rank"] for row in report["ranking"]] == [1, 2]
    third = next(r for r in report["ranking"] if r["variant"] == "third")
    assert third["std"] is not None and third["diff_noise"] is not None  # spread over 2 seeds
    for variant in ("base", "third"):
        summary = report["variants"][variant]
        assert {"quiz/acc_norm", "pydoc/bits_per_byte", "val_loss"} <= set(summary)
        evals = sorted((output / "variants" / variant / "eval").glob("*-seed-*.json"))
        assert len(evals) == 2
        seeds = [json.loads(p.read_text()) for p in evals]
        assert seeds[0]["tokens"] == seeds[1]["tokens"] == 24 * 4 * 32  # the same budget
    # one tokenizer for both: each variant's shards were built with it
    manifests = [json.loads((output / "variants" / v / "shards" / "manifest.json").read_text())
                 for v in ("base", "third")]  # fmt: skip
    assert manifests[0]["tokenizer_sha256"] == manifests[1]["tokenizer_sha256"]
    assert manifests[0]["shards"] != manifests[1]["shards"]  # different data
    assert (output / "report.png").read_bytes().startswith(b"\x89PNG")
    assert "| 1 |" in (output / "report.md").read_text()
    first = capsys.readouterr().out
    assert "ranked by tasks/mean_acc_norm" in first

    counts = {name: _flow_runs(name) for name in ("corpus-build", "shards-build", "train")}
    assert main(args) == 0  # nothing changed: every stage is reused
    assert {name: _flow_runs(name) for name in counts} == counts
    rerun = capsys.readouterr().out
    assert rerun.count("reused") >= 2 + 2 + 4 + 1  # corpora, shards, runs, tokenizer
    assert json.loads((output / "report.json").read_text())["ranking"] == report["ranking"]
