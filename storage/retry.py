"""Retries with exponential backoff for transient storage errors.

S3 and S3-compatible servers fail transiently (throttling, 5xx, dropped connections, a server
restarting); such calls are retried. Errors that retrying cannot fix (missing object, access
denied, bad input) are raised at once.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_TRANSIENT_CODES = {
    "500",
    "502",
    "503",
    "504",
    "RequestTimeout",
    "RequestTimeoutException",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "InternalError",
    "ServiceUnavailable",
}


def is_transient(exc: BaseException) -> bool:
    """Whether an exception from boto3/s3fs/aiohttp is worth retrying."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, ValueError)):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return code in _TRANSIENT_CODES or status in _TRANSIENT_CODES
    name = type(exc).__name__
    transient_names = (
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ClientOSError",
        "ConnectionClosedError",
        "ResponseStreamingError",
        "IncompleteRead",
    )
    if name in transient_names:
        return True
    return isinstance(exc, OSError) and exc.errno is None


def retry(
    attempts: int = 6, base_delay: float = 0.5, max_delay: float = 20.0
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: retry transient failures with jittered exponential backoff."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(1, attempts + 1):
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - filtered by is_transient
                    if attempt == attempts or not is_transient(exc):
                        raise
                    delay = min(max_delay, base_delay * 2 ** (attempt - 1))
                    delay *= 0.5 + random.random()
                    log.warning(
                        "%s failed (%s), retry %d/%d in %.1fs",
                        fn.__name__,
                        type(exc).__name__,
                        attempt,
                        attempts - 1,
                        delay,
                    )
                    time.sleep(delay)
            raise AssertionError("unreachable")

        return wrapper

    return decorate
