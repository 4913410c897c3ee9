"""Files are written with the process's umask (temporary files of atomic writes are made 0600,
and a rename keeps the mode), and an input directory is listed following symbolic links, each
directory once."""

from __future__ import annotations

import os
import stat

import pyarrow as pa
import pytest

from smelt import storage
from smelt.corpus import tables
from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers import input_files, read_documents
from smelt.corpus.writer import write_documents
from smelt.prep.shards import build_shards
from smelt.prep.tokenizer import train_tokenizer
from tests.shards.corpus_factory import write_corpus


def modes(root) -> dict[str, int]:
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = stat.S_IMODE(os.stat(path).st_mode)
    return found


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_storage_writes_files_with_the_umask(tmp_path, s3_bucket, umask, mask, mode):
    umask(mask)
    storage.write_text(str(tmp_path / "a.json"), "{}")
    tables.write_table(str(tmp_path / "t.parquet"), pa.table({"x": [1]}))
    write_documents([Document(id="d", text="t", source="s")], str(tmp_path / "part.parquet"))
    storage.put_file(str(tmp_path / "a.json"), str(tmp_path / "copied" / "a.json"))
    storage.write_text(f"{s3_bucket}/b.json", "{}")
    storage.get_file(f"{s3_bucket}/b.json", str(tmp_path / "downloaded.json"))
    assert set(modes(tmp_path).values()) == {mode}, modes(tmp_path)


def test_tokenizer_and_shard_files_are_readable_by_others_under_umask_022(tmp_path, umask):
    corpus, tok, shards = (str(tmp_path / name) for name in ("corpus", "tok", "shards"))
    write_corpus(corpus, parts=2, limit=200)
    train_tokenizer(corpus, tok, vocab_size=300)
    build_shards(corpus, tok, shards, val_fraction=0.1)
    found = {**modes(tok), **modes(shards)}
    assert "tokenizer.json" in found and "manifest.json" in found
    assert set(found.values()) == {0o644}, found


def test_a_symlinked_directory_is_listed_and_a_loop_read_once(tmp_path):
    raw, elsewhere = tmp_path / "raw", tmp_path / "elsewhere"
    (raw / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (raw / "a.txt").write_text("a")
    (raw / "sub" / "b.txt").write_text("b")
    (elsewhere / "c.txt").write_text("c")
    (raw / "linked").symlink_to(elsewhere, target_is_directory=True)
    (raw / "sub" / "up").symlink_to(raw, target_is_directory=True)  # a loop back to the root
    (elsewhere / "self").symlink_to(elsewhere, target_is_directory=True)  # a loop onto itself
    listed = [os.path.relpath(uri, raw) for uri in input_files(str(raw))]
    assert listed == ["a.txt", "linked/c.txt", "sub/b.txt"]


def test_a_broken_link_is_listed_and_quarantined_by_name(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    [uri] = input_files(str(raw))
    [item] = read_documents(uri, ReaderConfig())
    assert isinstance(item, Quarantined) and "not found" in item.reason and item.source == uri
