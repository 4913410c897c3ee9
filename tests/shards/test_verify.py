"""`smelt shards verify` and the loader refuse every kind of damaged dataset, naming it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from smelt.errors import InputError, IntegrityError
from smelt.prep.shard_check import verify_shards
from smelt.prep.shard_format import open_manifest
from smelt.training.loader import ShardLoader

SHARD = "train/shard_00001.bin"


def smelt_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "smelt.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.fixture
def shards_copy(tiny_shards, tmp_path) -> str:
    out = str(tmp_path / "shards")
    shutil.copytree(tiny_shards, out)
    return out


def flip_byte(path: str, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        value = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([value ^ 0x01]))


def test_verify_accepts_an_intact_dataset(tiny_shards):
    result = smelt_cli("shards", "verify", tiny_shards)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("OK ") and "shards" in lines[0]
    assert verify_shards(tiny_shards).shards == len(open_manifest(tiny_shards).shards)


def test_flipped_byte_is_refused_by_verify_and_loader(shards_copy):
    flip_byte(os.path.join(shards_copy, SHARD), 1001)
    result = smelt_cli("shards", "verify", shards_copy)
    assert result.returncode != 0
    assert SHARD in result.stderr and "SHA-256" in result.stderr
    assert "Traceback" not in result.stderr
    loader = ShardLoader(shards_copy, batch_size=64, seq_len=64, seed=0)
    with pytest.raises(IntegrityError, match=SHARD):
        for _ in range(loader.steps_per_epoch):
            loader.next_batch()


def test_out_of_vocab_id_is_refused(shards_copy):
    path = os.path.join(shards_copy, SHARD)
    with open(path, "r+b") as fh:
        fh.seek(400)
        fh.write((2**31).to_bytes(4, "little"))
    manifest_path = os.path.join(shards_copy, "manifest.json")
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    import hashlib

    entry = next(s for s in manifest["shards"] if s["path"] == SHARD)
    with open(path, "rb") as fh:
        entry["sha256"] = hashlib.sha256(fh.read()).hexdigest()  # checksum right, ids wrong
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh)
    with pytest.raises(IntegrityError, match=f"{SHARD}: token id 2147483648"):
        verify_shards(shards_copy)


def test_idx_that_disagrees_with_data_is_refused(shards_copy):
    idx = os.path.join(shards_copy, SHARD[:-4] + ".idx")
    flip_byte(idx, 8 * 3)  # the fourth document's end offset
    with pytest.raises(IntegrityError, match="shard_00001"):
        verify_shards(shards_copy)


def test_truncated_shard_is_refused_before_training(shards_copy):
    path = os.path.join(shards_copy, SHARD)
    os.truncate(path, os.path.getsize(path) - 4)
    with pytest.raises(IntegrityError, match=f"{SHARD}: .* bytes, the manifest expects"):
        open_manifest(shards_copy)
    result = smelt_cli("shards", "verify", shards_copy)
    assert result.returncode != 0 and SHARD in result.stderr


def test_absent_shard_is_refused_before_training(shards_copy):
    os.remove(os.path.join(shards_copy, SHARD))
    with pytest.raises(IntegrityError, match=f"{SHARD}: listed in the manifest but absent"):
        ShardLoader(shards_copy)


def test_missing_or_foreign_manifest_is_refused(shards_copy, tmp_path):
    with pytest.raises(InputError, match="manifest.json not found"):
        open_manifest(str(tmp_path / "nothing"))
    result = smelt_cli("shards", "verify", str(tmp_path / "nothing"))
    assert result.returncode != 0 and "manifest.json not found" in result.stderr
    manifest_path = os.path.join(shards_copy, "manifest.json")
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    manifest["format"] = "smelt-shards-v0"
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh)
    with pytest.raises(IntegrityError, match="smelt-shards-v0"):
        ShardLoader(shards_copy)


def test_idx_that_disagrees_with_data_is_refused_by_the_loader(shards_copy):
    idx = os.path.join(shards_copy, SHARD[:-4] + ".idx")
    flip_byte(idx, 8 * 3)  # the fourth document's end offset: still increasing, but wrong
    loader = ShardLoader(shards_copy, batch_size=64, seq_len=64, seed=0)
    with pytest.raises(IntegrityError, match=f"{SHARD}: document 3 does not end"):
        for _ in range(loader.steps_per_epoch):
            loader.next_batch()


def test_the_loader_checks_a_shard_once_per_process_until_it_changes(shards_copy, monkeypatch):
    from smelt.prep import shard_check

    checked: list[str] = []
    original = shard_check.check_shard
    monkeypatch.setattr(
        shard_check, "check_shard", lambda path, *a: checked.append(path) or original(path, *a)
    )

    def read_all() -> None:
        loader = ShardLoader(shards_copy, batch_size=64, seq_len=64, seed=0)
        for _ in range(loader.steps_per_epoch):
            loader.next_batch()
        loader.close()

    read_all()
    shards = len(open_manifest(shards_copy).split("train"))
    assert len(checked) == len(set(checked)) == shards
    read_all()
    assert len(checked) == shards  # a second loader in this process trusts the first check
    os.utime(os.path.join(shards_copy, SHARD))  # touched: it could be another file now
    read_all()
    assert checked[shards:] == [os.path.join(shards_copy, SHARD)]
