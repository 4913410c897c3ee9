"""storage/: the same operations on local paths and on S3 over HTTP (moto server)."""

from __future__ import annotations

import os

import pytest

from smelt import storage
from smelt.errors import InputError, IntegrityError
from smelt.storage import transfer
from smelt.storage.retry import is_transient, retry


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("s3_bucket") + "/prefix"


def test_write_read_list_exists_delete(root: str) -> None:
    storage.write_text(storage.join(root, "a", "one.txt"), "one")
    storage.write_bytes(storage.join(root, "a", "b", "two.bin"), b"\x00\x01")
    storage.write_text(storage.join(root, "c.json"), "{}")
    assert storage.read_text(storage.join(root, "a", "one.txt")) == "one"
    assert storage.read_bytes(storage.join(root, "a", "b", "two.bin")) == b"\x00\x01"
    assert storage.exists(storage.join(root, "c.json"))
    assert not storage.exists(storage.join(root, "missing"))
    names = [storage.basename(u) for u in storage.list_files(root)]
    assert names == ["two.bin", "one.txt", "c.json"]  # sorted by full path
    assert [storage.basename(u) for u in storage.list_files(root, suffixes=[".json"])] == ["c.json"]
    assert storage.read_range(storage.join(root, "a", "one.txt"), 1, 3) == b"ne"
    assert storage.size(storage.join(root, "a", "one.txt")) == 3
    storage.delete(storage.join(root, "a"), recursive=True)
    assert not storage.exists(storage.join(root, "a", "one.txt"))


def test_sha256_matches_between_local_and_remote(root: str, tmp_path) -> None:
    data = os.urandom(100_000)
    storage.write_bytes(storage.join(root, "blob"), data)
    assert storage.sha256_uri(storage.join(root, "blob")) == storage.sha256_bytes(data)
    local = str(tmp_path / "copy")
    storage.get_file(storage.join(root, "blob"), local)
    assert storage.sha256_file(local) == storage.sha256_bytes(data)


def test_atomic_write_leaves_target_untouched_on_error(root: str) -> None:
    target = storage.join(root, "atomic.txt")
    storage.write_text(target, "old")
    with pytest.raises(RuntimeError), storage.atomic_local_path(target) as tmp:
        with open(tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("crash mid-write")
    assert storage.read_text(target) == "old"
    assert [storage.basename(u) for u in storage.list_files(root)] == ["atomic.txt"]


def test_multipart_upload_is_verified(s3_bucket: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(transfer, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    monkeypatch.setattr(transfer, "PART_SIZE", 5 * 1024 * 1024)
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(12 * 1024 * 1024))
    uri = f"{s3_bucket}/big.bin"
    digest = transfer.upload_file(str(local), uri)
    assert transfer.remote_sha256(uri) == digest == storage.sha256_uri(uri)


def test_download_refuses_wrong_checksum(s3_bucket: str, tmp_path) -> None:
    storage.write_bytes(f"{s3_bucket}/x", b"payload")
    with pytest.raises(IntegrityError):
        transfer.download_file(f"{s3_bucket}/x", str(tmp_path / "x"), sha256="0" * 64)
    assert not (tmp_path / "x").exists()


def test_require_readable_names_the_missing_input(tmp_path, s3_bucket: str) -> None:
    with pytest.raises(InputError, match="not found"):
        storage.require_readable(str(tmp_path / "nope"))
    with pytest.raises(InputError, match="s3://no-such-bucket-xyz"):
        storage.require_readable("s3://no-such-bucket-xyz/data")


def test_retry_retries_transient_errors_only() -> None:
    calls = {"n": 0}

    @retry(attempts=4, base_delay=0.001)
    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("reset")
        return "ok"

    assert flaky() == "ok" and calls["n"] == 3

    @retry(attempts=4, base_delay=0.001)
    def missing() -> None:
        calls["n"] += 1
        raise FileNotFoundError("gone")

    calls["n"] = 0
    with pytest.raises(FileNotFoundError):
        missing()
    assert calls["n"] == 1
    assert not is_transient(ValueError("bad"))
