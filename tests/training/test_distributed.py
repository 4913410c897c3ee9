"""torchrun with 2 CPU processes (gloo): DDP and FSDP2 give the losses of one process with the
same global batch, ranks read disjoint data, and 2-rank checkpoints (DDP and FSDP2) resume on
2 ranks exactly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from smelt.training.loader import ShardLoader
from smelt.training.metrics import read_metrics
from tests.training.conftest import REPO, child_env, run_loop, train_args
from tests.training.resumption import assert_resumed

STEPS = 20


def _torchrun(args: list[str], *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        *extra,
        "-m",
        "smelt.training.loop",
        *args,
    ]
    proc = subprocess.run(
        command, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _records(run: Path) -> list[dict]:
    return read_metrics(str(run / "metrics.jsonl"))


def test_ranks_read_disjoint_windows_that_make_the_global_batch(shards: str) -> None:
    single = ShardLoader(shards, batch_size=8, seq_len=32, seed=1337)
    ranks = [
        ShardLoader(shards, batch_size=4, seq_len=32, seed=1337, rank=r, world_size=2)
        for r in (0, 1)
    ]
    for _ in range(5):
        whole = single.next_batch().inputs
        parts = [loader.next_batch().inputs for loader in ranks]
        rows = {tuple(row.tolist()) for row in whole}
        assert {tuple(r.tolist()) for r in parts[0]}.isdisjoint(tuple(r.tolist()) for r in parts[1])
        assert {tuple(r.tolist()) for r in torch.cat(parts)} == rows


@pytest.mark.slow
def test_two_ranks_match_one_process_and_resume_exactly(shards: str, tmp_path: Path) -> None:
    common = ("--checkpoint-every", "10", "--grad-accum", "2")
    one = tmp_path / "one"
    run_loop(train_args(shards, str(one), *common, "--batch-size", "8", steps=STEPS))
    two = tmp_path / "two"
    args = train_args(shards, str(two), *common, steps=STEPS)  # batch 4 per rank
    _torchrun(args)

    single, ranked = _records(one), _records(two)
    assert [r["step"] for r in ranked] == list(range(1, STEPS + 1))
    for a, b in zip(single, ranked, strict=True):
        assert a["tokens"] == b["tokens"] and a["lr"] == b["lr"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5)

    # FSDP2 (fully_shard) on the same 2 ranks trains the same model, and resumes exactly
    sharded = tmp_path / "sharded"
    fsdp_args = train_args(shards, str(sharded), *common, "--fsdp", steps=STEPS)
    _torchrun(fsdp_args)
    fsdp_records = _records(sharded)
    for a, b in zip(single, fsdp_records, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5)
    shutil.rmtree(sharded / "step_00000020")
    proc = _torchrun([*fsdp_args, "--debug"])  # each rank logs what it restored
    keys = ("step", "loss", "lr", "tokens", "grad_norm")
    resumed = [[r[k] for k in keys] for r in _records(sharded)]
    assert resumed == [[r[k] for k in keys] for r in fsdp_records]
    assert_resumed(10, proc.stderr, fsdp_records, _records(sharded))  # both ranks, from step 10

    # the 2-rank checkpoint at step 10 resumes on 2 ranks with the very same losses
    shutil.rmtree(two / "step_00000020")
    proc = _torchrun([*args, "--debug"])
    assert [[r[k] for k in keys] for r in _records(two)] == [[r[k] for k in keys] for r in ranked]
    assert_resumed(10, proc.stderr, ranked, _records(two))
