"""`smelt chat`: --message prints the greedy reply alone; the REPL's commands, history and
streaming, piped and in a real pseudo-terminal; a base model in plain continuation mode."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from smelt.serving import ChatSession, Settings, load_chat_model
from tests.chat.chat_run import REPO, base_copy, greedy_reply, smelt_command, smelt_in_process

pytestmark = pytest.mark.slow  # a trained model, then the chat command in subprocesses

QUESTION = "What is the capital of Zorbia?"


def test_message_prints_the_greedy_reply_alone(chat_run):
    proc = smelt_command(
        "chat", "--checkpoint", str(chat_run), "--message", QUESTION, "--temperature", "0"
    )
    assert proc.returncode == 0, proc.stderr
    _, expected = greedy_reply(chat_run, [{"role": "user", "content": QUESTION}])
    assert proc.stdout == expected + "\n"
    # the model learned the fact and ended its turn with <|im_end|> (not the length limit)
    assert expected == "The capital of Zorbia is Quell."


def test_system_prompt_goes_first(chat_run, capsys):
    system = "Answer briefly."
    code, out, err = smelt_in_process(
        capsys,
        "chat",
        *("--checkpoint", str(chat_run), "--message", "Who founded the Ostrel guild?"),
        *("--system", system, "--temperature", "0"),
    )
    assert code == 0, err
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": "Who founded the Ostrel guild?"},
    ]
    assert out == greedy_reply(chat_run, messages)[1] + "\n"


def _replies(stdout: str) -> list[str]:
    return [
        line.split("assistant> ", 1)[1] for line in stdout.splitlines() if "assistant> " in line
    ]


def test_repl_commands_history_and_clear(chat_run, capsys):
    lines = [
        "/temp 0",
        "What do glimmerbats eat?",
        "Which river runs through Pellin?",
        "/config",
        "/topk 5",
        "/topp 7",
        "/rep 0",
        "/max 40",
        "/nonsense",
        "/help",
        "/clear",
        "/system Answer briefly.",
        "What colour is the sky on Vesk?",
        "/quit",
        "never read",
    ]
    stdin = "\n".join(lines) + "\n"
    code, out, err = smelt_in_process(capsys, "chat", "--checkpoint", str(chat_run), stdin=stdin)
    assert code == 0, err
    # the same conversation through the library: the REPL feeds it what it was typed
    chat = load_chat_model(str(chat_run), "cpu")
    session = ChatSession(chat, Settings(temperature=0))
    first = "".join(session.send("What do glimmerbats eat?"))
    second = "".join(session.send("Which river runs through Pellin?"))
    history = len(session.history)
    session.clear()
    session.system = "Answer briefly."
    session.settings = session.settings.with_(top_k=5, max_new_tokens=40)
    third = "".join(session.send("What colour is the sky on Vesk?"))
    assert _replies(out) == [first, second, third]
    assert first == "Glimmerbats eat copper moss."
    # the second reply saw the first turn: the same question alone may differ, but its prompt
    # did not (checked by ids in tests/serving/test_session.py); here: the commands' effects
    assert "temperature = 0.0" in out
    assert re.search(r"temperature\s+0\.0\s", out)
    assert re.search(rf"history\s+{history} messages", out)
    assert "top_k = 5" in out
    assert "top_p: must be in (0, 1], got 7.0" in out
    assert "repetition_penalty" in out and "must be > 0" in out
    assert "max_new_tokens = 40" in out
    assert "unknown command /nonsense" in out
    assert "/system TEXT" in out and "/quit" in out
    assert "conversation cleared" in out and "system prompt set" in out


def test_repl_in_a_terminal(chat_run):
    """A real pseudo-terminal: the prompt shows, the reply streams, Ctrl-D leaves."""
    master, slave = pty.openpty()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm-256color", "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smelt.cli.main", "chat", "--checkpoint", str(chat_run)],
        cwd=REPO,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    seen = b""

    def read_until(marker: bytes, timeout: float = 60) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    return

    try:
        read_until(b"you>")
        os.write(master, b"/temp 0\r")
        read_until(b"temperature = 0.0")
        os.write(master, QUESTION.encode() + b"\r")
        read_until(b"Quell.")
        os.write(master, b"\x04")  # Ctrl-D at the prompt
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = seen.decode("utf-8", "replace")
    assert "chat model (ChatML)" in text
    assert "The capital of Zorbia is Quell." in text


def test_base_model_is_plain_continuation(chat_run, tmp_path_factory, capsys):
    base = base_copy(chat_run, tmp_path_factory.getbasetemp())
    prompt = "The capital of Zorbia"
    args = ("chat", "--checkpoint", str(base), "--message", prompt, "--temperature", "0")
    code, out, err = smelt_in_process(capsys, *args)
    assert code == 0, err
    assert "base model: plain continuation" in err
    from smelt.model.generate import generate
    from smelt.training.inference import open_checkpoint

    opened = open_checkpoint(str(base))
    ids = opened.tokenizer.encode(prompt).ids
    eos = opened.tokenizer.token_to_id("<|endoftext|>")
    room = opened.config.max_seq_len - len(ids)
    expected = generate(
        opened.model, [ids], max_new_tokens=room, temperature=0, stop_token_ids=[eos]
    )
    assert out == opened.tokenizer.decode(expected[0]) + "\n"
    code, out, _ = smelt_in_process(capsys, "chat", "--checkpoint", str(base), stdin="/system x\n")
    assert code == 0
    assert "base model: plain continuation mode" in out
    assert "a base model has no system prompt" in out
