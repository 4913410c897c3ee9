"""Incremental builds (`only_new`): a night reads only the objects added or changed since the
corpora it deduplicates against, a changed object's new documents replace its old ones (in
dedup, in the record, and in the shards of the corpus that held them), and a night with
nothing new writes nothing."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime

import pytest

from smelt import storage
from smelt.corpus import tables
from smelt.corpus.build import build_corpus
from smelt.corpus.consumed import read_consumed
from smelt.corpus.layout import CorpusLayout
from smelt.corpus.partition import load_plan
from smelt.corpus.supersede import read_supersedes, superseded_sources
from smelt.flows.corpus_build import CorpusBuildParams, resolve_request
from tests.corpus_build.conftest import prose, read_corpus

FAST = {"pii": {"enabled": False}, "partition_bytes": 4000}


def _night(root: str, raw: str, day: int, only_new: bool = True, main: bool = False) -> dict:
    """The nightly build of `raw` for 2026-11-<day>: `nightly/{date}` against every earlier
    night (and the main corpus)."""
    earlier = [storage.join(root, "main")] if main else []
    params = CorpusBuildParams(
        inputs=[raw],
        output=storage.join(root, "nightly", "{date}"),
        dedup_against=[*earlier, storage.join(root, "nightly", "*")],
        config_overrides=FAST,
        only_new=only_new,
    )
    return build_corpus(resolve_request(params, datetime(2026, 11, day, 2, tzinfo=UTC)))


def _main(root: str, raw: str) -> dict:
    params = CorpusBuildParams(
        inputs=[raw], output=storage.join(root, "main"), config_overrides=FAST
    )
    return build_corpus(resolve_request(params))


def _write(raw: str, name: str, text: str) -> str:
    uri = storage.join(raw, name)
    storage.write_text(uri, text)
    return uri


def _sources(corpus: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in read_corpus(corpus):
        counts[row["source"]] = counts.get(row["source"], 0) + 1
    return counts


@pytest.mark.slow  # three builds on S3
def test_second_night_reads_only_the_objects_added_since(s3_bucket):
    """On S3 (versions are ETags): night 2 reads the 2 objects added after night 1, says it
    skipped the 4 others, and its record lists exactly what it read."""
    rng = random.Random(3)
    raw, root = f"{s3_bucket}/raw/incoming", f"{s3_bucket}/corpus"
    first = [_write(raw, f"doc-{i}.txt", prose(rng)) for i in range(4)]
    _main(root, raw)
    assert _night(root, raw, 20, main=True)["written"] is False  # nothing new since main

    added = [_write(raw, f"doc-{i}.txt", prose(rng)) for i in (4, 5)]
    summary = _night(root, raw, 21, main=True)
    night = f"{root}/nightly/2026-11-21"
    assert summary["only_new"] == {"new": 2, "changed": 0, "skipped": 4, "superseded_docs": 0}
    assert set(_sources(night)) == set(added)
    assert [r.uri for r in read_consumed(night)] == sorted(added)
    assert all(r.documents == 1 and r.sha256 is None for r in read_consumed(night))
    assert {f.uri for f in load_plan(night).files} == set(added)
    assert _sources(f"{root}/main") == dict.fromkeys(first, 1)


def test_a_changed_object_replaces_its_old_documents(tmp_path):
    """An edited page comes back in the next night (not dropped as a near-duplicate of its
    old version), its old documents are recorded as superseded, and the shard set of the
    night that held them drops them on its next build."""
    from smelt.prep.shards import build_shards, fingerprint_for, is_current
    from smelt.prep.tokenizer import train_tokenizer

    rng = random.Random(5)
    raw, root = str(tmp_path / "raw"), str(tmp_path / "corpus")
    page = prose(rng, lines=12)
    edited = page.rsplit("\n", 1)[0] + "\n" + prose(rng, lines=1)  # one line of twelve changed
    page_uri = _write(raw, "page.txt", page)
    other = _write(raw, "other.txt", prose(rng))
    _night(root, raw, 20)
    night1, night2 = f"{root}/nightly/2026-11-20", f"{root}/nightly/2026-11-21"
    assert _sources(night1) == {page_uri: 1, other: 1}
    tokenizer = str(tmp_path / "tokenizer")
    train_tokenizer(night1, tokenizer, vocab_size=512)
    shards1 = str(tmp_path / "shards" / "2026-11-20")
    before = build_shards(night1, tokenizer, shards1, val_fraction=0.0)
    assert before.report["docs"] == 2

    os.utime(_write(raw, "page.txt", edited), (1, 1))  # a new version, an old mtime
    summary = _night(root, raw, 21)
    assert summary["only_new"] == {"new": 0, "changed": 1, "skipped": 1, "superseded_docs": 1}
    assert summary["duplicates"] == {"exact": 0, "near": 0}
    [row] = read_corpus(night2)
    assert row["source"] == page_uri and row["text"].endswith(edited.rsplit("\n", 1)[1])
    [replaced] = read_supersedes(night2)
    assert (replaced.corpus, replaced.source, replaced.documents) == (night1, page_uri, 1)
    assert superseded_sources(night1) == {page_uri}

    assert not is_current(shards1, fingerprint_for(night1, tokenizer, val_fraction=0.0))
    after = build_shards(night1, tokenizer, shards1, val_fraction=0.0)
    assert after.report["docs"] == 1 and after.report["superseded_docs_skipped"] == 1

    third = _night(root, raw, 22)  # the live version is night 2's: nothing to do
    assert third["written"] is False and third["only_new"]["skipped"] == 2


def test_an_object_changed_back_is_read_again(tmp_path):
    """Only the live version counts as consumed: a page edited (night 2) and then restored to
    its first version, same mtime included (night 3), is read again and replaces night 2's
    documents, although night 1 once consumed exactly this version."""
    rng = random.Random(23)
    raw, root = str(tmp_path / "raw"), str(tmp_path / "corpus")
    first, second = prose(rng), prose(rng)

    def publish(text: str, mtime_ns: int) -> str:
        uri = _write(raw, "page.txt", text)
        os.utime(uri, ns=(mtime_ns, mtime_ns))
        return uri

    page_uri = publish(first, 10**18)
    _night(root, raw, 20)
    publish(second, 2 * 10**18)
    _night(root, raw, 21)
    publish(first, 10**18)
    summary = _night(root, raw, 22)
    assert summary["only_new"] == {"new": 0, "changed": 1, "skipped": 0, "superseded_docs": 1}
    assert [row["text"] for row in read_corpus(f"{root}/nightly/2026-11-22")] == [first]
    assert superseded_sources(f"{root}/nightly/2026-11-21") == {page_uri}


def test_a_notice_counts_only_once_its_build_is_finished(tmp_path):
    """A build that dies after leaving its notices hides nothing: its corpus has no
    stats.json, so the earlier corpus keeps every document until it finishes."""
    rng = random.Random(11)
    raw, root = str(tmp_path / "raw"), str(tmp_path / "corpus")
    page_uri = _write(raw, "page.txt", prose(rng))
    _night(root, raw, 20)
    night1, night2 = f"{root}/nightly/2026-11-20", f"{root}/nightly/2026-11-21"
    _write(raw, "page.txt", prose(rng))
    _night(root, raw, 21)
    assert superseded_sources(night1) == {page_uri}
    storage.delete(CorpusLayout.at(night2).stats)
    assert superseded_sources(night1) == set()


def test_a_touched_file_with_the_same_content_is_unchanged(tmp_path):
    """A local file whose mtime moved (copied again, touched) is compared by its SHA-256."""
    rng = random.Random(7)
    raw, root = str(tmp_path / "raw"), str(tmp_path / "corpus")
    uri = _write(raw, "page.txt", prose(rng))
    _night(root, raw, 20)
    [record] = read_consumed(f"{root}/nightly/2026-11-20")
    assert record.sha256 == storage.sha256_file(uri)
    os.utime(uri, ns=(1, 1))
    summary = _night(root, raw, 21)
    assert summary["written"] is False
    assert summary["only_new"] == {"new": 0, "changed": 0, "skipped": 1, "superseded_docs": 0}


def test_an_empty_night_writes_nothing(tmp_path):
    rng = random.Random(9)
    raw, root = str(tmp_path / "raw"), str(tmp_path / "corpus")
    _write(raw, "a.txt", prose(rng))
    _night(root, raw, 20)
    summary = _night(root, raw, 21)
    assert summary["written"] is False and summary["kept"] == 0
    assert not os.path.exists(f"{root}/nightly/2026-11-21")


def test_without_only_new_every_object_is_read_and_recorded(tmp_path):
    """A full build records what it consumed too (the next `--only-new` build needs it)."""
    rng = random.Random(13)
    raw, root = str(tmp_path / "raw"), str(tmp_path / "corpus")
    uris = [_write(raw, f"{i}.txt", prose(rng)) for i in range(3)]
    _night(root, raw, 20)
    summary = _night(root, raw, 21, only_new=False)
    assert "only_new" not in summary
    # every object is read again; dedup against night 1 then removes them all
    assert summary["input_docs"] == 3 and summary["duplicates"]["exact"] == 3
    records = read_consumed(f"{root}/nightly/2026-11-21")
    assert [r.uri for r in records] == uris and all(r.documents == 0 for r in records)
    assert tables.read_table(CorpusLayout.at(f"{root}/nightly/2026-11-21").inputs).num_rows == 3


@pytest.mark.parametrize("with_record", [True, False])
def test_a_corpus_built_before_the_record_answers_from_its_plan(tmp_path, with_record):
    rng = random.Random(17)
    raw, root = str(tmp_path / "raw"), str(tmp_path / "corpus")
    uri = _write(raw, "a.txt", prose(rng))
    _night(root, raw, 20)
    night1 = f"{root}/nightly/2026-11-20"
    if not with_record:
        storage.delete(CorpusLayout.at(night1).inputs)
    [record] = read_consumed(night1)
    assert record.uri == uri and record.partitions == (0,)
    assert (record.documents is not None) == with_record
    assert _night(root, raw, 21)["written"] is False


@pytest.mark.slow
def test_the_command_line_says_how_many_objects_it_skipped(tmp_path, cli):
    """`smelt corpus build --only-new`: the counts table, then a night with nothing new."""
    rng = random.Random(19)
    raw, root = str(tmp_path / "raw"), str(tmp_path / "corpus")
    for i in range(2):
        _write(raw, f"{i}.txt", prose(rng))
    _night(root, raw, 20)
    _write(raw, "2.txt", prose(rng))
    config = tmp_path / "fast.toml"
    config.write_text("partition_bytes = 4000\n[pii]\nenabled = false\n")

    def build(night: str):
        args = ["corpus", "build", "--input", raw, "--output", f"{root}/nightly/{night}"]
        args += ["--dedup-against", f"{root}/nightly/*", "--only-new", "--config", str(config)]
        return cli([*args, "--no-progress"])

    second = build("2026-11-21")
    assert second.returncode == 0, second.stderr[-3000:]
    cells = [[c.strip() for c in line.split("│")[1:3]] for line in second.stdout.splitlines()]
    rows = {cell[0]: cell[1] for cell in cells if cell and cell[0].startswith("only_new")}
    assert rows == {
        "only_new: new": "1",
        "only_new: changed": "0",
        "only_new: skipped": "2",
        "only_new: superseded_docs": "0",
    }, second.stdout
    third = build("2026-11-22")
    assert third.returncode == 0, third.stderr[-3000:]
    assert "nothing new: 3 input object(s) unchanged" in third.stdout, third.stdout
    assert not os.path.exists(f"{root}/nightly/2026-11-22")
