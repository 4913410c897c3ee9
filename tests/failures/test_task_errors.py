"""Inside a flow, a user error raised by a task run is not retried (it would fail again, later)
and reaches the command line as itself; a transient failure is retried once. Errors of the
machine (no space, no permission) are one line too."""

from __future__ import annotations

import errno

import pytest

from smelt.cli.main import _environment_error
from smelt.errors import InputError
from tests.failures import workers

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


@pytest.mark.slow  # a retry waits 2 s
def test_on_a_pool_a_task_run_stands_for_a_few_items_and_retries_only_the_failed(
    prefect_harness, tmp_path
):
    from prefect import flow, get_client
    from prefect.runtime import flow_run

    from smelt.tasks.executor import executor_for

    calls = str(tmp_path / "calls.txt")
    seen = {}

    @flow
    def step(count: int) -> list[int]:
        seen["flow_run"] = flow_run.id
        with executor_for("process", 2) as executor:
            return executor.map(workers.counted_item, [calls] * count, range(count), name="part")

    assert step(9) == [i * 10 for i in range(9)]
    with open(calls) as fh:
        made = sorted(int(line) for line in fh)
    assert made == sorted([*range(9), 5])  # the failed item again, nothing else

    async def task_runs():
        from prefect.client.schemas.filters import FlowRunFilter

        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id={"any_": [seen["flow_run"]]})
            )
        return {run.name: (run.state_name, run.run_count) for run in runs}

    import asyncio

    assert asyncio.run(task_runs()) == {
        "part-0-3": ("Completed", 1),
        "part-4-7": ("Completed", 2),
        "part-8-8": ("Completed", 1),
    }
