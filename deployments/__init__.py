"""Prefect deployments of smelt: the `runpod` worker type, its API client, deploy helpers.

This package is smelt's `prefect.collections` entry point (pyproject.toml): Prefect imports it
when it looks up worker types, and importing `RunPodWorker` registers the `runpod` type, so
`prefect work-pool create --type runpod` and `prefect worker start --type runpod` find it.
"""

from smelt.deployments.runpod_worker import (
    RunPodJobConfiguration,
    RunPodVariables,
    RunPodWorker,
)

__all__ = ["RunPodJobConfiguration", "RunPodVariables", "RunPodWorker"]
