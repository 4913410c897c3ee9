"""Partition planning: bounded, deterministic, saved once and reused, refused when inputs change."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smelt.corpus.config import CorpusConfig, ReaderConfig
from smelt.corpus.partition import InputFile, load_plan, partition_files, plan_build
from smelt.corpus.readers import read_documents
from smelt.errors import InputError


def _files(sizes, suffix=".txt"):
    return [InputFile(f"/in/f{i:06d}{suffix}", size, "1") for i, size in enumerate(sizes)]


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=5000), max_size=60),
    bound=st.integers(min_value=1, max_value=8000),
    max_files=st.integers(1, 7),
)
def test_partitions_keep_order_and_respect_bounds(sizes, bound, max_files):
    files = _files(sizes)
    parts = partition_files(files, bound, max_files=max_files)
    assert [uri for p in parts for uri in p.files] == [f.uri for f in files]
    assert [p.index for p in parts] == list(range(len(parts)))
    for part in parts:
        assert 1 <= len(part.pieces) <= max_files
        assert part.bytes == sum(piece.bytes for piece in part.pieces)
        assert part.bytes <= bound or len(part.pieces) == 1  # only a lone big piece exceeds it


def test_many_small_files_make_few_partitions():
    parts = partition_files(_files([300] * 200_000), 64 * 1024 * 1024)
    assert 16 <= len(parts) <= 200  # neither one partition per file nor one in all


def test_small_inputs_still_spread_over_cores():
    parts = partition_files(_files([100_000] * 100, ".html"), 64 * 1024 * 1024)  # 10 MB
    assert len(parts) >= 16


def test_partitions_are_balanced_by_expected_work_not_bytes():
    """An HTML byte costs extraction; a JSONL byte costs a parse: equal work, unequal bytes."""
    files = _files([200_000] * 40, ".html") + [
        InputFile(f"/in/g{i:03d}.jsonl", 200_000, "1") for i in range(40)
    ]
    files.sort(key=lambda f: f.uri)
    parts = partition_files(files, 64 * 1024 * 1024)
    costs = [p.cost for p in parts]
    assert max(costs[:-1]) <= 2 * min(costs[:-1])  # the last one takes what is left

    def pure(suffix):
        return [p.bytes for p in parts[:-1] if all(u.endswith(suffix) for u in p.files)]

    assert min(pure(".jsonl")) > 4 * max(pure(".html"))


def test_a_huge_jsonl_file_is_split_and_every_line_read_once(tmp_path):
    path = tmp_path / "big.jsonl"
    lines = [json.dumps({"id": f"d{i}", "text": "word " * (i % 37 + 1)}) for i in range(20_000)]
    path.write_text("\n".join(lines) + "\n")
    item = InputFile(str(path), path.stat().st_size, "1")
    parts = partition_files([item], 64 * 1024 * 1024)
    pieces = [piece for part in parts for piece in part.pieces]
    assert len(pieces) >= 8
    assert [p.start for p in pieces[1:]] == [p.end for p in pieces[:-1]]  # they tile the file
    ids = [
        doc.id
        for piece in pieces
        for doc in read_documents(piece.uri, ReaderConfig(), piece.start, piece.end)
    ]
    assert ids == [f"d{i}" for i in range(20_000)]


def test_a_huge_parquet_file_is_split_by_row_groups(tmp_path):
    path = tmp_path / "big.parquet"
    rows = [{"id": f"r{i}", "text": f"text of row {i} " * 40} for i in range(40_000)]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1000)
    item = InputFile(str(path), path.stat().st_size, "1")
    pieces = [piece for part in partition_files([item], 1 << 30) for piece in part.pieces]
    ordinary = [InputFile(f"/in/x{i}.txt", item.size, "1") for i in range(16)]
    assert len(partition_files([item, *ordinary], 1 << 30)) >= 17  # the big one is not one unit
    assert len(pieces) >= 8
    ids = [
        doc.id
        for piece in pieces
        for doc in read_documents(piece.uri, ReaderConfig(), piece.start, piece.end)
    ]
    assert ids == [f"r{i}" for i in range(40_000)]


def _inputs(tmp_path, count=6):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(count):
        (folder / f"doc{i}.txt").write_text("word " * (200 + i))
    return str(folder)


def test_plan_is_saved_and_reused(tmp_path):
    inputs, output = _inputs(tmp_path), str(tmp_path / "out")
    config = CorpusConfig().replace(partition_bytes=2500)
    plan = plan_build([inputs], output, config)
    assert len(plan.partitions) == 3
    saved = json.loads((tmp_path / "out" / "_work" / "plan.json").read_text())
    assert saved["fingerprint"] == plan.fingerprint
    again = plan_build([inputs + "/"], output, config)
    assert again.to_dict() == plan.to_dict() == load_plan(output).to_dict()


def test_plan_mismatch_is_refused(tmp_path):
    inputs, output = _inputs(tmp_path), str(tmp_path / "out")
    plan_build([inputs], output, CorpusConfig())
    (tmp_path / "in" / "late.txt").write_text("a file that arrived later")
    with pytest.raises(InputError, match="1 input file.s. added .e.g. .*late.txt"):
        plan_build([inputs], output, CorpusConfig())
    (tmp_path / "in" / "late.txt").unlink()
    edited = tmp_path / "in" / "doc0.txt"
    before = edited.stat()
    edited.write_text(edited.read_text().replace("word", "WORD"))  # same size, new content
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    with pytest.raises(InputError, match="1 input file.s. changed .e.g. .*doc0.txt"):
        plan_build([inputs], output, CorpusConfig())
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(InputError, match="another config"):
        plan_build([inputs], output, CorpusConfig().replace(partition_bytes=2000))
    assert plan_build([inputs], output, CorpusConfig()).file_count == 6


def test_missing_input_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        plan_build([str(tmp_path / "nope")], str(tmp_path / "out"), CorpusConfig())
    assert not (tmp_path / "out").exists()


def test_unreadable_bucket_is_an_input_error(s3_server, tmp_path):
    with pytest.raises(InputError, match="s3://no-such-bucket-here"):
        plan_build(["s3://no-such-bucket-here/raw"], str(tmp_path / "out"), CorpusConfig())
