"""Fixtures for smelt.serving: a tiny random decoder for the engine, the trained chat run, and
`smelt serve` running on it as a real process on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

from smelt.model import Decoder, ModelConfig
from tests.chat.chat_run import REPO, build_chat_run
from tests.s3server import free_port


@pytest.fixture(scope="session")
def chat_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_chat_run(tmp_path_factory.getbasetemp() / "chat-run")


@pytest.fixture
def tiny_decoder() -> Decoder:
    """2 x 64, vocabulary 97, context 64, random weights with a larger init (distinct logits)."""
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=97,
        d_model=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        ffn_hidden=96,
        max_seq_len=64,
        qk_norm=True,
        init_std=0.1,
        rope_theta=1000.0,
    )
    return Decoder(config).eval()


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Served:
    """A `smelt serve` process and its base URL."""

    def __init__(self, checkpoint: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                *("-m", "smelt.cli.main", "serve", "--checkpoint", str(checkpoint)),
                *("--port", str(self.port), "--device", "cpu", "--log-level", "warning", *flags),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"smelt serve exited:\n{self.process.stdout.read()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise AssertionError("smelt serve did not answer /health within 120 s")

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.stdout.read()


@pytest.fixture(scope="session")
def server(chat_run: Path):
    """`smelt serve` on the chat run for the whole session."""
    served = Served(chat_run)
    yield served
    served.stop()
