"""Ctrl-C (SIGINT to the process group, as a terminal sends it) and SIGTERM stop every command
within seconds, with one line saying what was kept and that a rerun resumes; no worker, no
server outlives the command; nothing half-written is left where a rerun would trust it.

A FIFO nobody writes to is the stuck input: whoever reads it blocks in `open()` (the kernel
says `wait_for_partner`), so a test signals exactly while work is in flight.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from smelt.parallel import LocalExecutor, WorkerStopped
from tests.failures import workers
from tests.failures.conftest import prose, start_smelt
from tests.shards.corpus_factory import write_corpus

SETTLE_S = 60  # how long a stopped command may take, at most, on a busy CI machine


def session_processes(sid: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == sid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (OSError, psutil.Error):
            continue
    return found


def blocked_on_fifo(processes: list[psutil.Process]) -> bool:
    """Whether a thread of these processes waits in `open()` of a FIFO."""
    for process in processes:
        for thread in process.threads():
            try:
                with open(f"/proc/{process.pid}/task/{thread.id}/wchan") as fh:
                    if fh.read().strip() == "wait_for_partner":
                        return True
            except OSError:
                continue
    return False


def wait_until(condition, what: str, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


@pytest.fixture
def commands():
    """Started commands; any still running at the end of a test is killed with its group."""
    started: list[subprocess.Popen] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        started.append(start_smelt(args, env))
        return started[-1]

    yield start
    for command in started:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
            command.communicate()


def stop_and_collect(command: subprocess.Popen, signum: int, group: bool) -> tuple[int, str]:
    """Signal the command (its process group, or itself), wait; (exit status, stderr)."""
    if group:
        os.killpg(command.pid, signum)
    else:
        command.send_signal(signum)
    try:
        _, stderr = command.communicate(timeout=SETTLE_S)
    except subprocess.TimeoutExpired:
        os.killpg(command.pid, signal.SIGKILL)
        command.communicate()
        pytest.fail(f"the command was still running {SETTLE_S} s after the signal")
    return command.returncode, stderr


def assert_stopped(code: int, stderr: str, signum: int, *kept: str) -> None:
    name = signal.Signals(signum).name
    assert code == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"stopped ({name}): ") and "run the same command again" in last, last
    for words in kept:
        assert words in last, last


def recorded_pid(record: str) -> int:
    with open(record) as fh:
        return int(fh.read())


def stuck_inputs(root) -> str:
    import random

    raw = root / "raw"
    raw.mkdir()
    rng = random.Random(5)
    for i in range(3):
        (raw / f"doc-{i}.txt").write_text(prose(rng))
    os.mkfifo(raw / "zz-stuck.txt")
    return str(raw)


# ---- the worker pool ----------------------------------------------------------------------


def test_closing_a_pool_stops_a_stuck_item_cleans_up_and_leaves_no_worker(tmp_path):
    fifo, record = str(tmp_path / "fifo"), str(tmp_path / "record")
    os.mkfifo(fifo)
    pool = LocalExecutor(2)
    future = pool.submit(workers.stuck, fifo, record)
    wait_until(lambda: os.path.exists(record) and os.path.getsize(record), "the item to start", 120)
    worker = psutil.Process(recorded_pid(record))
    wait_until(lambda: blocked_on_fifo([worker]), "the worker to block", 30)
    pool.close(cancel=True)
    assert isinstance(future.exception(timeout=30), WorkerStopped)
    assert os.path.exists(record + ".cleaned")  # the item's `finally` ran
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


def test_workers_ignore_ctrl_c_their_parent_decides(tmp_path):
    with LocalExecutor(2) as pool:
        worker_pid = pool.submit(workers.pid).result(timeout=120)
        napping = pool.submit(workers.nap, 1.0)
        os.kill(worker_pid, signal.SIGINT)
        os.killpg(os.getpgid(worker_pid), 0)  # still there
        assert napping.result(timeout=60) > 0


HOLDER = """
import sys, time
from smelt.parallel import LocalExecutor
from tests.failures import workers
if __name__ == "__main__":
    pool = LocalExecutor(2)
    pool.submit(workers.stuck, sys.argv[1], sys.argv[2])
    time.sleep(600)
"""


def test_workers_end_with_their_job_even_when_it_is_killed(tmp_path):
    fifo, record = str(tmp_path / "fifo"), str(tmp_path / "record")
    os.mkfifo(fifo)
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    holder = subprocess.Popen([sys.executable, str(script), fifo, record], env=env)
    try:
        wait_until(lambda: os.path.exists(record) and os.path.getsize(record), "a worker", 120)
        worker = psutil.Process(recorded_pid(record))
    finally:
        holder.kill()
        holder.wait()
    wait_until(
        lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE,
        "the worker to end with its job",
        30,
    )


# ---- commands -----------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_a_corpus_build(commands, tmp_path):
    """The report: SIGINT to the group left `corpus build` running after 300 s. This runs as a
    user does, with the command's own Prefect server (no PREFECT_API_URL)."""
    raw, out = stuck_inputs(tmp_path), tmp_path / "corpus"
    env = {"PREFECT_API_URL": ""}
    command = commands(["corpus", "build", "--input", raw, "--output", str(out)], env)
    session = command.pid
    wait_until(lambda: blocked_on_fifo(session_processes(session)), "a worker on the FIFO")
    servers = [p for p in descendants(command.pid) if "uvicorn" in " ".join(p.cmdline())]
    assert len(servers) == 1  # one Prefect server per command, not one per worker
    code, stderr = stop_and_collect(command, signal.SIGINT, group=True)
    assert_stopped(code, stderr, signal.SIGINT, "0 of 1 partitions", str(out))
    wait_until(lambda: session_processes(session) == [], "every process to end", 20)
    wait_until(lambda: not servers[0].is_running(), "the Prefect server to stop", 30)
    assert not (out / "stats.json").exists() and not (out / "_work" / "final").exists()


@pytest.mark.slow
def test_sigterm_stops_a_corpus_build(commands, tmp_path, prefect_api):
    raw, out = stuck_inputs(tmp_path), tmp_path / "corpus"
    command = commands(["corpus", "build", "--input", raw, "--output", str(out)], prefect_api)
    wait_until(lambda: blocked_on_fifo(session_processes(command.pid)), "a worker on the FIFO")
    code, stderr = stop_and_collect(command, signal.SIGTERM, group=False)
    assert_stopped(code, stderr, signal.SIGTERM, "0 of 1 partitions")
    wait_until(lambda: session_processes(command.pid) == [], "every process to end", 20)
    assert not (out / "_work" / "final").exists()


def _stuck_corpus(root) -> str:
    """A finished corpus whose second partition is a FIFO."""
    corpus = str(root / "corpus")
    write_corpus(corpus, parts=2, limit=200)
    part = os.path.join(corpus, "data", "part-00001.parquet")
    os.remove(part)
    os.mkfifo(part)
    return corpus


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_a_shards_build(commands, tmp_path, prefect_api):
    corpus = _stuck_corpus(tmp_path)
    tokenizer = str(tmp_path / "tok")
    from smelt.prep.tokenizer import train_tokenizer

    write_corpus(str(tmp_path / "whole"), parts=1, limit=200)
    train_tokenizer(str(tmp_path / "whole"), tokenizer, vocab_size=300)
    out = tmp_path / "shards"
    args = ["shards", "build", "--corpus", corpus, "--tokenizer", tokenizer, "--output", str(out)]
    command = commands(args, prefect_api)
    wait_until(lambda: blocked_on_fifo(session_processes(command.pid)), "a worker on the FIFO")
    code, stderr = stop_and_collect(command, signal.SIGINT, group=True)
    assert_stopped(code, stderr, signal.SIGINT, "of 2 partitions tokenized")
    wait_until(lambda: session_processes(command.pid) == [], "every process to end", 20)
    assert not (out / "manifest.json").exists()


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_tokenizer_training(commands, tmp_path, prefect_api):
    """Training reads the corpus in a thread that no signal reaches: the command still ends
    within seconds (the watchdog), and no tokenizer is left marked current."""
    corpus, out = _stuck_corpus(tmp_path), tmp_path / "tok"
    command = commands(
        ["tokenizer", "train", "--corpus", corpus, "--output", str(out)], prefect_api
    )
    wait_until(lambda: blocked_on_fifo(session_processes(command.pid)), "training on the FIFO")
    code, stderr = stop_and_collect(command, signal.SIGINT, group=True)
    assert_stopped(code, stderr, signal.SIGINT, "no tokenizer was finished")
    wait_until(lambda: session_processes(command.pid) == [], "every process to end", 20)
    assert not (out / "report.json").exists()


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_the_demo(commands, tmp_path, prefect_api):
    work = tmp_path / "demo"
    args = ["demo", "--workdir", str(work), "--max-docs", "200", "--train-steps", "2"]
    command = commands(args, prefect_api)
    wait_until(lambda: (work / "corpus" / "_work" / "plan.json").exists(), "the corpus step")
    code, stderr = stop_and_collect(command, signal.SIGINT, group=True)
    assert_stopped(code, stderr, signal.SIGINT, str(work / "corpus"))
    wait_until(lambda: session_processes(command.pid) == [], "every process to end", 20)
