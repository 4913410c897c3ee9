"""Verified S3 transfers with boto3, where multipart control and checksums matter.

Uploads go multipart above `MULTIPART_THRESHOLD`, every part carrying a SHA-256 checksum that
the server verifies on receipt; the whole file's SHA-256 is stored in the object's metadata
(`sha256`) and compared after the upload, so a listed object is a complete, intact one.
"""

from __future__ import annotations

import os
from functools import lru_cache

from smelt.errors import IntegrityError
from smelt.storage import uri as uris
from smelt.storage.checksums import sha256_file
from smelt.storage.objects import temporary_file
from smelt.storage.retry import retry

MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 32 * 1024 * 1024


@lru_cache(maxsize=4)
def _client(endpoint: str | None):  # noqa: ANN202 - boto3 client type is dynamic
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60
    )
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def s3_client():  # noqa: ANN201
    """A boto3 S3 client for the configured endpoint (credentials from the environment)."""
    return _client(uris.s3_endpoint())


def _transfer_config():  # noqa: ANN202
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE, max_concurrency=4
    )


@retry()
def upload_file(local_path: str, uri: str, sha256: str | None = None) -> str:
    """Upload a local file to `s3://...`, verified; returns its SHA-256."""
    digest = sha256 or sha256_file(local_path)
    bucket, key = uris.split_s3(uri)
    client = s3_client()
    client.upload_file(
        local_path,
        bucket,
        key,
        Config=_transfer_config(),
        ExtraArgs={"Metadata": {"sha256": digest}, "ChecksumAlgorithm": "SHA256"},
    )
    head = client.head_object(Bucket=bucket, Key=key)
    if (
        head["ContentLength"] != os.path.getsize(local_path)
        or head.get("Metadata", {}).get("sha256") != digest
    ):
        raise IntegrityError(f"upload of {uri} did not verify (size or SHA-256 differs); retry it")
    return digest


def remote_sha256(uri: str) -> str | None:
    """The SHA-256 recorded at upload time in the object's metadata, if any."""
    bucket, key = uris.split_s3(uri)
    head = s3_client().head_object(Bucket=bucket, Key=key)
    return head.get("Metadata", {}).get("sha256")


@retry()
def download_file(uri: str, local_path: str, sha256: str | None = None) -> str:
    """Download `s3://...` to a local path atomically, verifying SHA-256 when known."""
    bucket, key = uris.split_s3(uri)
    directory = os.path.dirname(os.path.abspath(local_path))
    os.makedirs(directory, exist_ok=True)
    tmp = temporary_file(directory, ".smelt-dl-")
    try:
        s3_client().download_file(bucket, key, tmp, Config=_transfer_config())
        digest = sha256_file(tmp)
        expected = sha256 or remote_sha256(uri)
        if expected and digest != expected:
            raise IntegrityError(f"{uri}: SHA-256 {digest[:12]}… does not match {expected[:12]}…")
        os.replace(tmp, local_path)
        return digest
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
