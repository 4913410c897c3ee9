"""The `runpod` Prefect worker: one RunPod GPU pod at a time per flow run, always terminated.

For each flow run of a deployment on a `runpod` work pool the worker:

1. refuses what cannot work in a pod before creating one (`runpod_preflight.py`): a loopback
   or private PREFECT_API_URL, credentials in plain text, no S3 credentials for an s3:// run,
   an image that cannot be pulled; the run is marked crashed with the reason and the fix;
2. places the pod (`runpod_placement.py`): created or adopted by its deterministic name, on
   the first GPU type of `gpu_type` + `fallback_gpu_types` that places, never two at once;
   the image's entrypoint (`pod_entry.py`) runs the flow run once and then idles;
3. reports the pod id as the flow run's `infrastructure_pid`;
4. watches the flow run's state and the pod's real `status`, every `poll_interval_s`:
   - the run reached a final state: done;
   - the run is cancelling: the pod gets `cancel_grace_s` to report it, then goes, and the
     run ends Cancelled (also when the pod is already gone);
   - the pod is lost mid-run (gone, EXITED or ERROR: a host failure, a community-cloud
     reclaim): it is replaced, up to `max_restarts` times, by a pod that resumes training from
     the newest complete checkpoint on S3;
   - no sign of life (the run never left PENDING) within `start_timeout_s` of a pod's
     creation: terminated, marked crashed, the pod's last log lines in the run's logs;
   - the run outlived `max_runtime_s`, or the worker stops: terminated, marked crashed;
5. on start and every `sweep_interval_s`, sweeps pods named for this work pool: a duplicate of
   a pod this worker watches, or a pod whose flow run is finished, gone or past its deadline,
   is terminated, so the pods of a killed worker do not bill forever.

The API key is sent only in the Authorization header, never to the pod, never logged.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import anyio
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import InfrastructureNotFound, ObjectNotFound
from prefect.states import Pending
from prefect.workers.base import BaseWorker, BaseWorkerResult

from smelt.deployments.runpod_api import NotFound, RunPodClient, redact
from smelt.deployments.runpod_job import (
    DEADLINE_ENV,
    RunPodJobConfiguration,
    RunPodVariables,
    flow_run_id_of_pod,
    pod_name,
)
from smelt.deployments.runpod_placement import place_pod
from smelt.deployments.runpod_preflight import check_pod_config

__all__ = [
    "DEADLINE_ENV",
    "RunPodJobConfiguration",
    "RunPodVariables",
    "RunPodWorker",
    "flow_run_id_of_pod",
    "pod_name",
]

MAX_CONSECUTIVE_POLL_FAILURES = 10
LOST_STATUSES = frozenset({"EXITED", "ERROR", "TERMINATED"})
NOT_STARTED = frozenset({StateType.SCHEDULED, StateType.PENDING})
LOG_TAIL_LINES = 20
FINISH_GRACE_S = 5.0  # a finished run's pod keeps this long to ship its last logs


class RunPodWorkerResult(BaseWorkerResult):
    """The pod id and how the run ended (0: the flow run reported its own final state)."""


class _Outcome(BaseWorkerResult):
    message: str | None = None  # set: the worker must mark the run crashed with it


@dataclass
class _PodRun:
    """One flow run's pods over time: the current one, the lost ones, the attempt number."""

    flow_run: FlowRun
    config: RunPodJobConfiguration
    deadline: float  # epoch seconds: sweeps may terminate the run's pods after it
    pod_id: str = ""
    attempt: int = 0
    started: float = field(default_factory=time.monotonic)  # the current pod's creation
    lost: set[str] = field(default_factory=set)

    def outcome(self, message: str | None = None) -> _Outcome:
        return _Outcome(identifier=self.pod_id, status_code=1 if message else 0, message=message)


class RunPodWorker(BaseWorker[RunPodJobConfiguration, RunPodVariables, RunPodWorkerResult]):
    """Runs each flow run in its own RunPod pod (see the module docstring)."""

    type = "runpod"
    job_configuration = RunPodJobConfiguration
    job_configuration_variables = RunPodVariables
    _description = "Run each flow run in its own RunPod GPU pod, terminated when the run ends."
    _documentation_url = "https://docs.runpod.io/api-reference-v2/pods/create-a-pod"
    _logo_url = "https://avatars.githubusercontent.com/u/95939477"

    sweep_interval_s: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watched: dict[UUID, str] = {}  # flow run -> its current pod
        self._placing: set[UUID] = set()  # runs whose pod is being created (sweeps wait)
        self._last_sweep = 0.0
        interval = os.environ.get("SMELT_RUNPOD_SWEEP_INTERVAL_S")
        if interval:
            self.sweep_interval_s = float(interval)

    # -- lifecycle ---------------------------------------------------------------------------

    async def sync_with_backend(self) -> None:
        """Heartbeat, then (at most every `sweep_interval_s`) the orphan-pod sweep."""
        await super().sync_with_backend()
        if self._work_pool is not None and time.monotonic() - self._last_sweep >= (
            self.sweep_interval_s
        ):
            self._last_sweep = time.monotonic()
            await self.sweep_orphan_pods()

    async def run(
        self,
        flow_run: FlowRun,
        configuration: RunPodJobConfiguration,
        task_status: anyio.abc.TaskStatus[str] | None = None,
    ) -> RunPodWorkerResult:
        run_logger = self.get_flow_run_logger(flow_run)
        secrets = [configuration.resolved_api_key()]
        run = _PodRun(flow_run, configuration, time.time() + configuration.max_runtime_s)
        async with configuration.runpod_client() as runpod:
            try:
                await check_pod_config(
                    configuration,
                    configuration.pod_env(),
                    flow_run.parameters or {},
                    runpod,
                    log=run_logger,
                )
            except Exception as exc:
                run_logger.error("Not starting a RunPod pod: %s", redact(str(exc), secrets))
                raise
            try:
                await self._place(runpod, run, run_logger)
            except BaseException:  # a pod may exist already (e.g. the worker is stopping)
                with anyio.CancelScope(shield=True):
                    await self._terminate_all(runpod, run, run_logger, secrets)
                raise
            if task_status is not None:
                task_status.started(run.pod_id)
            outcome = run.outcome(
                "the worker stopped while the run was going; its pod was terminated"
            )
            try:
                outcome = await self._watch(runpod, run, run_logger)
            except Exception as exc:
                outcome = run.outcome(
                    f"lost track of RunPod pod {run.pod_id}: {redact(str(exc), secrets)}; "
                    "terminated"
                )
            finally:
                with anyio.CancelScope(shield=True):
                    if outcome.message:  # first: a dying pod may report a crash of its own
                        await self._propose_crashed_state(flow_run, outcome.message)
                    await self._terminate_all(runpod, run, run_logger, secrets)
                    self._watched.pop(flow_run.id, None)
        return RunPodWorkerResult(identifier=outcome.identifier, status_code=outcome.status_code)

    async def kill_infrastructure(
        self,
        infrastructure_pid: str,
        configuration: RunPodJobConfiguration,
        grace_seconds: int = 30,
    ) -> None:
        """Terminate a cancelled run's pod (RunPod has no graceful stop worth waiting for)."""
        async with configuration.runpod_client() as runpod:
            if not await runpod.terminate_pod(infrastructure_pid):
                raise InfrastructureNotFound(f"RunPod pod {infrastructure_pid} not found")
        self._logger.info("Terminated RunPod pod %s (flow run cancelled)", infrastructure_pid)

    # -- one run's pods ----------------------------------------------------------------------

    async def _place(
        self, runpod: RunPodClient, run: _PodRun, run_logger: logging.LoggerAdapter
    ) -> None:
        """Create (or adopt) the run's pod for the current attempt."""
        config, flow_run = run.config, run.flow_run
        spec = config.pod_spec(self._work_pool_name, flow_run.id, run.attempt, run.deadline)
        self._placing.add(flow_run.id)
        try:
            placement = await place_pod(
                runpod, spec, config.gpu_types, exclude_ids=frozenset(run.lost), log=run_logger
            )
        finally:
            self._placing.discard(flow_run.id)
        run.pod_id, run.started = placement.pod_id, time.monotonic()
        self._watched[flow_run.id] = run.pod_id
        run_logger.info(
            "%s RunPod pod %s (%d x %s, image %s) for flow run %s, attempt %d",
            "Adopted" if placement.adopted else "Created",
            run.pod_id,
            spec.gpu_count,
            placement.gpu_type or spec.gpu_type,
            spec.image,
            flow_run.id,
            run.attempt,
        )

    async def _watch(
        self, runpod: RunPodClient, run: _PodRun, run_logger: logging.LoggerAdapter
    ) -> _Outcome:
        """Poll the flow run and the pod until one of the ending conditions holds."""
        config = run.config
        run_started = time.monotonic()
        cancelling_since: float | None = None
        lost_since: float | None = None
        failures = 0
        while True:
            await anyio.sleep(config.poll_interval_s)
            try:
                current = await self._read_flow_run(run.flow_run.id)
                state = current.state if current is not None else None
                if current is None or (state is not None and state.is_final()):
                    await anyio.sleep(FINISH_GRACE_S)  # its last logs are still on their way
                    return run.outcome()
                pod = await self._current_pod(runpod, run)
                failures = 0
            except Exception as exc:  # a passing API outage must not orphan the pod
                failures += 1
                if failures >= MAX_CONSECUTIVE_POLL_FAILURES:
                    raise
                run_logger.warning(
                    "Status check of pod %s failed (%d): %s",
                    run.pod_id,
                    failures,
                    type(exc).__name__,
                )
                continue
            now = time.monotonic()
            if state is not None and state.is_cancelling():
                cancelling_since = cancelling_since or now
                if pod is None or now - cancelling_since >= config.cancel_grace_s:
                    return await self._cancel(runpod, run, current, pod is None, run_logger)
                continue
            if now - run_started > config.max_runtime_s:
                return run.outcome(
                    f"RunPod pod {run.pod_id} exceeded max_runtime_s={config.max_runtime_s}; "
                    "terminated"
                )
            lost = _lost_reason(pod)
            if lost is not None:
                lost_since = lost_since or now
                # gone is certain at once; EXITED/ERROR must last two polls (a status in flux)
                if pod is None or now - lost_since >= max(2 * config.poll_interval_s, 3.0):
                    ended = await self._replace(runpod, run, lost, run_logger)
                    if ended is not None:
                        return ended
                    lost_since = None
                continue
            lost_since = None
            started = state is None or state.type not in NOT_STARTED
            if not started and now - run.started > config.start_timeout_s:
                return await self._start_timed_out(runpod, run, pod, run_logger)

    async def _current_pod(self, runpod: RunPodClient, run: _PodRun) -> dict[str, Any] | None:
        """The run's pod, or None when RunPod no longer knows it (a 404 is confirmed by the
        listing, so that one lost answer never starts a second pod)."""
        try:
            return await runpod.get_pod(run.pod_id)
        except NotFound:
            name = pod_name(self._work_pool_name, run.flow_run.id)
            listed = [p for p in await runpod.pods_named(name) if str(p.get("id")) == run.pod_id]
            return listed[0] if listed else None

    async def _replace(
        self,
        runpod: RunPodClient,
        run: _PodRun,
        lost: str,
        run_logger: logging.LoggerAdapter,
    ) -> _Outcome | None:
        """Replace a lost pod (None), or say why the run ends here."""
        current = await self._read_flow_run(run.flow_run.id)
        state = current.state if current is not None else None
        if current is None or (state is not None and state.is_final()):
            return run.outcome()
        if state is not None and state.is_cancelling():
            return await self._cancel(runpod, run, current, True, run_logger)
        old = run.pod_id
        if run.attempt >= run.config.max_restarts:
            return run.outcome(
                f"RunPod pod {old} {lost} before the flow run finished, and "
                f"max_restarts={run.config.max_restarts} replacements are used up"
            )
        run.attempt += 1
        run_logger.warning(
            "RunPod pod %s %s while the flow run was %s; replacing it (replacement %d of %d): "
            "training resumes from its newest complete checkpoint",
            old,
            lost,
            state.type.value if state else "unknown",
            run.attempt,
            run.config.max_restarts,
        )
        await self._terminate(runpod, old, run_logger, [])
        run.lost.add(old)
        await self.client.set_flow_run_state(
            run.flow_run.id,
            Pending(message=f"RunPod pod {old} {lost}; starting replacement {run.attempt}"),
            force=True,
        )
        await self._place(runpod, run, run_logger)
        await self.client.update_flow_run(run.flow_run.id, infrastructure_pid=run.pod_id)
        return None

    async def _cancel(
        self,
        runpod: RunPodClient,
        run: _PodRun,
        flow_run: FlowRun,
        pod_gone: bool,
        run_logger: logging.LoggerAdapter,
    ) -> _Outcome:
        """End a cancelling run: terminate its pod, mark it Cancelled."""
        if not pod_gone:
            run_logger.warning(
                "Pod %s did not report the cancellation within %.0fs; terminating it",
                run.pod_id,
                run.config.cancel_grace_s,
            )
        await self._terminate(runpod, run.pod_id, run_logger, [])
        await self._mark_flow_run_as_cancelled(
            flow_run, state_updates={"message": "Cancelled; RunPod pod terminated."}
        )
        return run.outcome()

    async def _start_timed_out(
        self,
        runpod: RunPodClient,
        run: _PodRun,
        pod: dict[str, Any] | None,
        run_logger: logging.LoggerAdapter,
    ) -> _Outcome:
        """The pod never started the flow run: say why in the run's logs, end it crashed."""
        status = (pod or {}).get("status", "unknown")
        message = (
            f"RunPod pod {run.pod_id} showed no sign of life within start_timeout_s="
            f"{run.config.start_timeout_s} (pod status {status}; the flow run never started): "
            "check that the image exists and starts, and that pods reach PREFECT_API_URL; "
            "terminated"
        )
        tail = await runpod.pod_log_tail(run.pod_id, LOG_TAIL_LINES)
        details = "\n".join(tail) if tail else "(RunPod returned no log lines)"
        run_logger.error("%s. Last lines of the pod's log:\n%s", message, details)
        return run.outcome(message)

    async def _read_flow_run(self, flow_run_id: UUID) -> FlowRun | None:
        try:
            return await self.client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            return None

    async def _terminate_all(
        self,
        runpod: RunPodClient,
        run: _PodRun,
        run_logger: logging.LoggerAdapter,
        secrets: list[str | None],
    ) -> None:
        """Terminate the run's pod and any other pod of its name (one being placed when the
        worker stopped, a late duplicate): when a run ends, none of its pods may bill."""
        await self._terminate(runpod, run.pod_id, run_logger, secrets)
        try:
            named = await runpod.pods_named(pod_name(self._work_pool_name, run.flow_run.id))
        except Exception as exc:  # the sweep of the next worker retries
            run_logger.warning("Could not list RunPod pods: %s", redact(str(exc), secrets))
            return
        for pod in named:
            await self._terminate(runpod, str(pod.get("id")), run_logger, secrets)

    async def _terminate(
        self,
        runpod: RunPodClient,
        pod_id: str,
        run_logger: logging.LoggerAdapter,
        secrets: list[str | None],
    ) -> None:
        if not pod_id:
            return
        try:
            if await runpod.terminate_pod(pod_id):
                run_logger.info("Terminated RunPod pod %s", pod_id)
        except Exception as exc:  # the sweep of the next worker retries
            run_logger.error(
                "Could not terminate RunPod pod %s: %s", pod_id, redact(str(exc), secrets)
            )

    # -- sweeping orphans and duplicates -----------------------------------------------------

    async def sweep_orphan_pods(self) -> int:
        """Terminate this pool's pods that no live run owns; returns how many went."""
        try:
            config = await self.job_configuration.from_template_and_values(
                base_job_template=self.work_pool.base_job_template, values={}, client=self.client
            )
            async with config.runpod_client() as runpod:
                return await self._sweep(runpod)
        except Exception as exc:
            secrets = [os.environ.get("RUNPOD_API_KEY")]
            self._logger.warning("RunPod orphan-pod sweep failed: %s", redact(str(exc), secrets))
            return 0

    async def _sweep(self, runpod: RunPodClient) -> int:
        terminated = 0
        for pod in await runpod.list_pods():
            pod_id = str(pod.get("id"))
            flow_run_id = flow_run_id_of_pod(pod, self._work_pool_name)
            if flow_run_id is None or flow_run_id in self._placing:
                continue
            current = self._watched.get(flow_run_id)
            if current == pod_id:
                continue
            if current is not None:
                reason: str | None = f"duplicate of pod {current} of flow run {flow_run_id}"
            else:
                reason = await self._orphan_reason(pod, flow_run_id)
            if reason is None:
                continue
            if await runpod.terminate_pod(pod_id):
                terminated += 1
                self._logger.warning("Terminated orphaned RunPod pod %s: %s", pod_id, reason)
        return terminated

    async def _orphan_reason(self, pod: dict[str, Any], flow_run_id: UUID) -> str | None:
        """Why a pod no worker watches should go, or None while its run may still need it."""
        flow_run = await self._read_flow_run(flow_run_id)
        if flow_run is None:
            return f"flow run {flow_run_id} no longer exists"
        if flow_run.state is not None and flow_run.state.is_final():
            return f"flow run {flow_run_id} is {flow_run.state.type.value}"
        deadline = (pod.get("env") or {}).get(DEADLINE_ENV)
        if deadline and time.time() > float(deadline):
            await self._propose_crashed_state(
                flow_run, f"RunPod pod {pod.get('id')} passed its max runtime; terminated"
            )
            return f"flow run {flow_run_id} passed the pod's max runtime"
        return None


def _lost_reason(pod: dict[str, Any] | None) -> str | None:
    """How a pod was lost, or None while it lives (PROVISIONING, STARTING, RUNNING)."""
    if pod is None:
        return "disappeared"
    status = str(pod.get("status") or "").upper()
    if status in LOST_STATUSES:
        return f"is {status}"
    return None
