"""Failure tests: the real `smelt` command line, hostile inputs, signals, refusals.

Helpers: `smelt` runs the command line in a subprocess (in its own session, so a test can
signal its process group as a terminal does); `tree_digest` fingerprints every entry of a
directory (names, bytes, modes, times), so "a refusal touches nothing" is one comparison;
`prefect_api` lends the session's Prefect server to subprocesses (commands then start none).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from tests.corpus_build.conftest import prose  # noqa: F401 - re-exported for the tests


def smelt(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 120, **popen
) -> subprocess.CompletedProcess:
    """`smelt ARGS` in a subprocess; its output captured as text."""
    full_env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "smelt.cli.main", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def start_smelt(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """`smelt ARGS` started in a new session (its pid is its process group's id)."""
    full_env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "smelt.cli.main", *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def assert_one_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2 and exactly one line on stderr, `error: ...` naming every needle; the line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tree_digest(root: str) -> dict[str, tuple]:
    """Every entry under `root` (hidden ones too): its kind, mode, size, mtime and content
    hash. Equal digests: nothing was created, removed, rewritten or re-permissioned."""
    found: dict[str, tuple] = {}
    if not os.path.lexists(root):
        return found
    for directory, subdirectories, names in os.walk(root):
        for name in subdirectories + names:
            path = os.path.join(directory, name)
            status = os.lstat(path)
            relative = os.path.relpath(path, root)
            if os.path.islink(path):
                found[relative] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                found[relative] = ("dir", status.st_mode)
            else:
                with open(path, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
                found[relative] = ("file", status.st_mode, status.st_mtime_ns, digest)
    return found


@pytest.fixture(scope="session")
def prefect_api(prefect_harness) -> dict[str, str]:
    """Environment that points a `smelt` subprocess at the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    return {"PREFECT_API_URL": PREFECT_API_URL.value()}
