"""All dedup stages in one process: recall at known Jaccard, uniques kept, exact duplicates across
partitions, survivors, resume markers, S3, and dedup against an earlier corpus."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from smelt import storage
from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup.plan import deduplicate
from smelt.errors import ConfigError, InputError
from tests.dedup.conftest import near_copy, write_partition

JACCARDS = (0.8, 0.85, 0.9, 0.95)


def corpus(vocab, clusters=160, uniques=300, dissimilar=40, words=300):
    """Rows (id, text) and the ground truth: near pairs, dissimilar pairs (J=0.5), uniques."""
    rows, near_pairs, far_pairs = [], [], []
    for index in range(clusters):
        base = vocab.words(words)
        copy = near_copy(base, JACCARDS[index % len(JACCARDS)], vocab)
        rows += [(f"near{index:04d}a", " ".join(base)), (f"near{index:04d}b", " ".join(copy))]
        near_pairs.append((f"near{index:04d}a", f"near{index:04d}b"))
    for index in range(dissimilar):
        base = vocab.words(words)
        rows += [
            (f"far{index:04d}a", " ".join(base)),
            (f"far{index:04d}b", " ".join(near_copy(base, 0.5, vocab))),
        ]
        far_pairs.append((f"far{index:04d}a", f"far{index:04d}b"))
    rows += [(f"uniq{index:04d}", " ".join(vocab.words(words))) for index in range(uniques)]
    return rows, near_pairs, far_pairs


def partitions(root, rows, count=3):
    return [
        write_partition(root / "extracted" / f"part-{i:05d}.parquet", rows[i::count])
        for i in range(count)
    ]


def removed_rows(uris):
    """id -> kind of every removed document (row positions are checked elsewhere)."""
    return {row["id"]: row["kind"] for uri in uris if uri for row in pq.read_table(uri).to_pylist()}


def test_near_duplicates_removed_uniques_kept(tmp_path, vocab):
    rows, near_pairs, far_pairs = corpus(vocab)
    uris = deduplicate(
        partitions(tmp_path, rows), str(tmp_path / "work"), str(tmp_path / "out"), DedupConfig()
    )
    removed = removed_rows(uris)
    caught = sum(1 for a, b in near_pairs if (a in removed) != (b in removed))
    assert caught / len(near_pairs) >= 0.95
    assert all(removed[id_] == "near" for id_ in removed)
    far_ids = {id_ for pair in far_pairs for id_ in pair}
    unique_ids = {id_ for id_, _ in rows if id_.startswith("uniq")} | far_ids
    kept = len(unique_ids - set(removed)) / len(unique_ids)
    assert kept >= 0.98
    assert len(uris) == 3


def test_exact_duplicates_across_partitions_keep_longest_then_smallest_id(tmp_path, vocab):
    text = " ".join(vocab.words(200))
    longer = text + " " + " ".join(vocab.words(3))
    rows = [
        ("d3", text),
        ("other1", " ".join(vocab.words(200))),
        ("d1", text),
        ("d2", text),
        ("other2", " ".join(vocab.words(200))),
        ("d4", longer),
    ]
    uris = deduplicate(
        partitions(tmp_path, rows), str(tmp_path / "work"), str(tmp_path / "out"), DedupConfig()
    )
    removed = removed_rows(uris)
    # d4 (longest) survives: the copies of `text` are near (not exact) duplicates of it
    assert removed == {"d1": "near", "d2": "near", "d3": "near"}
    uris = deduplicate(
        partitions(tmp_path / "again", rows[:5]),
        str(tmp_path / "work2"),
        str(tmp_path / "out2"),
        DedupConfig(near=False),
    )
    assert removed_rows(uris) == {"d2": "exact", "d3": "exact"}


def test_nothing_removed_gives_none_and_empty_partitions_are_fine(tmp_path, vocab):
    rows = [(f"u{i}", " ".join(vocab.words(100))) for i in range(5)] + [("empty", "")]
    parts = partitions(tmp_path, rows, count=2)
    parts.append(write_partition(tmp_path / "extracted" / "part-00002.parquet", []))
    uris = deduplicate(parts, str(tmp_path / "work"), str(tmp_path / "out"), DedupConfig())
    assert uris == [None, None, None]


def test_state_and_meta_persist_and_reruns_skip_finished_steps(tmp_path, vocab):
    rows, _, _ = corpus(vocab, clusters=20, uniques=20, dissimilar=0)
    parts = partitions(tmp_path, rows)
    out, work = tmp_path / "out", tmp_path / "work"
    first = removed_rows(deduplicate(parts, str(work), str(out), DedupConfig()))
    meta = json.loads((out / "dedup" / "meta.json").read_text())
    assert meta["num_bands"] == 20 and meta["rows_per_band"] == 8 and meta["ngram"] == 5
    assert meta["partitions"] == ["part-00000", "part-00001", "part-00002"]
    assert meta["hash_function"].startswith("rensa")
    signature_file = out / "dedup" / "signatures" / "part-00001.parquet"
    stamp = signature_file.stat().st_mtime_ns
    # as after a kill -9 between outputs and marker: that one step reruns, the others are skipped
    os.remove(out / "dedup" / "signatures" / "part-00000.done")
    os.remove(work / "dedup" / "pairs" / "range-00003.done")
    again = removed_rows(deduplicate(parts, str(work), str(out), DedupConfig()))
    assert again == first
    assert signature_file.stat().st_mtime_ns == stamp
    assert (out / "dedup" / "signatures" / "part-00000.done").exists()


def test_dedup_against_earlier_corpus(tmp_path, vocab):
    old_rows = [(f"old{i}", " ".join(vocab.words(300))) for i in range(30)]
    old_parts = partitions(tmp_path / "old", old_rows, count=2)
    previous = tmp_path / "previous"
    assert deduplicate(old_parts, str(tmp_path / "w1"), str(previous), DedupConfig()) == [None] * 2
    old_texts = [text.split() for _, text in old_rows]
    new_rows = [
        ("n-exact", " ".join(old_texts[0])),
        ("n-near", " ".join(near_copy(old_texts[1], 0.9, vocab) + vocab.words(40))),
        ("n-new", " ".join(vocab.words(300))),
    ]
    new_rows += [(f"n-pair{s}", " ".join(old_texts[5]) + f" tail{s}") for s in "ab"]
    uris = deduplicate(
        partitions(tmp_path / "new", new_rows, count=2),
        str(tmp_path / "w2"),
        str(tmp_path / "out"),
        DedupConfig(),
        dedup_against=[str(previous)],
    )
    # the new documents go (the old corpus's copy survives), even when longer than it
    assert removed_rows(uris) == {
        "n-exact": "exact",
        "n-near": "near",
        "n-paira": "near",
        "n-pairb": "near",
    }


def test_dedup_against_checks_parameters(tmp_path, vocab):
    parts = partitions(tmp_path, [("a", " ".join(vocab.words(50)))], count=1)
    deduplicate(parts, str(tmp_path / "w"), str(tmp_path / "prev"), DedupConfig())
    with pytest.raises(ConfigError, match="num_bands"):
        deduplicate(
            parts,
            str(tmp_path / "w2"),
            str(tmp_path / "o"),
            DedupConfig(num_bands=14),
            dedup_against=[str(tmp_path / "prev")],
        )
    with pytest.raises(InputError, match="no dedup state"):
        deduplicate(
            parts,
            str(tmp_path / "w3"),
            str(tmp_path / "o"),
            DedupConfig(),
            dedup_against=[str(tmp_path / "nowhere")],
        )


def test_on_s3(s3_bucket, tmp_path, vocab):
    rows, near_pairs, _ = corpus(vocab, clusters=12, uniques=10, dissimilar=0)
    local = partitions(tmp_path, rows, count=2)
    remote = []
    for path in local:
        uri = f"{s3_bucket}/work/extracted/{os.path.basename(path)}"
        storage.put_file(path, uri)
        remote.append(uri)
    uris = deduplicate(
        remote, f"{s3_bucket}/work", f"{s3_bucket}/corpus", DedupConfig(bucket_partitions=4)
    )
    removed = {
        row["id"]
        for uri in uris
        if uri
        for row in pq.read_table(storage.open_read(uri)).to_pylist()
    }
    assert sum((a in removed) != (b in removed) for a, b in near_pairs) >= 11
    assert storage.exists(f"{s3_bucket}/corpus/dedup/meta.json")


def test_changed_partition_is_resigned_and_its_pairs_recomputed(tmp_path, vocab):
    rows = [(f"u{i}", " ".join(vocab.words(120))) for i in range(6)]
    parts = partitions(tmp_path, rows, count=2)
    out, work = str(tmp_path / "out"), str(tmp_path / "work")
    assert deduplicate(parts, work, out, DedupConfig()) == [None, None]
    # the same partition file now also holds a copy of a document of the other partition
    write_partition(
        tmp_path / "extracted" / "part-00000.parquet", [*rows[0::2], ("copy", rows[1][1])]
    )
    removed = removed_rows(deduplicate(parts, work, out, DedupConfig()))
    assert removed == {"u1": "exact"}  # equal length: the smaller id ("copy") survives
