"""A rerun over a finished corpus: the same inputs change nothing, an input edited in place
(even to the same size) or another config is refused naming what changed, touching nothing.
The inputs include a symlinked subdirectory (read like a directory) and a link loop (read
once)."""

from __future__ import annotations

import json
import os
import random

import pytest

from tests.corpus_build.conftest import read_corpus, read_quarantine
from tests.failures.conftest import assert_one_error, prose, smelt, tree_digest

pytestmark = pytest.mark.slow  # a corpus build through the command line, then reruns


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_api) -> dict[str, str]:
    root = tmp_path_factory.mktemp("reruns")
    rng = random.Random(11)
    raw, elsewhere = root / "raw", root / "elsewhere"
    raw.mkdir()
    elsewhere.mkdir()
    (raw / "a.txt").write_text(prose(rng))
    (elsewhere / "b.txt").write_text(prose(rng))
    (raw / "linked").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(elsewhere, target_is_directory=True)  # a link loop
    config = root / "build.toml"
    config.write_text("partition_bytes = 4096\n[pii]\nner = false\n[filters.c4]\nenabled = false\n")
    paths = {"raw": str(raw), "out": str(root / "corpus"), "config": str(config), "root": str(root)}
    done = smelt(_args(paths), prefect_api, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return paths


def _args(paths: dict[str, str], config: str | None = None) -> list[str]:
    return ["corpus", "build", "--input", paths["raw"], "--output", paths["out"]] + [
        "--config",
        config or paths["config"],
        "--no-progress",
    ]


def test_a_symlinked_subdirectory_is_read_and_a_link_loop_ends(built):
    sources = sorted(
        os.path.relpath(row["source"], built["raw"]) for row in read_corpus(built["out"])
    )
    assert sources == ["a.txt", "linked/b.txt"]
    assert not any("directory" in row["reason"] for row in read_quarantine(built["out"]))


def test_a_rerun_of_a_finished_build_changes_nothing(built, prefect_api):
    before = tree_digest(built["out"])
    done = smelt(_args(built), prefect_api, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert tree_digest(built["out"]) == before


def test_another_config_is_refused_and_changes_nothing(built, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text("partition_bytes = 4096\n[pii]\nner = false\n")
    before = tree_digest(built["root"])
    done = smelt(_args(built, str(other)))
    assert_one_error(done, built["out"], "another config")
    assert tree_digest(built["root"]) == before


def test_an_input_edited_in_place_to_the_same_size_is_refused(built):
    """The report: the rerun returned the old corpus, exit 0 (identity was path + size)."""
    path = os.path.join(built["raw"], "a.txt")
    with open(path) as fh:
        original, stamp = fh.read(), os.stat(path).st_mtime_ns
    edited = original.replace("the", "THE", 1)
    assert len(edited) == len(original) and edited != original
    try:
        with open(path, "w") as fh:
            fh.write(edited)
        if os.stat(path).st_mtime_ns == stamp:  # a filesystem with coarse times
            os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
        before = tree_digest(built["out"])
        done = smelt(_args(built))
        assert_one_error(done, "changed", path)
        assert tree_digest(built["out"]) == before
    finally:
        with open(path, "w") as fh:
            fh.write(original)
        os.utime(path, ns=(stamp, stamp))
    with open(os.path.join(built["out"], "stats.json")) as fh:
        assert json.load(fh)["kept"] == 2
