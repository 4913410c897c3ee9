"""URIs: one way to name a place, whether a local path or `s3://bucket/prefix`.

Everything above storage/ passes URIs as plain strings; this module turns a URI into an fsspec
filesystem and a path on it. S3 honours the standard AWS variables, and `AWS_ENDPOINT_URL` (or
`AWS_ENDPOINT_URL_S3`) selects an S3-compatible server such as MinIO, R2 or moto.
"""

from __future__ import annotations

import os
import posixpath
from functools import lru_cache

import fsspec
from fsspec.implementations.local import LocalFileSystem

S3_SCHEME = "s3://"


def is_s3(uri: str) -> bool:
    """True for `s3://` URIs."""
    return uri.startswith(S3_SCHEME)


def s3_endpoint() -> str | None:
    """The S3 endpoint to talk to, from the standard variables; None means AWS itself."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def normalize(uri: str) -> str:
    """Canonical form: local paths absolute, S3 URIs without a trailing slash."""
    if is_s3(uri):
        return uri.rstrip("/") if uri.rstrip("/") != "s3:/" else uri
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return os.path.abspath(os.path.expanduser(uri))


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a URI with forward slashes (also for local paths)."""
    if is_s3(uri):
        return posixpath.join(uri.rstrip("/"), *parts)
    return os.path.join(uri, *parts)


def basename(uri: str) -> str:
    """Last path component of a URI."""
    return posixpath.basename(uri.rstrip("/"))


def parent(uri: str) -> str:
    """The URI one level up."""
    if is_s3(uri):
        return uri.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(uri.rstrip(os.sep))


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/key/part` -> (`bucket`, `key/part`)."""
    rest = uri[len(S3_SCHEME) :]
    bucket, _, key = rest.partition("/")
    return bucket, key


@lru_cache(maxsize=8)
def _s3_filesystem(endpoint: str | None) -> fsspec.AbstractFileSystem:
    import s3fs

    client_kwargs = {"endpoint_url": endpoint} if endpoint else {}
    # Credentials come from the environment through botocore; they are never passed or logged here.
    return s3fs.S3FileSystem(client_kwargs=client_kwargs, use_listings_cache=False)


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for a URI and the path on it (no scheme for S3)."""
    if is_s3(uri):
        return _s3_filesystem(s3_endpoint()), uri[len(S3_SCHEME) :].rstrip("/")
    return LocalFileSystem(), normalize(uri)


def to_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """Inverse of `filesystem`: a path on `fs` back to a URI."""
    if isinstance(fs, LocalFileSystem):
        return path
    return S3_SCHEME + path.lstrip("/")


def clear_cache() -> None:
    """Forget cached S3 clients (after the endpoint or credentials change, e.g. in tests)."""
    _s3_filesystem.cache_clear()
