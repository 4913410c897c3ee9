"""Shared fixtures: a real S3 server (moto over HTTP), a real Prefect server (test harness)."""

from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from tests.s3server import MotoS3  # noqa: E402


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test leaves the process environment as it found it: a command run in-process
    (`smelt.cli.main.main`) sets Prefect's logging levels and API address for its process, and
    they must not reach the servers and workers later tests start."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def s3_server():
    """One moto S3 server on 127.0.0.1 for the whole session."""
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: MotoS3) -> str:
    """A fresh, empty bucket; returns `s3://name`."""
    return s3_server.create_bucket(f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def prefect_harness():
    """A real Prefect server (SQLite) for the session: it takes ~20 s to start, so only once."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
