"""Inside a flow, a user error raised by a task run is not retried (it would fail again, later)
and reaches the command line as itself; a transient failure is retried once. Errors of the
machine (no space, no permission) are one line too."""

from __future__ import annotations

import errno

import pytest

from smelt.cli.main import _environment_error
from smelt.errors import InputError

CALLS: list[str] = []


def failing(kind: str) -> str:
    CALLS.append(kind)
    if kind == "user":
        raise InputError("s3://bucket/raw: no such input")
    if len(CALLS) == 1:
        raise ConnectionError("connection reset")
    return "done"


@pytest.mark.slow  # flow runs with retries
def test_a_user_error_is_not_retried_and_a_transient_one_is(prefect_harness):
    from prefect import flow

    from smelt.tasks.executor import PrefectExecutor

    @flow
    def step(kind: str) -> list[str]:
        return PrefectExecutor(1).map(failing, [kind], name="step")

    CALLS.clear()
    with pytest.raises(InputError, match="no such input"):
        step("user")
    assert CALLS == ["user"]
    CALLS.clear()
    assert step("transient") == ["done"] and CALLS == ["transient", "transient"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_an_error_of_the_machine_is_one_line_naming_the_file(code):
    message = _environment_error(OSError(code, "it failed", "/data/corpus/part.parquet"))
    assert message == "it failed: /data/corpus/part.parquet"
    assert _environment_error(OSError(errno.EBADF, "a bug")) is None
