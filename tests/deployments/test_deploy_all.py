"""`prefect --no-prompt deploy --all` of prefect.yaml against a real local server: every
deployment registered with its pool, parameters schema and schedule; the server's scheduler
creates the nightly rebuild's upcoming runs; the UI shows them in a real (headless) browser."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from smelt.deployments.deploy import PROJECT_DIR, deploy_all, ensure_work_pools, pool_workers
from smelt.deployments.runpod_job import RunPodVariables

pytestmark = pytest.mark.slow

EXPECTED = {
    "corpus-build/default": "process",
    "nightly-build/default": "process",
    "tokenizer-train/default": "process",
    "shards-build/default": "process",
    "train/runpod": "runpod",
    "sft/runpod": "runpod",
    "train/local": "process",
    "pretrain-pipeline/default": "process",
    "evaluate/default": "process",
    "evaluate/runpod": "runpod",
    "data-ablation/default": "process",
}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def deployed(prefect_server, prefect_api):
    env = prefect_server.env()
    ensure_work_pools(prefect_server.api_url)
    deploy_all(env, PROJECT_DIR)
    rows = prefect_api.post("/deployments/filter", {"limit": 100})
    flows = {row["id"]: row["name"] for row in prefect_api.post("/flows/filter", {"limit": 100})}
    return {f"{flows[row['flow_id']]}/{row['name']}": row for row in rows}


def test_every_deployment_is_registered_on_its_pool(deployed):
    for name, pool in EXPECTED.items():
        assert name in deployed, f"{name} missing; got {sorted(deployed)}"
        assert deployed[name]["work_pool_name"] == pool
    runpod_variables = deployed["train/runpod"]["job_variables"]
    assert runpod_variables["gpu_type"] == "NVIDIA GeForce RTX 4090"
    assert set(runpod_variables) <= set(RunPodVariables.model_fields)  # no unknown variable
    RunPodVariables(**runpod_variables)
    assert set(runpod_variables["secrets"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert deployed["train/runpod"]["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/app"}}
    ]
    local_pull = deployed["corpus-build/default"]["pull_steps"][0]
    assert local_pull["prefect.deployments.steps.set_working_directory"]["directory"] == str(
        PROJECT_DIR
    )


def test_parameter_schemas_are_forms_with_dropdowns(deployed):
    schema = deployed["pretrain-pipeline/default"]["parameter_openapi_schema"]
    assert schema["required"] == ["root", "corpus"]
    train = schema["definitions"]["TrainStage"]["properties"]
    assert "small" in train["preset"]["enum"] and "test" in train["preset"]["enum"]
    assert "NVIDIA H100 80GB HBM3" in train["gpu_type"]["enum"]
    assert schema["definitions"]["CorpusStage"]["properties"]["inputs"]["description"]
    assert "params" in deployed["corpus-build/default"]["parameter_openapi_schema"]["properties"]
    assert "config" in deployed["train/runpod"]["parameter_openapi_schema"]["properties"]
    ablation = deployed["data-ablation/default"]["parameter_openapi_schema"]
    assert {"ProxyPlan", "Recipe", "EvalPlan"} <= set(ablation["definitions"])
    evaluate = deployed["evaluate/default"]["parameter_openapi_schema"]
    assert {"checkpoint", "output", "tasks", "all_checkpoints"} <= set(evaluate["properties"])
    assert "config" in deployed["sft/runpod"]["parameter_openapi_schema"]["properties"]


def test_nightly_build_schedule_and_concurrency(deployed):
    nightly = deployed["nightly-build/default"]
    [schedule] = nightly["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *"
    assert schedule["schedule"]["timezone"] == "Europe/Berlin"
    assert schedule["active"] is True
    params = nightly["parameters"]["params"]
    assert params["corpus"] == "s3://smelt-data/corpus/nightly/{date}"
    assert params["shards"] == "s3://smelt-data/shards/nightly/{date}"
    assert params["tokenizer"] == "s3://smelt-data/tokenizer"
    assert params["dedup_against"] == [
        "s3://smelt-data/corpus/main",
        "s3://smelt-data/corpus/nightly/*",
    ]
    assert nightly["global_concurrency_limit"]["limit"] == 1
    assert nightly["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert not any(
        deployment["schedules"]
        for name, deployment in deployed.items()
        if name != "nightly-build/default"
    )


def test_scheduler_creates_the_upcoming_nightly_runs(deployed, prefect_api):
    nightly_id = deployed["nightly-build/default"]["id"]
    query = {
        "deployments": {"id": {"any_": [nightly_id]}},
        "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        "limit": 10,
    }
    deadline = time.monotonic() + 90
    runs = []
    while time.monotonic() < deadline and not runs:
        runs = prefect_api.post("/flow_runs/filter", query)
        time.sleep(2)
    assert runs, "the scheduler created no run of nightly-build/default within 90 s"
    times = sorted(run["next_scheduled_start_time"] or run["expected_start_time"] for run in runs)
    from datetime import datetime
    from zoneinfo import ZoneInfo

    first = datetime.fromisoformat(times[0]).astimezone(ZoneInfo("Europe/Berlin"))
    assert (first.hour, first.minute) == (2, 0)


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y "
    "chromium; .ci/run installs it)",
)
def test_ui_lists_deployments_and_nightly_schedule(deployed, prefect_server, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("SMELT_ARTIFACT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    nightly_id = deployed["nightly-build/default"]["id"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{prefect_server.ui_url}/deployments", timeout=60_000)
            for name in ("nightly-build", "pretrain-pipeline", "runpod"):
                page.get_by_text(name).first.wait_for(timeout=60_000)
            page.get_by_text("02:00").first.wait_for(timeout=60_000)
            listing = page.inner_text("body")
            page.screenshot(path=str(shots / "deployments.png"), full_page=True)
            page.goto(
                f"{prefect_server.ui_url}/deployments/deployment/{nightly_id}", timeout=60_000
            )
            for text in ("02:00", "nightly-build", "process"):
                page.get_by_text(text).first.wait_for(timeout=60_000)
            detail = page.inner_text("body")
            page.screenshot(path=str(shots / "nightly-build.png"), full_page=True)
        finally:
            browser.close()
    for name in EXPECTED:
        assert name.split("/")[1] in listing and name.split("/")[0] in listing
    assert "At 02:00 AM every day" in listing, listing[:2000]
    assert "nightly-build" in detail and "default" in detail, detail[:2000]
    assert (shots / "deployments.png").stat().st_size > 10_000


def test_smelt_server_registers_pools_prints_the_url_and_stops_on_ctrl_c(tmp_path):
    """`smelt server` on a fresh home: healthy, pools created, URL printed; SIGINT stops it.
    With `--no-worker` it starts no worker and says how to start one (the default worker is
    tested in test_server_worker.py)."""
    import signal
    import subprocess
    import sys

    from smelt.deployments.deploy import free_port, server_env

    port = free_port()
    env = server_env(f"http://127.0.0.1:{port}/api", tmp_path / "home")
    env.pop("PREFECT_API_URL")
    smelt = Path(sys.executable).parent / "smelt"
    process = subprocess.Popen(
        [
            str(smelt),
            "server",
            "--port",
            str(port),
            "--home",
            str(tmp_path / "home"),
            "--no-deploy",
            "--no-worker",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        output = "".join(lines)
        assert f"Prefect UI: http://127.0.0.1:{port}" in output, output
        assert "Work pools: process, runpod (created process, runpod)" in output, output
        assert "prefect worker start --pool process" in output, output
        assert pool_workers(f"http://127.0.0.1:{port}/api", "process") == []
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    import httpx

    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
