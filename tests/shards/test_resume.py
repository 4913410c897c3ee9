"""A shard build killed with SIGKILL and rerun gives the bytes of an uninterrupted build."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from smelt.prep import shards, tokenize
from tests.shards.corpus_factory import tree_bytes, write_corpus

# The build of the real code, slowed down in one step so that the test can kill it midway.
SLOW_BUILD = """
import sys, time
import smelt.prep.shards as shards
phase, corpus, tokenizer, output = sys.argv[1:5]
name = "tokenize_partition" if phase == "tokenize" else "pack_shard"
original = getattr(shards, name)
def slow(*args, **kwargs):
    result = original(*args, **kwargs)
    time.sleep(0.4)
    return result
setattr(shards, name, slow)
shards.build_shards(corpus, tokenizer, output, val_fraction=0.1, shard_tokens=8000)
"""


@pytest.fixture(scope="module")
def eight_part_corpus(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("corpus8"))
    write_corpus(root, parts=8)
    return root


@pytest.mark.parametrize(
    "phase,marker_glob", [("tokenize", "_work/parts/*.done"), ("pack", "_work/shards/*.done")]
)
def test_killed_build_resumes_to_identical_bytes(
    phase, marker_glob, eight_part_corpus, tiny_tokenizer, tmp_path, monkeypatch
):
    reference = str(tmp_path / "reference")
    shards.build_shards(
        eight_part_corpus, tiny_tokenizer, reference, val_fraction=0.1, shard_tokens=8000
    )
    output = str(tmp_path / "killed")
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_BUILD, phase, eight_part_corpus, tiny_tokenizer, output]
    )
    deadline = time.monotonic() + 60
    while len(glob.glob(os.path.join(output, marker_glob))) < 2:
        assert proc.poll() is None, "the build finished before it could be killed"
        assert time.monotonic() < deadline, "no progress markers appeared"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(output, "manifest.json"))
    done_parts = {
        os.path.basename(p)[: len("part-00000")]
        for p in glob.glob(os.path.join(output, "_work/parts/*.done"))
    }

    read: list[str] = []
    original = tokenize.iter_rows
    monkeypatch.setattr(
        tokenize, "iter_rows", lambda uri, *a: read.append(uri) or original(uri, *a)
    )
    shards.build_shards(
        eight_part_corpus, tiny_tokenizer, output, val_fraction=0.1, shard_tokens=8000
    )

    assert tree_bytes(output) == tree_bytes(reference)
    redone = {os.path.basename(uri)[: len("part-00000")] for uri in read}
    assert done_parts and not done_parts & redone  # finished partitions were not tokenized again
    assert len(redone) == 8 - len(done_parts)
