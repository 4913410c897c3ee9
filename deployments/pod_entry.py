"""The entrypoint of smelt's pod image: run the flow run once, then stay idle.

    python -m smelt.deployments.pod_entry [COMMAND ...]     (default: prefect flow-run execute)

RunPod restarts a container whose main process exits. A pod whose command were the flow run
itself would therefore run it again after it finished, and loop silently when it fails before
reporting a state (an unreachable API, an import error). This entrypoint:

1. reads the flow run (`PREFECT__FLOW_RUN_ID`) from the Prefect API, for up to
   `SMELT_POD_API_WAIT_S` seconds (120); when the API cannot be reached it says so and idles:
   the worker's start timeout terminates the pod and puts these lines in the run's logs;
2. runs COMMAND only when the run is waiting to start (SCHEDULED or PENDING). The worker sets
   PENDING for each pod it starts (the first, and a replacement after a pod was lost), and the
   flow run engine sets RUNNING, so a restarted container of the same pod finds RUNNING (or a
   final state) and never runs training a second time: it reports the run crashed (RUNNING)
   or does nothing (final);
3. when COMMAND exits and the run still has no final state, reports it crashed with the exit
   code and the last lines of output;
4. then idles until the pod is terminated (SIGTERM), so RunPod has nothing to restart.

SIGTERM is passed on to a running COMMAND (the flow-run command then reports the run's end).
"""

from __future__ import annotations

import collections
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from uuid import UUID

API_WAIT_ENV = "SMELT_POD_API_WAIT_S"
DEFAULT_COMMAND = ["prefect", "flow-run", "execute"]
STARTABLE = frozenset({"SCHEDULED", "PENDING"})
OUTPUT_TAIL_LINES = 20
IDLE_MESSAGE = "idle until the pod is terminated"


def say(message: str) -> None:
    """A line in the container log (RunPod keeps it; the worker reads its tail)."""
    print(f"[smelt pod] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    command = list(argv if argv is not None else sys.argv[1:]) or list(DEFAULT_COMMAND)
    stop = threading.Event()
    child: list[subprocess.Popen] = []

    def on_sigterm(signum: int, frame: object) -> None:
        stop.set()
        for process in child:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    run_once(command, child, stop)
    if not stop.is_set():
        say(IDLE_MESSAGE)
    stop.wait()
    return 0


def run_once(command: list[str], child: list[subprocess.Popen], stop: threading.Event) -> None:
    """Steps 1-3 of the module docstring."""
    raw_id = os.environ.get("PREFECT__FLOW_RUN_ID", "")
    try:
        flow_run_id = UUID(raw_id)
    except ValueError:
        say(f"no flow run to execute: PREFECT__FLOW_RUN_ID is {raw_id!r}")
        return
    api = os.environ.get("PREFECT_API_URL", "<unset>")
    state = read_state(flow_run_id, float(os.environ.get(API_WAIT_ENV, "120")), stop)
    if state is None:
        say(
            f"cannot reach the Prefect API at {api} to read flow run {flow_run_id}: pods need "
            "a PREFECT_API_URL they can reach (and PREFECT_API_KEY for Prefect Cloud)"
        )
        return
    if state.type.value not in STARTABLE:
        if state.type.value == "RUNNING":
            message = (
                "the pod's container restarted while the flow run was running (its process "
                "died); smelt does not run a flow run twice in one pod"
            )
            say(message)
            report_crashed(flow_run_id, message)
        else:
            say(f"flow run {flow_run_id} is {state.type.value}; nothing to run")
        return
    say(f"running flow run {flow_run_id}: {shlex.join(command)}")
    code, tail = run_command(command, child)
    after = read_state(flow_run_id, 60.0, stop)
    say(f"`{shlex.join(command)}` exited with code {code}")
    if after is not None and not after.is_final() and not stop.is_set():
        last = " | ".join(tail)[-1500:]
        report_crashed(
            flow_run_id,
            f"`{shlex.join(command)}` exited with code {code} before the flow run reported a "
            f"final state; last output: {last}",
        )


def read_state(flow_run_id: UUID, wait_s: float, stop: threading.Event):  # noqa: ANN201 - State | None
    """The flow run's state, retrying for `wait_s` seconds; None when the API stays away."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + wait_s
    delay = 1.0
    while True:
        try:
            with get_client(sync_client=True) as client:
                return client.read_flow_run(flow_run_id).state
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable yet"
            if time.monotonic() + delay > deadline or stop.is_set():
                say(f"Prefect API error: {type(exc).__name__}: {str(exc)[:300]}")
                return None
        stop.wait(delay)
        delay = min(delay * 2, 15.0)


def run_command(command: list[str], child: list[subprocess.Popen]) -> tuple[int, list[str]]:
    """Run `command` with its output passed through; (exit code, its last lines)."""
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    try:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        say(f"cannot start {command[0]!r}: {exc}")
        return 127, [str(exc)]
    child.append(process)
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        tail.append(line.rstrip())
    return process.wait(), list(tail)


def report_crashed(flow_run_id: UUID, message: str) -> None:
    """Propose Crashed (the server refuses it for a run that already ended)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, Crashed(message=message))
    except Exception as exc:  # noqa: BLE001 - the worker's watch reports it otherwise
        say(f"could not report the crash: {type(exc).__name__}: {str(exc)[:300]}")


if __name__ == "__main__":
    sys.exit(main())
