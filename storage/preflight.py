"""Checks that a command can read its inputs and write its output, made before any work.

Every user-caused storage failure (a missing path, a read-only directory, an output that is a
file, an unknown bucket, wrong credentials, an S3 endpoint that does not answer) surfaces here
as one `InputError` naming the URI and the fix, within seconds: the S3 check is one request
(`HeadBucket`) with short timeouts and no retries, where the regular clients retry transient
failures for about a minute (right during a long job, wrong before it starts).
"""

from __future__ import annotations

import os

from smelt.errors import InputError
from smelt.storage import uri as uris

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 10


def require_readable(uri: str) -> None:
    """Raise `InputError` (before any work starts) when `uri` is missing or unreachable."""
    if uris.is_s3(uri):
        check_bucket(uri)
    from smelt.storage.objects import exists

    try:
        found = exists(uri)
    except PermissionError as exc:
        raise InputError(f"cannot read {uri}: access denied ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - any failure here means: not readable
        raise InputError(f"cannot read {uri}: {type(exc).__name__}: {exc}") from None
    if not found:
        raise InputError(f"input not found: {uri}")
    if not uris.is_s3(uri) and not os.access(uris.normalize(uri), os.R_OK):
        raise InputError(f"cannot read {uri}: permission denied")


def require_writable(uri: str) -> None:
    """Raise `InputError` when an output directory cannot be created or written at `uri`.

    Nothing is written: locally the nearest existing ancestor must be a writable directory
    (and `uri` itself no file); on S3 the bucket must exist and accept these credentials.
    """
    if uris.is_s3(uri):
        check_bucket(uri)
        return
    path = uris.normalize(uri)
    if os.path.isfile(path):
        raise InputError(f"output {path} is an existing file; name a directory")
    ancestor = path
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise InputError(f"output {path}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"output {path}: cannot write under {ancestor} (permission denied)")


def check_bucket(uri: str) -> None:
    """One `HeadBucket` with short timeouts: the endpoint answers, the credentials are
    accepted and the bucket exists; else an `InputError` naming `uri` and the fix."""
    bucket, _ = uris.split_s3(uri)
    if not bucket:
        raise InputError(f"{uri}: no bucket named; write s3://BUCKET/PREFIX")
    key = (uris.s3_endpoint(), bucket, os.environ.get("AWS_ACCESS_KEY_ID"))
    if key in _usable:
        return
    problem = _bucket_problem(*key[:2])
    if problem:
        raise InputError(f"cannot use {uri}: {problem}")
    _usable.add(key)


_usable: set[tuple[str | None, str, str | None]] = set()  # (endpoint, bucket, key id) that work


def _bucket_problem(endpoint: str | None, bucket: str) -> str | None:
    """What is wrong with `bucket` at `endpoint`, in words with the fix; None when usable."""
    import botocore.exceptions as boto_errors

    where = f" at {endpoint}" if endpoint else ""
    try:
        _client(endpoint).head_bucket(Bucket=bucket)
    except boto_errors.NoCredentialsError:
        return "no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    except (boto_errors.EndpointConnectionError, boto_errors.ConnectTimeoutError) as exc:
        return (
            f"the S3 endpoint{where} does not answer ({type(exc).__name__}); check "
            "AWS_ENDPOINT_URL and that the server is up"
        )
    except boto_errors.ReadTimeoutError:
        return (
            f"the S3 endpoint{where} did not answer within {READ_TIMEOUT_S} s; check "
            "AWS_ENDPOINT_URL and that the server is up"
        )
    except boto_errors.ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(exc.response.get("Error", {}).get("Code", "")) or str(status)
        if status == 404 or code == "NoSuchBucket":
            return f"bucket {bucket} does not exist{where}; create it or fix the URI"
        if status in (401, 403):
            return (
                f"access to bucket {bucket}{where} denied ({code}); check AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY, and the bucket's permissions"
            )
        return f"bucket {bucket}{where}: {code} {exc}"
    except boto_errors.BotoCoreError as exc:
        return f"bucket {bucket}{where}: {type(exc).__name__}: {exc}"
    return None


def _client(endpoint: str | None):  # noqa: ANN202 - boto3 client type is dynamic
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"total_max_attempts": 1},
    )
    return boto3.client("s3", endpoint_url=endpoint, config=config)
