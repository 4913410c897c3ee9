"""What a build lets a user see: every filtered document on request (`filtered/`), a sample per
reason always (`samples/`), the language columns, the largest duplicate clusters, and
`smelt corpus inspect`. Builds run `build_corpus` directly on this process (no Prefect)."""

from __future__ import annotations

import json
import os
import random

import pytest

from smelt import storage
from smelt.cli.main import main
from smelt.corpus.build import BuildRequest, build_corpus
from smelt.corpus.config import config_from_dict
from smelt.corpus.filtered import iter_filtered
from smelt.corpus.layout import CorpusLayout
from smelt.corpus.tables import read_table
from tests.corpus_build.conftest import prose, read_corpus, write_inputs

GERMAN = (
    "Die Geschichte des Flusstals zeigt, wie sich die Bauern über viele Jahrhunderte an die "
    "Hochwasser angepasst haben. Frühe Siedler bauten niedrige Mauern aus Stein und Erde, um "
    "ihre Felder vor dem Wasser im Frühling zu schützen. Spätere Generationen gruben Kanäle, "
    "die das überschüssige Wasser zu den trockenen Hügeln im Osten leiteten. Heute können "
    "Besucher an den alten Mauern entlang gehen und sehen, wie das ganze System funktionierte."
)


def build(inputs: str, output_uri: str, **sections: object) -> dict:
    settings = {
        "partition_bytes": 4000,
        "pii": {"enabled": False},
        "filters": {"language": {"languages": ["en"]}},
        **sections,
    }
    request = BuildRequest(inputs=[inputs], output=output_uri, config=config_from_dict(settings))
    return build_corpus(request)


def rows(directory: str) -> list[dict]:
    if not storage.exists(directory):
        return []
    return [r for uri in storage.list_files(directory) for r in read_table(uri).to_pylist()]


@pytest.fixture
def inputs(tmp_path) -> str:
    root = str(tmp_path / "raw")
    write_inputs(root, files=6)
    rng = random.Random(3)
    lines = [{"id": f"de{i}", "text": GERMAN + f" Kapitel {i}."} for i in range(3)]
    lines += [{"id": f"tiny{i}", "text": f"Too short, number {i}."} for i in range(8)]
    lines.append({"id": "en-extra", "text": prose(rng)})
    with open(os.path.join(root, "more.jsonl"), "w") as fh:
        fh.write("\n".join(map(json.dumps, lines)) + "\n")
    return root


@pytest.mark.parametrize("dedup", [True, False])
def test_keep_filtered_writes_every_filtered_document_once(inputs, tmp_path, dedup) -> None:
    output = str(tmp_path / "corpus")
    dedup_section = {"exact": dedup, "near": dedup}
    summary = build(inputs, output, output={"keep_filtered": True}, dedup=dedup_section)
    layout = CorpusLayout.at(output)
    filtered = rows(layout.filtered_dir)
    assert len(filtered) == sum(summary["filtered"].values()) > 10
    assert {"id", "source", "reason", "text"} <= set(filtered[0])
    by_reason = {
        reason: [r for r in filtered if r["reason"] == reason] for reason in summary["filtered"]
    }
    assert {r["id"] for r in by_reason["language:de"]} == {"de0", "de1", "de2"}
    assert all(
        r["language"] == "de" and r["text"].startswith("Die Geschichte")
        for r in by_reason["language:de"]
    )
    assert all(len(found) == summary["filtered"][reason] for reason, found in by_reason.items())
    kept = read_corpus(output)
    assert kept and all(row["language"] == "en" and row["language_score"] > 0.5 for row in kept)

    # an interrupted partition is redone whole: its filtered documents are not written twice
    os.remove(layout.stats)
    os.remove(layout.final_done(0))
    if dedup:
        os.remove(layout.extracted_done(0))
    assert build(inputs, output, output={"keep_filtered": True}, dedup=dedup_section) == summary
    assert len(rows(layout.filtered_dir)) == len(filtered)


def test_without_keep_filtered_only_a_sample_per_reason(inputs, tmp_path) -> None:
    output = str(tmp_path / "corpus")
    summary = build(inputs, output, output={"samples_per_reason": 2})
    layout = CorpusLayout.at(output)
    assert not storage.exists(layout.filtered_dir)  # its rows would have to equal the stats
    samples = rows(layout.samples_dir)
    per_partition = {}
    for row in samples:
        key = (row["reason"], row["source"])
        per_partition[key] = per_partition.get(key, 0) + 1
    assert samples and max(per_partition.values()) <= 2
    assert set(summary["filtered"]) == {row["reason"] for row in samples}
    assert len(samples) < sum(summary["filtered"].values())


def test_report_lists_the_largest_duplicate_clusters(tmp_path) -> None:
    rng = random.Random(11)
    original = prose(rng, lines=10)
    copies = [original.rsplit("\n", 1)[0] + "\n" + prose(rng, lines=1) for _ in range(3)]
    pair = prose(random.Random(20))  # passes every filter
    lines = [{"id": "a-pair", "text": pair}, {"id": "b-pair", "text": pair}]  # sorted first
    lines.append({"id": "original", "text": original + "\n" + prose(rng, lines=1)})
    lines += [{"id": f"copy{i}", "text": text} for i, text in enumerate(copies)]
    lines += [{"id": f"other{i}", "text": prose(rng)} for i in range(4)]
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "docs.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    summary = build(str(raw), str(tmp_path / "corpus"))
    clusters = summary["near_duplicate_clusters"]
    assert [c["size"] for c in clusters] == [4, 2]
    biggest = clusters[0]
    survivor = max(
        ["original", "copy0", "copy1", "copy2"],
        key=lambda i: (len(next(x["text"] for x in lines if x["id"] == i)), i),
    )
    assert biggest["kept"]["id"] == survivor
    assert len(biggest["removed"]) == 2 and survivor not in {r["id"] for r in biggest["removed"]}
    assert all(
        r["start"] == " ".join(original.split()[:12])
        for r in [biggest["kept"], *biggest["removed"]]
    )
    assert summary["duplicates"] == {"exact": 1, "near": 3}


def test_inspect_prints_the_documents_of_a_reason(inputs, tmp_path, capsys) -> None:
    output = str(tmp_path / "corpus")
    build(inputs, output, output={"keep_filtered": True})
    assert main(["corpus", "inspect", output, "--reason", "language:de", "--limit", "2"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("Die Geschichte des Flusstals") == 2 and "language:de de0" in shown
    assert "2 of 3 document(s) filtered as language:de" in shown
    assert main(["corpus", "inspect", output, "--reason", "language", "--limit", "50"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("Die Geschichte des Flusstals") == 3  # a filter's every reason
    assert main(["corpus", "inspect", output]) == 0
    table = capsys.readouterr().out
    assert "language:de" in table and "Die Geschichte" in table


def test_inspect_refuses_unknown_reasons_and_unfinished_corpora(inputs, tmp_path, capsys) -> None:
    output = str(tmp_path / "corpus")
    build(inputs, output)
    assert main(["corpus", "inspect", output, "--reason", "c4:nothing"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "c4:nothing" in error and "language:de" in error
    assert main(["corpus", "inspect", str(tmp_path / "nothing-here")]) == 2
    assert "no finished corpus" in capsys.readouterr().err


def test_keep_filtered_flag_sets_the_output_option(monkeypatch, tmp_path) -> None:
    seen = {}

    def fake_flow(params, config, console, progress=True):
        seen["params"], seen["keep"] = params, config.output.keep_filtered
        return {"filtered": {}, "output": params.output}

    monkeypatch.setattr("smelt.cli.corpus.run_flow", fake_flow)
    out, raw = str(tmp_path / "o"), tmp_path / "raw.txt"
    raw.write_text("One document.")
    assert main(["corpus", "build", "--input", str(raw), "--output", out, "--keep-filtered"]) == 0
    assert seen["params"].config_overrides == {"output": {"keep_filtered": True}}
    assert seen["keep"] is True
    assert main(["corpus", "build", "--input", str(raw), "--output", out]) == 0
    assert seen["params"].config_overrides == {} and seen["keep"] is False
    assert list(iter_filtered(out)) == []


def test_demo_builds_with_the_docs_profile_and_prints_a_sample_per_reason(inputs, tmp_path) -> None:
    from rich.console import Console

    from smelt.cli.corpus import print_report
    from smelt.cli.demo import DEMO_CORPUS_OVERRIDES
    from smelt.corpus.config import FilterConfig, resolve_config

    assert resolve_config(None, DEMO_CORPUS_OVERRIDES).filters == FilterConfig(profile="docs")
    output = str(tmp_path / "corpus")
    summary = build(inputs, output)
    console = Console(record=True, width=200)
    print_report(console, output, summary, title="corpus")
    shown = console.export_text()
    assert "one example per reason" in shown
    assert all(reason in shown for reason in summary["filtered"])
    assert "Die Geschichte des Flusstals" in shown
