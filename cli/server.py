"""`smelt server`: a local Prefect server with the UI, smelt's deployments, and a worker.

Starts `prefect server start` (SQLite under PREFECT_HOME), waits until it is healthy, creates
the `process` and `runpod` work pools when missing, runs `prefect --no-prompt deploy --all` on
prefect.yaml, starts a worker of the `process` pool (unless `--no-worker`), so the nightly
schedule and runs started from the UI execute without another terminal, prints the UI's URL,
and serves until Ctrl-C, which stops the worker, then the server. If a server already answers
on that address, it registers the pools and deployments there and exits (its workers are
whoever started it).
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from smelt.cli import api

WORKER_POOL = "process"
WORKER_NAME = "smelt-server"
if TYPE_CHECKING:
    from smelt.deployments.deploy import PrefectServer


def register(subparsers: argparse._SubParsersAction) -> None:
    server = subparsers.add_parser("server", help="start the Prefect UI with smelt deployments")
    server.add_argument("--host", default="127.0.0.1", help="address of the UI and API")
    server.add_argument("--port", type=int, default=4200, help="port of the UI and API")
    server.add_argument(
        "--home",
        metavar="DIR",
        help="PREFECT_HOME for the server's SQLite database "
        "(default: $PREFECT_HOME, else ~/.prefect)",
    )
    server.add_argument(
        "--project-dir",
        metavar="DIR",
        help="directory holding prefect.yaml (default: this smelt checkout)",
    )
    server.add_argument(
        "--no-deploy",
        action="store_true",
        help="start the server and pools only; skip `prefect deploy --all`",
    )
    server.add_argument(
        "--no-worker",
        action="store_true",
        help="start no worker of the `process` pool (runs of its deployments then wait for "
        "one: `prefect worker start --pool process`)",
    )
    server.set_defaults(handler=run_server, own_signals=True)


def _already_serving(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def run_server(args: argparse.Namespace) -> int:
    # imported here: Prefect reads its settings when imported, and other commands must be able
    # to choose their API first (smelt.cli.api)
    from smelt.deployments.deploy import PROJECT_DIR, PrefectServer

    _stop_on_signals()
    home = Path(args.home or os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
    project_dir = Path(args.project_dir).resolve() if args.project_dir else PROJECT_DIR
    server = PrefectServer(args.host, args.port, home.expanduser())
    running = _already_serving(server.api_url)
    worker = None
    try:
        if running:
            print(f"A Prefect server already answers at {server.ui_url}: registering there.")
        else:
            print(
                f"Starting Prefect server at {server.ui_url} (PREFECT_HOME="
                f"{server.prefect_home}; log: {server.prefect_home / 'server.log'}) ...",
                flush=True,
            )
            server.start(timeout_s=180)
        _register(server, project_dir, deploy=not args.no_deploy)
        if not running and not args.no_worker:
            worker = _start_worker(server)
        _print_ready(server, worker)
        if running:
            return 0
        api.announce_server(server.api_url, server.prefect_home)
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        print(f"Prefect server exited with code {server.process.returncode}")
        return int(server.process.returncode or 0)
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    finally:
        if worker is not None:  # first: a worker whose server goes away mid-shutdown can hang
            print(f"Stopping the {WORKER_POOL} worker ...", flush=True)
            worker.stop()
        if not running:
            print("Stopping the Prefect server ...", flush=True)
            api.withdraw_server(server.prefect_home)
            server.stop()


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM (a service manager) both stop the server cleanly, even when the shell
    that started us in the background set SIGINT to be ignored."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def _register(server: PrefectServer, project_dir: Path, deploy: bool) -> None:
    from smelt.deployments.deploy import deploy_all, ensure_work_pools

    env = server.env()
    created = ensure_work_pools(server.api_url)
    print(
        f"Work pools: process, runpod ({'created ' + ', '.join(created) if created else 'present'})"
    )
    if deploy:
        print(f"Deploying {project_dir / 'prefect.yaml'} ...", flush=True)
        deploy_all(env, project_dir)


def _start_worker(server: Any) -> Any:
    """A `process` pool worker on this server, polling before we say the UI is ready."""
    from smelt.deployments.deploy import PoolWorker

    worker = PoolWorker(WORKER_POOL, server.prefect_home / "worker-process.log", name=WORKER_NAME)
    print(f"Starting a {WORKER_POOL} worker (log: {worker.log_path}) ...", flush=True)
    worker.start(server.env())
    worker.wait_polling(server.api_url)
    return worker


def _print_ready(server: Any, worker: Any) -> None:
    if worker is not None and worker.process is not None:
        workers = (
            f"Worker:     {WORKER_POOL} pool (pid {worker.process.pid}): scheduled runs and "
            "runs started from the UI execute here\n\n"
            "GPU training in RunPod pods needs its own worker:\n"
        )
    else:
        workers = (
            "Start workers in other terminals:\n"
            f"  PREFECT_API_URL={server.api_url} prefect worker start --pool {WORKER_POOL}\n"
        )
    print(
        f"\nPrefect UI: {server.ui_url}\n"
        f"API:        {server.api_url}\n\n"
        f"{workers}"
        f"  PREFECT_API_URL={server.api_url} RUNPOD_API_KEY=... "
        "prefect worker start --pool runpod --type runpod\n\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
