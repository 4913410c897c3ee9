"""`smelt server`: a local Prefect server with the UI, and smelt's deployments registered.

Starts `prefect server start` (SQLite under PREFECT_HOME), waits until it is healthy, creates
the `process` and `runpod` work pools when missing, runs `prefect --no-prompt deploy --all` on
prefect.yaml, prints the UI's URL, and serves until Ctrl-C, which stops the server cleanly.
If a server already answers on that address, it registers the pools and deployments there and
exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from smelt.cli import api

if TYPE_CHECKING:
    from smelt.deployments.deploy import PrefectServer


def register(subparsers: argparse._SubParsersAction) -> None:
    server = subparsers.add_parser("server", help="start the Prefect UI with smelt deployments")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=4200)
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
        _print_ready(server)
        if running:
            return 0
        api.announce_server(server.api_url, server.prefect_home)
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        print(f"Prefect server exited with code {server.process.returncode}")
        return int(server.process.returncode or 0)
    except KeyboardInterrupt:
        print("\nStopping the Prefect server ...", flush=True)
        return 0
    finally:
        if not running:
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


def _print_ready(server: PrefectServer) -> None:
    print(
        f"\nPrefect UI: {server.ui_url}\n"
        f"API:        {server.api_url}\n\n"
        "Start workers in other terminals:\n"
        f"  PREFECT_API_URL={server.api_url} prefect worker start --pool process\n"
        f"  PREFECT_API_URL={server.api_url} RUNPOD_API_KEY=... "
        "prefect worker start --pool runpod --type runpod\n\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
