"""Partition planning: bounded, deterministic, saved once and reused, refused when inputs change."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smelt.corpus.config import CorpusConfig
from smelt.corpus.partition import load_plan, partition_files, plan_build
from smelt.errors import InputError


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=5000), max_size=60),
    bound=st.integers(min_value=1, max_value=8000),
    max_files=st.integers(1, 7),
)
def test_partitions_keep_order_and_respect_bounds(sizes, bound, max_files):
    files = [(f"/in/f{i:03d}.txt", size) for i, size in enumerate(sizes)]
    parts = partition_files(files, bound, max_files=max_files)
    assert [uri for p in parts for uri in p.files] == [uri for uri, _ in files]
    assert [p.index for p in parts] == list(range(len(parts)))
    sized = dict(files)
    for part in parts:
        assert 1 <= len(part.files) <= max_files
        assert part.bytes == sum(sized[uri] for uri in part.files)
        assert part.bytes <= bound or len(part.files) == 1  # only a lone big file exceeds it


def test_many_small_files_make_few_partitions():
    files = [(f"/in/f{i:06d}.txt", 300) for i in range(200_000)]
    parts = partition_files(files, 64 * 1024 * 1024)
    assert 16 <= len(parts) <= 200  # neither one partition per file nor one in all


def test_small_inputs_still_spread_over_cores():
    files = [(f"/in/f{i:03d}.html", 100_000) for i in range(100)]  # 10 MB in all
    assert len(partition_files(files, 64 * 1024 * 1024)) >= 8


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
    with pytest.raises(InputError, match="already holds a build of other inputs"):
        plan_build([inputs], output, CorpusConfig())
    (tmp_path / "in" / "late.txt").unlink()
    with pytest.raises(InputError, match="another config"):
        plan_build([inputs], output, CorpusConfig().replace(partition_bytes=1000))
    assert plan_build([inputs], output, CorpusConfig()).file_count == 6


def test_missing_input_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        plan_build([str(tmp_path / "nope")], str(tmp_path / "out"), CorpusConfig())
    assert not (tmp_path / "out").exists()


def test_unreadable_bucket_is_an_input_error(s3_server, tmp_path):
    with pytest.raises(InputError, match="s3://no-such-bucket-here"):
        plan_build(["s3://no-such-bucket-here/raw"], str(tmp_path / "out"), CorpusConfig())
