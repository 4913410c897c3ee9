"""The `runpod` Prefect worker: one RunPod GPU pod per flow run, always terminated afterwards.

For each flow run of a deployment on a `runpod` work pool the worker:

1. creates a pod through RunPod's REST API (`runpod_api.py`) with the pool's image, GPU type and
   count, volume, and an environment holding the Prefect API URL/key, the S3 credentials named
   in `forward_env`, and `PREFECT__FLOW_RUN_ID`; the pod's start command is the flow-run command
   (`prefect flow-run execute`), which pulls the deployment's code steps (`/app` in smelt's
   image) and runs the flow, reporting its state to the Prefect API itself;
2. reports the pod id as the flow run's `infrastructure_pid`;
3. watches the flow run and the pod, and terminates the pod in every outcome: the run finished
   (completed, failed, crashed), it was cancelled (the pod gets `cancel_grace_s` to report the
   cancellation, then goes), the pod died, the run passed `max_runtime_s`, or the worker is
   stopped (the run is then marked crashed);
4. on start and every `sweep_interval_s`, sweeps pods named for this work pool that no live run
   of this worker owns: a pod whose flow run is finished, gone, or past its deadline is
   terminated, so the pods of a killed worker do not bill forever.

The job (pod) definition and the pod naming live in `runpod_job.py`. The API key is sent only
in the Authorization header, never to the pod, never logged.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any
from uuid import UUID

import anyio
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import InfrastructureNotFound, ObjectNotFound
from prefect.workers.base import BaseWorker, BaseWorkerResult

from smelt.deployments.runpod_api import PodNotFound, RunPodClient, redact
from smelt.deployments.runpod_job import (
    DEADLINE_ENV,
    RunPodJobConfiguration,
    RunPodVariables,
    flow_run_id_of_pod,
    pod_name,
)

__all__ = [
    "DEADLINE_ENV",
    "RunPodJobConfiguration",
    "RunPodVariables",
    "RunPodWorker",
    "flow_run_id_of_pod",
    "pod_name",
]

MAX_CONSECUTIVE_POLL_FAILURES = 10


class RunPodWorkerResult(BaseWorkerResult):
    """The pod id and how the run ended (0: the flow run reported its own final state)."""


class _Outcome(BaseWorkerResult):
    message: str | None = None  # set: the worker must mark the run crashed with it


class RunPodWorker(BaseWorker[RunPodJobConfiguration, RunPodVariables, RunPodWorkerResult]):
    """Runs each flow run in its own RunPod pod (see the module docstring)."""

    type = "runpod"
    job_configuration = RunPodJobConfiguration
    job_configuration_variables = RunPodVariables
    _description = "Run each flow run in its own RunPod GPU pod, terminated when the run ends."
    _documentation_url = "https://docs.runpod.io/api-reference/pods/POST/pods"
    _logo_url = "https://avatars.githubusercontent.com/u/95939477"

    sweep_interval_s: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watched_pods: set[str] = set()
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
        spec = configuration.pod_spec(self._work_pool_name, flow_run.id)
        async with configuration.runpod_client() as runpod:
            pod = await runpod.create_pod(spec)
            pod_id = str(pod["id"])
            self._watched_pods.add(pod_id)
            run_logger.info(
                "Created RunPod pod %s (%d x %s, image %s) for flow run %s",
                pod_id,
                spec.gpu_count,
                spec.gpu_type,
                spec.image,
                flow_run.id,
            )
            if task_status is not None:
                task_status.started(pod_id)
            outcome = _Outcome(
                identifier=pod_id,
                status_code=1,
                message="the worker stopped while the run was going; its pod was terminated",
            )
            try:
                outcome = await self._watch(runpod, pod_id, flow_run, configuration, run_logger)
            except Exception as exc:
                outcome = _Outcome(
                    identifier=pod_id,
                    status_code=1,
                    message=(
                        f"lost track of RunPod pod {pod_id}: {redact(str(exc), secrets)}; "
                        "terminated"
                    ),
                )
            finally:
                with anyio.CancelScope(shield=True):
                    await self._terminate(runpod, pod_id, run_logger, secrets)
                    self._watched_pods.discard(pod_id)
                    if outcome.message:
                        await self._propose_crashed_state(flow_run, outcome.message)
        return RunPodWorkerResult(identifier=pod_id, status_code=outcome.status_code)

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

    # -- watching one run --------------------------------------------------------------------

    async def _watch(
        self,
        runpod: RunPodClient,
        pod_id: str,
        flow_run: FlowRun,
        config: RunPodJobConfiguration,
        run_logger: logging.LoggerAdapter,
    ) -> _Outcome:
        """Poll the flow run and the pod until one of the ending conditions holds."""
        started = time.monotonic()
        cancelling_since: float | None = None
        exited_since: float | None = None
        failures = 0
        while True:
            await anyio.sleep(config.poll_interval_s)
            try:
                current = await self._read_flow_run(flow_run.id)
                state = current.state if current is not None else None
                if current is None or (state is not None and state.is_final()):
                    return _Outcome(identifier=pod_id, status_code=0)
                pod = await runpod.get_pod(pod_id)
                failures = 0
            except PodNotFound:
                return _Outcome(
                    identifier=pod_id,
                    status_code=1,
                    message=f"RunPod pod {pod_id} disappeared before the flow run finished",
                )
            except Exception as exc:  # a passing API outage must not orphan the pod
                failures += 1
                if failures >= MAX_CONSECUTIVE_POLL_FAILURES:
                    raise
                run_logger.warning(
                    "Status check of pod %s failed (%d): %s", pod_id, failures, type(exc).__name__
                )
                continue
            if state is not None and state.is_cancelling():
                cancelling_since = cancelling_since or time.monotonic()
                if time.monotonic() - cancelling_since >= config.cancel_grace_s:
                    run_logger.warning(
                        "Pod %s did not report the cancellation within %.0fs; terminating it",
                        pod_id,
                        config.cancel_grace_s,
                    )
                    await self._terminate(runpod, pod_id, run_logger, [])
                    await self._mark_flow_run_as_cancelled(
                        current, state_updates={"message": "Cancelled; RunPod pod terminated."}
                    )
                    return _Outcome(identifier=pod_id, status_code=0)
            if time.monotonic() - started > config.max_runtime_s:
                return _Outcome(
                    identifier=pod_id,
                    status_code=1,
                    message=(
                        f"RunPod pod {pod_id} exceeded max_runtime_s={config.max_runtime_s}; "
                        "terminated"
                    ),
                )
            if str(pod.get("desiredStatus", "")).upper() in {"EXITED", "TERMINATED"}:
                exited_since = exited_since or time.monotonic()
                # the run may still be reporting its final state: give it a few polls
                if time.monotonic() - exited_since >= max(3 * config.poll_interval_s, 5.0):
                    return _Outcome(
                        identifier=pod_id,
                        status_code=1,
                        message=(
                            f"RunPod pod {pod_id} exited before the flow run reported a final state"
                        ),
                    )

    async def _read_flow_run(self, flow_run_id: UUID) -> FlowRun | None:
        try:
            return await self.client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            return None

    async def _terminate(
        self,
        runpod: RunPodClient,
        pod_id: str,
        run_logger: logging.LoggerAdapter,
        secrets: list[str | None],
    ) -> None:
        try:
            if await runpod.terminate_pod(pod_id):
                run_logger.info("Terminated RunPod pod %s", pod_id)
        except Exception as exc:  # the sweep of the next worker retries
            run_logger.error(
                "Could not terminate RunPod pod %s: %s", pod_id, redact(str(exc), secrets)
            )

    # -- sweeping orphans --------------------------------------------------------------------

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
            if flow_run_id is None or pod_id in self._watched_pods:
                continue
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
