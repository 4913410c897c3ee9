"""Where the shard build's Prefect task runs do their work, per runner.

The build itself is `smelt.prep.shards.run_build` on an executor: every partition and every
shard becomes a task run of `PrefectExecutor`, whose work runs on a warm local pool (`process`),
in the task run's thread (`thread`), or on the flow's Dask workers (`dask`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from smelt.parallel import LocalExecutor
from smelt.prep.shards import PRELOAD
from smelt.tasks.executor import PrefectExecutor


@contextlib.contextmanager
def shards_executor(runner: str, workers: int) -> Iterator[PrefectExecutor]:
    """The executor of a shard build on `runner` with `workers` parallel workers."""
    if runner == "process":
        with LocalExecutor(workers, preload=PRELOAD) as pool:
            yield PrefectExecutor(workers, pool=pool)
    else:  # thread: bounded threads of the flow; dask: the flow's task runner's workers
        yield PrefectExecutor(workers, remote=runner == "dask")
