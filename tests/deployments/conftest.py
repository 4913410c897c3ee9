"""Fixtures of the deployment tests: one real `prefect server start` subprocess shared by the
deployment test modules (it takes ~25 s to start on 2 cores), and a small REST helper."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from smelt.deployments.deploy import PrefectServer, free_port

FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class PrefectAPI:
    """Plain HTTP calls to the subprocess server (no Prefect client, so the in-process test
    harness of other tests and this server never mix)."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.http = httpx.Client(base_url=api_url, timeout=30)

    def _request(self, method: str, path: str, payload: dict | None = None) -> Any:
        """One call; a busy SQLite server on a loaded machine answers 503 or nothing in time
        now and then: retry those."""
        for attempt in range(6):
            try:
                response = self.http.request(method, path, json=payload)
            except httpx.TransportError:
                if attempt == 5:
                    raise
            else:
                if response.status_code < 500 or attempt == 5:
                    break
            time.sleep(0.5 * 2**attempt)
        response.raise_for_status()
        return response.json() if response.content else None

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, payload: dict | None = None) -> Any:
        return self._request("POST", path, payload or {})

    def deployment(self, full_name: str) -> dict:
        return self.get(f"/deployments/name/{full_name}")

    def run_deployment(
        self, full_name: str, parameters: dict, job_variables: dict | None = None
    ) -> dict:
        deployment = self.deployment(full_name)
        return self.post(
            f"/deployments/{deployment['id']}/create_flow_run",
            {"parameters": parameters, "job_variables": job_variables or {}},
        )

    def flow_run(self, flow_run_id: str) -> dict:
        return self.get(f"/flow_runs/{flow_run_id}")

    def state_type(self, flow_run_id: str) -> str | None:
        state = self.flow_run(flow_run_id).get("state") or {}
        return state.get("type")

    def wait_state(self, flow_run_id: str, states: set[str], timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.state_type(flow_run_id)
            if state in states:
                return state
            time.sleep(0.5)
        return state

    def set_state(self, flow_run_id: str, state_type: str) -> None:
        self.post(
            f"/flow_runs/{flow_run_id}/set_state", {"state": {"type": state_type}, "force": True}
        )

    def logs(self, flow_run_id: str) -> list[str]:
        rows = self.post(
            "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
        )
        return [row["message"] for row in rows]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory):
    """A real Prefect server subprocess (SQLite in a temp PREFECT_HOME) on a free port. The
    scheduler loop runs every 5 s instead of 60 s so scheduled runs appear quickly."""
    home = tmp_path_factory.mktemp("prefect-home")
    server = PrefectServer(
        "127.0.0.1",
        free_port(),
        Path(home),
        extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"},
    )
    server.start(timeout_s=180)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prefect_api(prefect_server: PrefectServer) -> PrefectAPI:
    return PrefectAPI(prefect_server.api_url)
